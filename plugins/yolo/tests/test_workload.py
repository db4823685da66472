"""The YOLO workload of ``fewgen bench contention``, and ultralytics following fewgen's thread policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fewgen_yolo import hooks
from fewgen_yolo.workload import YoloEpochWorkload


def test_workload_is_registered() -> None:
    found: list[type] = []
    hooks.register_workloads(found.append)
    assert found == [YoloEpochWorkload]


def test_each_run_trains_one_epoch_in_a_fresh_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setenv("FEWGEN_CACHE", str(tmp_path / "cache"))
    workload = YoloEpochWorkload(images=8)
    workload.setup(tmp_path)
    deterministic = torch.are_deterministic_algorithms_enabled()
    workload.run()
    workload.run()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["run1", "run2"]
    assert all((tmp_path / "runs" / run / "weights" / "last.pt").is_file() for run in ("run1", "run2"))
    # ultralytics' deterministic mode does not outlive the run.
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_ultralytics_keeps_the_thread_count_the_policy_set(tmp_path: Path) -> None:
    # ultralytics' own count is the CPU count - 1 (at most 8); one more is a count it would never choose.
    code = f"""
import json, os, cv2, torch
from fewgen.threads import apply_threads
from ultralytics.utils import NUM_THREADS
threads = NUM_THREADS + 1
apply_threads(threads)
from fewgen_yolo.training import prepare_ultralytics
prepare_ultralytics({str(tmp_path / "ultralytics")!r})
from ultralytics.utils.torch_utils import select_device
select_device("cpu", verbose=False)  # what every train, val and predict does first
after_import = [torch.get_num_threads(), cv2.getNumThreads()]
apply_threads(1)  # a later step's count
from fewgen_yolo.training import follow_thread_policy
follow_thread_policy()
select_device("cpu", verbose=False)
print(json.dumps({{"threads": threads, "after_import": after_import, "later": torch.get_num_threads()}}))
"""
    environment = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment)
    assert completed.returncode == 0, completed.stderr
    state = json.loads(completed.stdout.strip().splitlines()[-1])
    assert state["after_import"] == [state["threads"], state["threads"]]
    assert state["later"] == 1
