"""What every ``fewgen bench`` command shares: its common options, a peer run, one JSON envelope.

A plugin's benchmark is a click command made with :func:`bench_command`::

    @bench_command("draem-synth", device=True, peer=True)
    @click.option("--images", type=int, default=64)
    def draem_synth(bench: Bench, images: int) -> BenchResult:
        bench.say("synthesising ...")                      # stderr, hidden with --json
        ours = ...
        theirs = bench.run_peer(script, ["--images", str(images)]) if bench.peer_python else None
        return BenchResult({"ours": ours, "peer": theirs}, target={"ratio_at_least": 1.0}, met=...)

The decorator adds ``--json`` (print only the envelope), ``--seed``, ``--threads`` (torch's and
OpenCV's thread count for the whole bench; default: fewgen's thread policy), optionally
``--device`` and ``--peer-python`` (the interpreter of a peer's own virtual environment, for
side-by-side runs of another implementation), and prints one JSON object on stdout:

``{"benchmark", "settings", "machine", "figures", "target", "met"}``

``settings`` holds every option as given or defaulted, ``machine`` what the figures depend on
(CPU, cores, threads, device, library versions), ``target`` what the figures are measured
against (or null) and ``met`` whether they reach it (or null). Library output that would go to
stdout is sent to stderr while the command runs, so stdout is only the envelope.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

ENVELOPE_KEYS = ("benchmark", "settings", "machine", "figures", "target", "met")


@dataclass
class BenchResult:
    """What a bench command returns: its figures, and the target they are read against."""

    figures: dict[str, Any]
    target: dict[str, Any] | None = None
    met: bool | None = None
    # Settings the command resolved itself (a default it chose from the data, say), beside the options.
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Bench:
    """Handed to a bench command: its common options and helpers."""

    name: str
    as_json: bool
    seed: int
    threads: int
    device: str | None = None
    peer_python: Path | None = None

    def resolved_device(self) -> str:
        """``--device`` as the engine resolves a recipe's (``auto``: CUDA when torch finds a GPU); a bad
        name or an unavailable GPU is a one-line error."""
        from fewgen.engine import resolve_device
        from fewgen.recipe import check_device

        return resolve_device(check_device(self.device or "auto"))

    def say(self, message: str) -> None:
        """A progress line on stderr (hidden with --json)."""
        if not self.as_json:
            click.echo(message, err=True)

    def run_peer(self, script: Path, args: list[str], timeout: float | None = None) -> dict[str, Any]:
        """Run ``script`` with the peer's interpreter and return the JSON object its last stdout line holds.

        The peer runs with the bench's thread count (``OMP_NUM_THREADS`` and friends), so a
        side-by-side ratio compares like with like.
        """
        if self.peer_python is None:
            raise click.UsageError(f"{self.name}: no peer interpreter given (--peer-python)")
        if not script.is_file():
            raise click.UsageError(f"{self.name}: peer script not found: {script}")
        from fewgen.threads import LIBRARY_ENV

        environment = {**os.environ, **{name: str(self.threads) for name in LIBRARY_ENV}}
        self.say(f"running the peer: {self.peer_python} {script.name} {' '.join(args)}")
        try:
            done = subprocess.run(
                [str(self.peer_python), str(script), *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=environment,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise click.ClickException(f"{self.name}: the peer did not run: {exc}") from None
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        if done.returncode != 0 or not lines:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise click.ClickException(f"{self.name}: the peer failed (exit {done.returncode}): {last}")
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError:
            raise click.ClickException(f"{self.name}: the peer's last line is not JSON: {lines[-1][:200]}") from None


def machine(threads: int, device: str | None) -> dict[str, Any]:
    """What a figure measured here depends on: the CPU, the cores it may use, threads, device, versions."""
    from fewgen import __version__
    from fewgen.provenance import library_versions

    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "threads": threads,
        "device": device,
        "python": platform.python_version(),
        # Not platform.platform(): it runs `uname -p` in a subprocess.
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "fewgen": __version__,
        "libraries": library_versions(),
    }
    torch = sys.modules.get("torch")  # only when the bench used it: importing it costs seconds
    if torch is not None and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.machine()


def envelope(bench: Bench, settings: dict[str, Any], result: BenchResult) -> dict[str, Any]:
    """The one JSON shape every bench prints."""
    return {
        "benchmark": bench.name,
        "settings": {"seed": bench.seed, "threads": bench.threads, **settings, **result.settings},
        "machine": machine(bench.threads, bench.device),
        "figures": result.figures,
        "target": result.target,
        "met": result.met,
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy and torch scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def bench_command(
    name: str,
    *,
    device: bool = False,
    peer: bool = False,
    threads: bool = True,
    default_seed: int = 0,
) -> Callable[[Callable[..., BenchResult]], click.Command]:
    """Make ``func(bench, **options) -> BenchResult`` the ``fewgen bench NAME`` command (see the module).

    ``device`` and ``peer`` add ``--device`` and ``--peer-python``; ``threads=False`` leaves out
    ``--threads`` for a bench whose thread counts are what it measures (the policy's count is
    applied and recorded all the same).
    """
    with_threads = threads

    def decorate(func: Callable[..., BenchResult]) -> click.Command:
        @functools.wraps(func)
        def command(as_json: bool, seed: int, **options: Any) -> None:
            from fewgen.threads import apply_threads, resolve_threads, threads_restored

            threads = options.pop("threads", None)
            chosen_device = options.pop("device", None)
            peer_python = options.pop("peer_python", None)
            with threads_restored():
                count = resolve_threads(threads if threads is not None else "auto")
                apply_threads(count)
                bench = Bench(name, as_json, seed, count, chosen_device, Path(peer_python) if peer_python else None)
                with contextlib.redirect_stdout(sys.stderr):
                    result = func(bench, **options)
                if not isinstance(result, BenchResult):
                    raise TypeError(f"bench {name!r} returned {type(result).__name__}, not a BenchResult")
                settings = {**options, "device": chosen_device} if device else dict(options)
                if peer:
                    settings["peer_python"] = peer_python
                report = envelope(bench, settings, result)
            if not as_json:
                click.echo(f"{name}: {_headline(result)}", err=True)
            click.echo(json.dumps(report, default=_json_default))

        command = click.option("--json", "as_json", is_flag=True, help="Print only the JSON result on stdout.")(command)
        if with_threads:
            command = click.option(
                "--threads",
                type=click.IntRange(min=1),
                help="torch and OpenCV threads for the whole bench (default: fewgen's thread policy, by the load).",
            )(command)
        command = click.option("--seed", type=int, default=default_seed, show_default=True, help="Random seed.")(
            command
        )
        if device:
            command = click.option(
                "--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda or cuda:N."
            )(command)
        if peer:
            command = click.option(
                "--peer-python",
                type=click.Path(exists=True, dir_okay=False),
                help="Python of the peer implementation's own virtual environment (side-by-side run); "
                "without it the peer is left out.",
            )(command)
        return click.command(name)(command)

    return decorate


def _headline(result: BenchResult) -> str:
    if result.met is None:
        return "done (no target)"
    return f"target {'met' if result.met else 'NOT met'}: {json.dumps(result.target, default=_json_default)}"


def precision_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--precision fp32|bf16`` (repeatable, into ``precisions``): time ``what`` at each in one run."""
    return click.option(
        "--precision",
        "precisions",
        type=click.Choice(["fp32", "bf16"]),
        multiple=True,
        default=("fp32",),
        show_default=True,
        help=f"Repeat to time both in one run (bf16: {what} under autocast); the first is the bench's figure.",
    )


def precision_figures(by_precision: dict[str, dict[str, Any]], seconds_key: str) -> dict[str, Any]:
    """With both precisions timed: each one's figures and ``bf16_speedup`` (fp32 seconds / bf16 seconds,
    above 1 when bf16 is faster on this machine, in this run); nothing with one."""
    if not {"fp32", "bf16"} <= set(by_precision):
        return {}
    fp32, bf16 = (by_precision[name][seconds_key] for name in ("fp32", "bf16"))
    return {"by_precision": by_precision, "bf16_speedup": round(fp32 / bf16, 3)}
