"""The MUNIT workload of ``fewgen bench contention``: registered, and it trains."""

from __future__ import annotations

from pathlib import Path

from fewgen_munit import hooks
from fewgen_munit.workload import MunitTinyWorkload


def test_workload_is_registered() -> None:
    found: list[type] = []
    hooks.register_workloads(found.append)
    assert found == [MunitTinyWorkload]


def test_each_run_takes_its_training_iterations(tmp_path: Path) -> None:
    workload = MunitTinyWorkload(iterations=1)
    workload.setup(tmp_path)
    assert workload.images.shape == (2, 1, 3, 64, 64)
    workload.run()
    workload.run()
    assert workload.trainer.gen_scheduler.last_epoch == 2  # two iterations, each steps the schedule
