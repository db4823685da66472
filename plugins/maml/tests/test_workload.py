"""The MAML workload of ``fewgen bench contention``: registered, and it meta-trains."""

from __future__ import annotations

from pathlib import Path

import torch
from fewgen_maml import hooks
from fewgen_maml.workload import MamlSinusoidWorkload


def test_workload_is_registered() -> None:
    found: list[type] = []
    hooks.register_workloads(found.append)
    assert found == [MamlSinusoidWorkload]


def test_each_run_takes_its_meta_steps(tmp_path: Path) -> None:
    workload = MamlSinusoidWorkload(iterations=3)
    workload.setup(tmp_path)
    assert len(workload.batches) == 3
    before = [p.detach().clone() for p in workload.maml.model.parameters()]
    workload.run()
    workload.run()  # repeatable
    after = list(workload.maml.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
