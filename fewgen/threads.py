"""How many threads torch and OpenCV may use: a fair share of the CPUs, decided when work starts.

torch starts one intra-op thread per CPU, and its parallel regions end in a barrier: when
another process keeps one of those CPUs busy, every region waits for the thread that was
descheduled. On a 2-core machine with one busy neighbour that made MAML's meta-iterations
40 times slower than on one thread. So "auto" takes the CPUs this process may run on
(its affinity, capped by a cgroup CPU quota) and leaves out those that other processes are
keeping busy right now.

"Busy right now" is measured from ``/proc/stat`` over ``SAMPLE_SECONDS``: the busy share of
each usable CPU, summed, minus this process's own CPU time in that interval (torch's
threads may still be spinning from earlier work; a busy child process counts as a
neighbour). ``/proc/loadavg``'s running count was the alternative; it is a single instant,
counts this process's own runnable threads, and jumps with every short-lived process, so it
decides the count on noise. A core counts as taken when others kept it busy at least half
the interval (the busy share is rounded half up).

The count can change results. A convolution's weight gradient is a sum that torch splits
among its threads, and floating-point sums split differently round differently: measured
with torch 2.14 on CPU, a small conv net's first gradients differ by 1e-6 between 1 and 2
threads and its weights after 100 Adam steps by up to 6e-3 (conv + batch norm: 1e-5; the
MUNIT tiny preset: 4e-4 after 3 iterations), with or without
``torch.use_deterministic_algorithms``; MAML's sinusoid MLP came out bit-identical. Equal
counts gave equal results, so the count used must be on record.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fewgen.errors import UsageError

THREADS_ENV = "FEWGEN_THREADS"
# Read by OpenMP and MKL when torch first starts its thread pool, so a torch imported after
# apply_threads starts with the policy's count.
LIBRARY_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
SAMPLE_SECONDS = 0.2
# Fields of a /proc/stat cpu line that are idle time: idle, iowait.
IDLE_FIELDS = (3, 4)
# user nice system idle iowait irq softirq steal; guest time is already counted in user and nice.
COUNTED_FIELDS = 8

_applied: int | None = None


def _usable_cpus() -> set[int]:
    if hasattr(os, "sched_getaffinity"):
        return os.sched_getaffinity(0)
    return set(range(os.cpu_count() or 1))


@dataclass(frozen=True)
class CpuShare:
    """What "auto" saw: usable CPUs, the cores others kept busy, the cgroup quota, and the share it chose."""

    usable: int
    busy_elsewhere: float
    quota: float | None
    threads: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "usable_cpus": self.usable,
            "busy_elsewhere": round(self.busy_elsewhere, 2),
            "cgroup_quota": self.quota,
            "threads": self.threads,
        }


@dataclass
class CpuProbe:
    """Where the policy reads the machine's state; tests point it at fake files and a fake clock."""

    proc_stat: Path = Path("/proc/stat")
    cgroup: Path = Path("/sys/fs/cgroup")
    seconds: float = SAMPLE_SECONDS
    sleep: Callable[[float], None] = time.sleep
    own_cpu_seconds: Callable[[], float] = time.process_time
    affinity: Callable[[], set[int]] = _usable_cpus

    def cpu_times(self) -> dict[int, tuple[int, int]]:
        """Busy and total clock ticks of each CPU since boot, by CPU number."""
        times: dict[int, tuple[int, int]] = {}
        try:
            text = self.proc_stat.read_text()
        except OSError:  # not Linux: nothing is known to be busy
            return times
        for line in text.splitlines():
            name, *values = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                ticks = [int(v) for v in values[:COUNTED_FIELDS]]
                idle = sum(ticks[i] for i in IDLE_FIELDS)
                times[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
        return times

    def busy_elsewhere(self, cpus: set[int]) -> float:
        """Cores of ``cpus`` that other processes kept busy over the next ``seconds``."""
        before, own_before, started = self.cpu_times(), self.own_cpu_seconds(), time.monotonic()
        self.sleep(self.seconds)
        after, own = self.cpu_times(), self.own_cpu_seconds() - own_before
        elapsed = max(time.monotonic() - started, self.seconds)
        busy = 0.0
        for cpu in cpus & before.keys() & after.keys():
            total = after[cpu][1] - before[cpu][1]
            if total > 0:
                busy += (after[cpu][0] - before[cpu][0]) / total
        return max(0.0, busy - own / elapsed)

    def quota(self) -> float | None:
        """CPUs the cgroup may use (cgroup v2 ``cpu.max``, or v1 CFS quota), or None without a limit."""
        v2 = self.cgroup / "cpu.max"
        v1 = self.cgroup / "cpu" / "cpu.cfs_quota_us", self.cgroup / "cpu" / "cpu.cfs_period_us"
        try:
            if v2.is_file():
                limit, period = v2.read_text().split()[:2]
                return None if limit == "max" else int(limit) / int(period)
            if v1[0].is_file():
                limit, period = (int(path.read_text()) for path in v1)
                return None if limit < 0 else limit / period
        except (OSError, ValueError):
            return None
        return None

    def share(self) -> CpuShare:
        cpus = self.affinity()
        quota = self.quota()
        busy = self.busy_elsewhere(cpus)
        free = len(cpus) - math.floor(busy + 0.5)
        if quota is not None:
            free = min(free, math.floor(quota))
        return CpuShare(len(cpus), busy, quota, max(1, free))


def resolve_threads(requested: int | Literal["auto"] | None, probe: CpuProbe | None = None) -> int:
    """The thread count for ``requested``: an int as it is; "auto" or None a fair share (``FEWGEN_THREADS`` overrides).

    The fair share is the CPUs this process may use (affinity, capped by a cgroup quota)
    minus the cores other processes are keeping busy now, at least 1 (see the module's
    docstring for how that is measured).
    """
    if requested not in ("auto", None):
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"threads must be a positive integer or 'auto', got {requested!r}")
        return requested
    override = os.environ.get(THREADS_ENV, "").strip()
    if override and override != "auto":
        if not override.isdigit() or int(override) < 1:
            raise UsageError(f"{THREADS_ENV} must be a positive integer or 'auto', got {override!r}")
        return int(override)
    return fair_share(probe).threads


def fair_share(probe: CpuProbe | None = None) -> CpuShare:
    """What "auto" would choose now, with what it saw (for benchmarks and the manifest)."""
    return (probe or CpuProbe()).share()


def apply_threads(n: int) -> None:
    """Make torch and OpenCV use ``n`` threads: now if they are imported, from their start if not."""
    global _applied
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"thread count must be a positive integer, got {n!r}")
    for name in LIBRARY_ENV:
        os.environ[name] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(n)
    _applied = n


def applied_threads() -> int | None:
    """The count apply_threads set last in this process, or None: for plugins whose libraries reset it."""
    return _applied


@contextmanager
def threads_restored() -> Iterator[None]:
    """Undo, on leaving, every apply_threads inside (benchmarks that try several counts in one process)."""
    global _applied
    saved_env = {name: os.environ.get(name) for name in LIBRARY_ENV}
    saved_applied = _applied
    torch, cv2 = sys.modules.get("torch"), sys.modules.get("cv2")
    saved_torch = torch.get_num_threads() if torch is not None else None
    saved_cv2 = cv2.getNumThreads() if cv2 is not None else None
    try:
        yield
    finally:
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if saved_torch is not None:
            torch.set_num_threads(saved_torch)
        if saved_cv2 is not None:
            cv2.setNumThreads(saved_cv2)
        _applied = saved_applied
