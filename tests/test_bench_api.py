"""fewgen.bench: the options, peer runs and JSON envelope every `fewgen bench` command shares."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from fewgen.bench import ENVELOPE_KEYS, Bench, BenchResult, bench_command


@bench_command("toy", device=True, peer=True, default_seed=3)
@click.option("--size", type=int, default=4, show_default=True)
@click.option("--peer-script", type=click.Path(path_type=Path))
def toy(bench: Bench, size: int, peer_script: Path | None) -> BenchResult:
    print("library chatter")  # must not reach stdout, which is the envelope's
    bench.say(f"working on {size}")
    figures = {"size": size, "threads_seen": int(os.environ["OMP_NUM_THREADS"]), "seed_seen": bench.seed}
    if bench.peer_python is not None and peer_script is not None:
        figures["peer"] = bench.run_peer(peer_script, ["--size", str(size)], timeout=60)
    return BenchResult(figures, target={"size_at_least": 4}, met=size >= 4, settings={"resolved": size * 2})


@bench_command("plain", threads=False)
def plain(bench: Bench) -> BenchResult:
    return BenchResult({"ok": True})


@bench_command("wrong")
def wrong(bench: Bench) -> dict:
    return {"figures": 1}


def invoke(command: click.Command, *args: str):
    return CliRunner().invoke(command, list(args))


def test_the_envelope_holds_settings_machine_figures_target_and_met() -> None:
    result = invoke(toy, "--json", "--size", "5", "--threads", "1")
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.stdout)
    assert tuple(envelope) == ENVELOPE_KEYS
    assert envelope["benchmark"] == "toy"
    assert envelope["settings"] == {
        "seed": 3,
        "threads": 1,
        "size": 5,
        "peer_script": None,
        "device": "auto",
        "peer_python": None,
        "resolved": 10,
    }
    assert envelope["figures"] == {"size": 5, "threads_seen": 1, "seed_seen": 3}
    assert envelope["target"] == {"size_at_least": 4} and envelope["met"] is True
    machine = envelope["machine"]
    assert machine["threads"] == 1 and machine["device"] == "auto" and machine["usable_cpus"] >= 1
    assert machine["python"] == ".".join(map(str, sys.version_info[:3])) and "libraries" in machine


def test_stdout_is_only_the_envelope_and_progress_goes_to_stderr() -> None:
    quiet = invoke(toy, "--json")
    assert quiet.stdout.count("\n") == 1 and "library chatter" in quiet.stderr
    assert "working on" not in quiet.stderr  # --json hides the bench's own progress
    loud = invoke(toy, "--size", "2")
    assert "working on 2" in loud.stderr and "target NOT met" in loud.stderr
    assert json.loads(loud.stdout)["met"] is False


def test_a_peer_runs_with_its_own_interpreter_and_the_bench_threads(tmp_path: Path) -> None:
    script = tmp_path / "peer.py"
    script.write_text(
        "import json, os, sys\n"
        "print('peer log line')\n"
        "print(json.dumps({'argv': sys.argv[1:], 'threads': os.environ['OMP_NUM_THREADS']}))\n"
    )
    result = invoke(toy, "--json", "--threads", "1", "--peer-python", sys.executable, "--peer-script", str(script))
    assert result.exit_code == 0, result.output
    peer = json.loads(result.stdout)["figures"]["peer"]
    assert peer == {"argv": ["--size", "4"], "threads": "1"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("import sys; print('boom', file=sys.stderr); sys.exit(3)", "the peer failed (exit 3): boom"),
        ("print('not json')", "the peer's last line is not JSON: not json"),
    ],
)
def test_a_failing_peer_is_one_line(tmp_path: Path, body: str, message: str) -> None:
    script = tmp_path / "peer.py"
    script.write_text(body + "\n")
    result = invoke(toy, "--peer-python", sys.executable, "--peer-script", str(script))
    assert result.exit_code == 1
    assert f"Error: toy: {message}" in result.output
    assert "Traceback" not in result.output


def test_a_missing_peer_script_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke(toy, "--peer-python", sys.executable, "--peer-script", str(tmp_path / "nope.py"))
    assert result.exit_code == 2 and "peer script not found" in result.output


def test_threads_false_leaves_the_option_out_and_still_records_the_count() -> None:
    assert "--threads" not in invoke(plain, "--help").output
    envelope = json.loads(invoke(plain, "--json").stdout)
    assert envelope["settings"]["threads"] >= 1 and envelope["target"] is None and envelope["met"] is None


def test_a_command_that_returns_no_bench_result_is_a_programming_error() -> None:
    result = invoke(wrong)
    assert isinstance(result.exception, TypeError) and "not a BenchResult" in str(result.exception)


def test_gpu_check_says_so_where_there_is_no_gpu(tmp_path: Path) -> None:
    import subprocess

    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: benchmarks/gpu_check.sh would run its checks")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
    done = subprocess.run(
        ["bash", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads((tmp_path / "gpu_check.jsonl").read_text())
    assert json.loads(done.stdout)["gpu"] is None


def test_precision_figures_compare_bf16_with_fp32_only_when_both_ran() -> None:
    from fewgen.bench import precision_figures

    both = {"fp32": {"s": 2.0}, "bf16": {"s": 0.5}}
    assert precision_figures(both, "s") == {"by_precision": both, "bf16_speedup": 4.0}
    assert precision_figures({"fp32": {"s": 2.0}}, "s") == {}
