"""The thread policy: an explicit count, the FEWGEN_THREADS override, and "auto"'s fair share of the CPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fewgen.errors import UsageError
from fewgen.threads import THREADS_ENV, CpuProbe, fair_share, resolve_threads


def stat_text(busy_ticks: dict[int, tuple[int, int]]) -> str:
    """A /proc/stat with one line per CPU: (busy, idle) ticks, the busy ones split over user and system."""
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    for cpu, (busy, idle) in sorted(busy_ticks.items()):
        lines.append(f"cpu{cpu} {busy - busy // 3} 0 {busy // 3} {idle - idle // 10} {idle // 10} 0 0 0 0 0")
    return "\n".join([*lines, "intr 12345 0 0", "ctxt 999"]) + "\n"


def fake_probe(
    tmp_path: Path,
    before: dict[int, tuple[int, int]],
    after: dict[int, tuple[int, int]],
    cpus: set[int],
    own_cpu: float = 0.0,
) -> CpuProbe:
    """A probe for one measurement: /proc/stat turns from ``before`` into ``after`` while it sleeps,
    and this process used ``own_cpu`` seconds meanwhile."""
    stat = tmp_path / "stat"
    stat.write_text(stat_text(before))
    clock = iter([0.0, own_cpu])

    def sleep(seconds: float) -> None:
        stat.write_text(stat_text(after))

    return CpuProbe(
        proc_stat=stat,
        cgroup=tmp_path / "no-cgroup",
        seconds=0.2,
        sleep=sleep,
        own_cpu_seconds=lambda: next(clock),
        affinity=lambda: cpus,
    )


def two_cpus(tmp_path: Path, second_busy_share: float, own_cpu: float = 0.0) -> CpuProbe:
    """Two CPUs over 100 ticks each: the first idle, the second busy for ``second_busy_share`` of them."""
    busy = round(100 * second_busy_share)
    return fake_probe(tmp_path, {0: (0, 0), 1: (0, 0)}, {0: (0, 100), 1: (busy, 100 - busy)}, {0, 1}, own_cpu)


@pytest.fixture(autouse=True)
def no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)


def test_an_explicit_count_is_taken_as_it_is(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert resolve_threads(3) == 3
    assert resolve_threads(64) == 64  # more than the CPUs: the recipe said so
    monkeypatch.setenv(THREADS_ENV, "5")
    assert resolve_threads(2) == 2  # the variable overrides "auto", not a recipe's number
    for wrong in (0, -1, True, 1.5, "4"):
        with pytest.raises(ValueError, match="positive integer"):
            resolve_threads(wrong)  # type: ignore[arg-type]


def test_fewgen_threads_overrides_auto(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    probe = two_cpus(tmp_path, 0.0)
    monkeypatch.setenv(THREADS_ENV, "5")
    assert resolve_threads("auto", probe) == 5
    assert resolve_threads(None, probe) == 5
    monkeypatch.setenv(THREADS_ENV, "auto")
    assert resolve_threads("auto", probe) == 2
    for wrong in ("0", "two", "-3"):
        monkeypatch.setenv(THREADS_ENV, wrong)
        with pytest.raises(UsageError, match=THREADS_ENV):
            resolve_threads("auto", probe)


@pytest.mark.parametrize(
    ("busy_share", "threads"),
    [(0.0, 2), (0.4, 2), (0.5, 1), (1.0, 1)],
)
def test_auto_leaves_out_the_cores_others_keep_busy(tmp_path: Path, busy_share: float, threads: int) -> None:
    share = fair_share(two_cpus(tmp_path, busy_share))
    assert share.usable == 2
    assert share.busy_elsewhere == pytest.approx(busy_share)
    assert share.threads == threads
    assert resolve_threads("auto", two_cpus(tmp_path, busy_share)) == threads


def test_auto_never_goes_below_one_thread(tmp_path: Path) -> None:
    busy = {0: (100, 0), 1: (100, 0)}
    assert fair_share(fake_probe(tmp_path, {0: (0, 0), 1: (0, 0)}, busy, {0, 1})).busy_elsewhere == pytest.approx(2.0)
    assert resolve_threads("auto", fake_probe(tmp_path, {0: (0, 0), 1: (0, 0)}, busy, {0, 1})) == 1


def test_this_process_own_cpu_time_is_not_a_neighbour(tmp_path: Path) -> None:
    # Both CPUs busy, but for 0.2 s of the 0.2 s interval one of them ran our own threads.
    probe = fake_probe(tmp_path, {0: (0, 0), 1: (0, 0)}, {0: (100, 0), 1: (100, 0)}, {0, 1}, own_cpu=0.2)
    share = fair_share(probe)
    assert share.busy_elsewhere == pytest.approx(1.0, abs=0.01)
    assert share.threads == 1


def test_only_the_cpus_of_the_affinity_count(tmp_path: Path) -> None:
    before = {cpu: (0, 0) for cpu in range(8)}
    # CPUs 4-7 are fully busy, but this process may run on 0-3 only, which are idle.
    after = {cpu: (100, 0) if cpu >= 4 else (0, 100) for cpu in range(8)}
    share = fair_share(fake_probe(tmp_path, before, after, {0, 1, 2, 3}))
    assert (share.usable, share.busy_elsewhere, share.threads) == (4, 0.0, 4)
    after[1] = (100, 0)
    assert fair_share(fake_probe(tmp_path, before, after, {0, 1, 2, 3})).threads == 3


def test_the_real_machine_gives_a_count_within_the_affinity() -> None:
    share = fair_share()
    assert share.usable == len(os.sched_getaffinity(0))
    assert 1 <= share.threads <= share.usable
    assert share.busy_elsewhere >= 0.0
    assert set(share.as_dict()) == {"usable_cpus", "busy_elsewhere", "cgroup_quota", "threads"}


@pytest.mark.parametrize(
    ("files", "quota", "threads"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5, 1),
        ({"cpu.max": "max 100000\n"}, None, 4),
        ({"cpu.max": "300000 100000\n"}, 3.0, 3),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0, 2),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None, 4),
        ({"cpu.max": "garbage\n"}, None, 4),
    ],
)
def test_a_cgroup_cpu_quota_caps_the_share(tmp_path: Path, files: dict[str, str], quota: float | None, threads: int):
    cgroup = tmp_path / "cgroup"
    for name, text in files.items():
        (cgroup / name).parent.mkdir(parents=True, exist_ok=True)
        (cgroup / name).write_text(text)
    idle = {cpu: (0, 100) for cpu in range(4)}
    probe = fake_probe(tmp_path, {cpu: (0, 0) for cpu in range(4)}, idle, {0, 1, 2, 3})
    probe.cgroup = cgroup
    share = fair_share(probe)
    assert (share.quota, share.threads) == (quota, threads)


def test_without_proc_stat_nothing_counts_as_busy(tmp_path: Path) -> None:
    probe = CpuProbe(proc_stat=tmp_path / "missing", cgroup=tmp_path, sleep=lambda _: None, affinity=lambda: {0, 1})
    assert fair_share(probe).threads == 2


def run_python(code: str, env: dict[str, str] | None = None) -> dict[str, object]:
    """The JSON line ``code`` prints, run in a fresh interpreter (torch's thread pool starts once per process)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment | (env or {}), check=False
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


PRINT_STATE = (
    "import json, os, torch, cv2; print(json.dumps({'torch': torch.get_num_threads(), 'cv2': cv2.getNumThreads(),"
    " 'omp': os.environ.get('OMP_NUM_THREADS'), 'mkl': os.environ.get('MKL_NUM_THREADS')}))"
)


def test_apply_threads_sets_torch_and_opencv_when_imported() -> None:
    # 3 differs from torch's default on the 2-core machines this runs on, and from 1.
    state = run_python(f"import torch, cv2\nfrom fewgen.threads import apply_threads\napply_threads(3)\n{PRINT_STATE}")
    assert state == {"torch": 3, "cv2": 3, "omp": "3", "mkl": "3"}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="torch's default is 1 thread here too")
def test_a_torch_imported_after_apply_threads_starts_with_its_count() -> None:
    # 1, not more: a torch that starts from OMP_NUM_THREADS caps it at the CPUs it may use.
    state = run_python(f"from fewgen.threads import apply_threads\napply_threads(1)\n{PRINT_STATE}")
    assert (state["torch"], state["omp"], state["mkl"]) == (1, "1", "1")


def test_apply_threads_refuses_nonsense() -> None:
    from fewgen.threads import apply_threads

    for wrong in (0, -2, True, 2.0):
        with pytest.raises(ValueError, match="positive integer"):
            apply_threads(wrong)  # type: ignore[arg-type]


def test_threads_restored_undoes_apply_threads() -> None:
    code = (
        "import json, os, torch, cv2\n"
        "from fewgen.threads import apply_threads, applied_threads, threads_restored\n"
        "torch.set_num_threads(2); cv2.setNumThreads(2)\n"
        "with threads_restored():\n"
        "    apply_threads(1)\n"
        "    inside = [torch.get_num_threads(), applied_threads()]\n"
        "print(json.dumps({'inside': inside, 'after': [torch.get_num_threads(), cv2.getNumThreads(),"
        " applied_threads(), os.environ.get('OMP_NUM_THREADS')]}))"
    )
    assert run_python(code) == {"inside": [1, 1], "after": [2, 2, None, None]}


def test_the_module_imports_no_torch() -> None:
    state = run_python("import json, sys, fewgen.threads; print(json.dumps({'torch': 'torch' in sys.modules}))")
    assert state == {"torch": False}
