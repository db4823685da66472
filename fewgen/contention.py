"""``fewgen bench contention``: does the thread policy keep work fast beside a busy process?

Each plugin registers small units of its real work (``register_workloads``): a few MAML
meta-iterations, a MUNIT iteration, a YOLO epoch. The benchmark times each on its own
("idle"), then again while a child process spins on one core ("loaded"), both times with
the thread count :func:`fewgen.threads.fair_share` chooses just before, and, for contrast,
loaded with one thread per usable CPU (torch's default), which is what thrashes. It prints
one JSON object: per workload the median seconds of each condition, the threads used and
the slowdowns. The "auto" share is what is timed, so ``FEWGEN_THREADS`` is not consulted.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import click

from fewgen.bench import Bench, BenchResult, bench_command
from fewgen.threads import CpuShare, apply_threads, fair_share

TARGET_SLOWDOWN = 2.5  # the hardening issue's target with one busy process beside the work
# Seconds the busy child gets to start spinning before the policy looks at the machine.
BUSY_SETTLE_SECONDS = 0.5
# A core kept busy until killed; it also ends when its parent dies (it is then re-parented),
# so a benchmark killed without its cleanup leaves nothing spinning behind.
BUSY_LOOP = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    for _ in range(100_000): pass\n"


class Workload(ABC):
    """A small unit of a plugin's real work that ``fewgen bench contention`` times.

    ``setup`` builds models and data once, untimed; ``run`` is the timed unit, about 1 to
    10 seconds on one idle core. The benchmark calls ``run`` once untimed first (imports,
    allocations), then several times per condition, so ``run`` must be repeatable.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""

    @abstractmethod
    def setup(self, folder: Path) -> None:
        """Build models and data; files go under ``folder`` (an empty folder, removed afterwards)."""

    @abstractmethod
    def run(self) -> None:
        """One timed unit of work."""


def _seconds(workload: Workload, repeats: int, threads: int) -> list[float]:
    apply_threads(threads)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        workload.run()
        times.append(round(time.perf_counter() - started, 4))
    return times


@contextlib.contextmanager
def busy_process() -> Iterator[subprocess.Popen[bytes]]:
    """A child process spinning on one core, for as long as the block runs; always killed after."""
    child = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        time.sleep(BUSY_SETTLE_SECONDS)
        yield child
    finally:
        child.kill()
        child.wait()


def time_workloads(
    workloads: dict[str, Workload], repeats: int, contrast: bool, say: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Idle, loaded and (with ``contrast``) loaded-on-default-threads timings of workloads already set up."""
    idle: dict[str, tuple[CpuShare, list[float]]] = {}
    for name, workload in workloads.items():
        share = fair_share()
        apply_threads(share.threads)
        workload.run()  # warm-up, untimed
        idle[name] = share, _seconds(workload, repeats, share.threads)
        say(f"{name}: idle {statistics.median(idle[name][1]):.2f} s (threads: {share.threads})")
    results: dict[str, dict[str, Any]] = {}
    with busy_process() as child:
        for name, workload in workloads.items():
            share = fair_share()
            loaded = _seconds(workload, repeats, share.threads)
            idle_share, idle_times = idle[name]
            entry = results[name] = {
                "idle_seconds": statistics.median(idle_times),
                "loaded_seconds": statistics.median(loaded),
                "slowdown": round(statistics.median(loaded) / statistics.median(idle_times), 2),
                "idle_threads": idle_share.threads,
                "loaded_threads": share.threads,
                "idle_busy_elsewhere": round(idle_share.busy_elsewhere, 2),
                "loaded_busy_elsewhere": round(share.busy_elsewhere, 2),
                "runs": {"idle": idle_times, "loaded": loaded},
            }
            say(f"{name}: loaded {entry['loaded_seconds']:.2f} s (threads: {share.threads}, {entry['slowdown']}x)")
        if contrast:
            # torch's own default: one thread per CPU it may run on, whatever else runs there.
            default_threads = share.usable
            for name, workload in workloads.items():
                entry = results[name]
                times = _seconds(workload, repeats, default_threads)
                entry["runs"]["default_loaded"] = times
                entry["default_threads"] = default_threads
                entry["default_loaded_seconds"] = statistics.median(times)
                entry["default_slowdown"] = round(statistics.median(times) / entry["idle_seconds"], 2)
                seconds = entry["default_loaded_seconds"]
                say(f"{name}: loaded {seconds:.2f} s (threads: {default_threads}, torch's default)")
    return {
        "usable_cpus": share.usable,
        "cgroup_quota": share.quota,
        "busy_process": {"pid": child.pid, "command": child.args},
        "workloads": results,
    }


# Its own thread counts are the measurement (the policy idle and loaded, and torch's default): no --threads.
@bench_command("contention", threads=False)
@click.option(
    "--workload", "names", multiple=True, metavar="NAME", help="Time only this workload (repeatable; default: all)."
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Timed runs per workload and condition; the median is reported.",
)
@click.option(
    "--contrast/--no-contrast",
    default=True,
    show_default=True,
    help="Also time each workload loaded with one thread per usable CPU (torch's default).",
)
def contention(bench: Bench, names: tuple[str, ...], repeats: int, contrast: bool) -> BenchResult:
    """Every registered workload idle and beside one busy process, on the thread policy's count."""
    from fewgen.plugins import get_registry

    registry = get_registry()
    available = registry.workloads  # classes by name, attributed to their plugins
    unknown = sorted(set(names) - set(available))
    if unknown:
        known = ", ".join(sorted(available)) or "none is installed"
        raise click.BadParameter(f"unknown workload {unknown[0]!r} (available: {known})", param_hint="--workload")
    chosen = sorted(names or available)
    if not chosen:
        raise click.UsageError("no plugin registers a workload")

    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="fewgen-bench-contention-"))
    try:
        workloads: dict[str, Workload] = {}
        for name in chosen:
            workloads[name] = available[name][1]()
            (folder / name).mkdir()
            workloads[name].setup(folder / name)
        timed = time_workloads(workloads, repeats, contrast, bench.say)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for name, entry in timed["workloads"].items():
        entry["plugin"] = available[name][0]
        entry["description"] = available[name][1].description
    figures = {
        "usable_cpus": timed["usable_cpus"],
        "cgroup_quota": timed["cgroup_quota"],
        "busy_process": timed["busy_process"],
        "workloads": timed["workloads"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    within = all(e["slowdown"] <= TARGET_SLOWDOWN for e in timed["workloads"].values())
    return BenchResult(figures, target={"slowdown_at_most": TARGET_SLOWDOWN}, met=within)
