"""`fewgen bench maml-sinusoid` and `maml-speed` run on tiny settings and report; the numbers belong in the README."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from fewgen_maml.bench import _eval_tasks, _json_safe, _with_shots, select_step_sizes

from fewgen.cli import cli

TINY_SINUSOID = ["bench", "maml-sinusoid", "--threads", "1", "--tasks", "6", "--val-tasks", "4"]
TINY_SINUSOID += ["--step-sizes", "0.01,0.1,0.02"]  # last: a test replaces the grid
TINY_SPEED = ["bench", "maml-speed", "--meta-batch", "2", "--iters", "2", "--repeats", "1", "--threads", "1"]
# The peer and its venv as shared/peers/setup.sh builds them beside the repository (the test, not the bench, looks).
HIGHER_PYTHON = Path(os.environ.get("PEERS_DIR", "/tmp/fewgen-peers")) / "higher-venv" / "bin" / "python"
HIGHER_SCRIPT = Path(__file__).resolve().parents[4] / "shared" / "peers" / "higher_maml_step.py"


def run(args: list[str]) -> Any:
    return CliRunner().invoke(cli, args)


def strict(constant: str) -> None:
    raise AssertionError(f"{constant} is not JSON")


def envelope_of(args: list[str]) -> dict[str, Any]:
    result = run([*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout, parse_constant=strict)  # stdout holds one strict JSON object, nothing else


def report_of(args: list[str]) -> dict[str, Any]:
    return envelope_of(args)["figures"]


def assert_summary(value: dict[str, Any], tasks: int) -> None:
    assert set(value) == {"mean", "ci95", "tasks"}
    assert math.isfinite(value["mean"]) and value["mean"] >= 0
    assert math.isfinite(value["ci95"]) and value["ci95"] >= 0
    assert value["tasks"] == tasks


# Step-size selection of the pretrained baseline


def test_each_step_count_gets_the_step_size_with_the_lowest_validation_loss() -> None:
    losses = {  # mean validation loss after 0, 1, 2, 3 steps
        0.01: [4.0, 3.0, 2.5, 2.2],
        0.1: [4.0, 2.0, 2.6, 2.1],  # best after one step only, then best again after three
        0.05: [4.0, 2.5, 1.9, 2.3],
    }
    assert select_step_sizes(losses, [1, 2, 3]) == {1: 0.1, 2: 0.05, 3: 0.1}


def test_ties_go_to_the_smaller_step_size_and_diverged_ones_never_win() -> None:
    losses = {0.2: [1.0, float("nan")], 0.1: [1.0, 0.5], 0.05: [1.0, 0.5], 0.5: [1.0, float("inf")]}
    assert select_step_sizes(losses, [1]) == {1: 0.05}
    with pytest.raises(ValueError, match="diverged"):
        select_step_sizes({0.1: [1.0, float("nan")]}, [1])


def test_smaller_support_sets_are_prefixes_of_the_larger_ones() -> None:
    tasks = _eval_tasks(3, 10, torch.Generator().manual_seed(0))
    five, ten = _with_shots(tasks, 5), _with_shots(tasks, 10)
    assert five.support_x.shape == (3, 5, 1) and ten.support_x.shape == (3, 10, 1)
    assert torch.equal(five.support_x, ten.support_x[:, :5]) and torch.equal(five.query_y, ten.query_y)
    assert torch.equal(ten.query_x[0, :, 0], torch.linspace(-5, 5, 100))  # the evenly spaced query grid


# maml-sinusoid


def test_maml_sinusoid_reports_every_mse_with_its_interval() -> None:
    envelope = envelope_of([*TINY_SINUSOID, "--steps", "20", "--seed", "3"])
    report = envelope["figures"]
    assert envelope["benchmark"] == "maml-sinusoid" and envelope["settings"]["seed"] == 3
    assert envelope["settings"]["steps"] == 20 and envelope["settings"]["step_sizes"] == [0.01, 0.02, 0.1]
    assert report["meta_updates"] == {"requested": 20, "done": 20, "stopped_by": "steps"}
    assert report["pretrain_updates"] == 20
    for shots in ("k5", "k10"):
        maml, pretrained = report["mse"][shots]["maml"], report["mse"][shots]["pretrained"]
        for steps in ("0", "1", "5", "10"):
            assert_summary(maml[steps], 6)
            assert_summary(pretrained[steps], 6)
        # The chosen step size is in the grid and is the validation argmin (ties to the smaller one).
        for steps in ("1", "5", "10"):
            chosen = pretrained["step_size"][steps]
            assert chosen in (0.01, 0.02, 0.1)
            validation = {float(size): mse[steps] for size, mse in pretrained["validation_mse"].items()}
            assert validation[chosen] == min(validation.values())
    assert report["paper_k5"]["maml"]["1"] == 0.67 and report["paper_k5"]["pretrained"]["1"] == 2.41
    assert envelope["target"]["mse_at_most"] == 0.55
    assert envelope["met"] == (report["mse"]["k5"]["maml"]["1"]["mean"] <= 0.55)
    machine = envelope["machine"]
    assert machine["threads"] == 1 and torch.__version__.startswith(machine["libraries"]["torch"])
    assert all(math.isfinite(s) and s >= 0 for s in report["seconds"].values())


def test_a_diverging_step_size_is_null_in_the_json_and_never_chosen() -> None:
    args = [*TINY_SINUSOID[:-1], "0.01,1000", "--steps", "3", "--train-shots", "5"]
    envelope = envelope_of(args)
    assert envelope["settings"]["train_shots"] == 5 and envelope["settings"]["train_queries"] == 5
    pretrained = envelope["figures"]["mse"]["k10"]["pretrained"]
    assert pretrained["validation_mse"]["1000.0"]["10"] is None  # 10 steps of 1000 overflow to inf or nan
    assert set(pretrained["step_size"].values()) == {0.01}
    assert _json_safe({"a": [1.0, float("nan")], "b": (float("-inf"), 2)}) == {"a": [1.0, None], "b": [None, 2]}


def test_maml_sinusoid_is_reproducible_from_its_seed() -> None:
    args = [*TINY_SINUSOID, "--steps", "5", "--pretrain-steps", "7"]
    first, second = report_of(args), report_of(args)
    assert first["pretrain_updates"] == 7
    assert first["mse"] == second["mse"]
    assert report_of([*args, "--seed", "1"])["mse"] != first["mse"]


def test_the_minutes_cap_stops_meta_training_and_says_so() -> None:
    report = report_of([*TINY_SINUSOID, "--steps", "100000000", "--minutes", "0.005"])
    done = report["meta_updates"]["done"]
    assert report["meta_updates"]["stopped_by"] == "minutes" and 0 <= done < 100_000_000
    assert report["pretrain_updates"] == done  # the baseline gets as many updates as MAML made


def test_without_json_the_summary_goes_to_stderr() -> None:
    result = run([*TINY_SINUSOID, "--steps", "3"])
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)
    assert "K=5 MSE, MAML / pretrained" in result.stderr and "maml: 3/3 updates" in result.stderr


@pytest.mark.parametrize(
    "bad",
    [
        ["--steps", "0"],
        ["--tasks", "1"],
        ["--minutes", "0"],
        ["--step-sizes", "0.1,fast"],
        ["--step-sizes", "0.1,-0.2"],
        ["--step-sizes", ","],
    ],
)
def test_bad_sinusoid_options_exit_cleanly(bad: list[str]) -> None:
    result = run([*TINY_SINUSOID, *bad, "--json"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Invalid value" in result.output


# maml-speed


def write_peer(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "peer.py"
    script.write_text(body, encoding="utf-8")
    return script


@pytest.mark.parametrize("task", ["sinusoid", "omniglot"])
def test_maml_speed_without_a_peer_reports_fewgen_and_says_why(task: str) -> None:
    envelope = envelope_of([*TINY_SPEED, "--task", task, "--first-order"])
    report, settings = envelope["figures"], envelope["settings"]
    assert envelope["benchmark"] == "maml-speed" and settings["task"] == task and settings["meta_batch"] == 2
    assert settings["iters"] == 2 and settings["peer_python"] is None and settings["peer_script"] is None
    for side in ("fewgen", "fewgen_first_order"):
        for key in ("tasks_per_s", "seconds_per_meta_iter"):
            values = report[side][key]
            assert len(values["all"]) == 1 and all(math.isfinite(v) and v > 0 for v in values["all"])
            assert values["median"] == values["all"][0]
    assert report["higher"] == {"note": "left out: no --peer-python"}
    assert report["ratio"] is None and envelope["met"] is None
    assert report["target_applies"] is False  # meta-batch 2 is not the target's
    assert envelope["machine"]["threads"] == 1


def test_the_default_meta_batch_is_the_targets_and_met_stays_null_without_the_peer() -> None:
    envelope = envelope_of([*TINY_SPEED[:2], "--task", "sinusoid", "--iters", "1", "--repeats", "1"])
    assert envelope["settings"]["meta_batch"] == 25 and envelope["figures"]["target_applies"] is True
    assert envelope["target"] == {"ratio_at_least": 10.0, "meta_batch": 25, "order": "second"}
    assert envelope["met"] is None


@pytest.mark.parametrize(
    ("peer", "message"),
    [
        (["--peer-python", "no-python"], "'no-python' does not exist"),
        (["--peer-python", sys.executable], "--peer-python needs --peer-script"),
        (["--peer-script", "no-script.py"], "'no-script.py' does not exist"),
    ],
)
def test_a_missing_peer_is_a_usage_error_not_a_traceback(peer: list[str], message: str) -> None:
    result = run([*TINY_SPEED, "--task", "sinusoid", *peer])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_the_ratio_is_fewgen_over_the_peer_with_alternating_repeats(tmp_path: Path) -> None:
    # A stand-in peer that reports one meta-iteration of 25 tasks in 10 s: 2.5 tasks/s.
    script = write_peer(
        tmp_path,
        "import json, os, sys\n"
        "assert sys.argv[1:] == ['sinusoid', '25', '2'], sys.argv\n"
        "assert os.environ['OMP_NUM_THREADS'] == '1'\n"
        "print('noise')\n"
        "print(json.dumps({'peer': 'fake', 'seconds_per_meta_iter': 10.0, 'tasks_per_s': 2.5}))\n",
    )
    args = ["bench", "maml-speed", "--task", "sinusoid", "--iters", "2", "--repeats", "2", "--threads", "1"]
    envelope = envelope_of([*args, "--peer-python", sys.executable, "--peer-script", str(script)])
    report = envelope["figures"]
    assert report["higher"]["tasks_per_s"] == {"median": 2.5, "all": [2.5, 2.5]}
    assert report["higher"]["seconds_per_meta_iter"]["all"] == [10.0, 10.0]
    assert report["ratio"] == pytest.approx(report["fewgen"]["tasks_per_s"]["median"] / 2.5, abs=0.01)
    assert len(report["ratios"]) == 2
    assert envelope["target"] == {"ratio_at_least": 10.0, "meta_batch": 25, "order": "second"}
    assert envelope["met"] == (report["ratio"] >= 10) and report["target_applies"] is True
    assert envelope["settings"]["peer_python"] == sys.executable and envelope["machine"]["threads"] == 1


def test_a_failing_peer_is_a_clean_error(tmp_path: Path) -> None:
    script = write_peer(tmp_path, "import sys\nsys.exit('no higher here')\n")
    result = run([*TINY_SPEED, "--task", "sinusoid", "--peer-python", sys.executable, "--peer-script", str(script)])
    assert result.exit_code == 1 and "the peer failed" in result.output and "no higher here" in result.output


@pytest.mark.parametrize(
    "bad", [["--task", "mnist"], ["--task", "sinusoid", "--repeats", "0"], ["--task", "sinusoid", "--iters", "0"], []]
)
def test_bad_speed_options_exit_cleanly(bad: list[str]) -> None:
    result = run(["bench", "maml-speed", *bad, "--json"])
    assert result.exit_code == 2 and "Traceback" not in result.output


@pytest.mark.skipif(not (HIGHER_PYTHON.is_file() and HIGHER_SCRIPT.is_file()), reason="no higher peer venv here")
def test_the_real_peer_runs_beside_fewgen() -> None:
    peer = ["--peer-python", str(HIGHER_PYTHON), "--peer-script", str(HIGHER_SCRIPT)]
    report = report_of([*TINY_SPEED, "--task", "sinusoid", *peer])
    assert report["higher"]["tasks_per_s"]["median"] > 0 and report["ratio"] > 0
