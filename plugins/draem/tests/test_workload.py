"""The DRAEM workload of ``fewgen bench contention``: registered, and it synthesises anomalies."""

from __future__ import annotations

from pathlib import Path

import torch
from fewgen_draem import hooks
from fewgen_draem.workload import BATCH, SIZE, DraemSynthesisWorkload


def test_workload_is_registered() -> None:
    found: list[type] = []
    hooks.register_workloads(found.append)
    assert found == [DraemSynthesisWorkload]


def test_each_run_draws_fresh_anomalies(tmp_path: Path) -> None:
    workload = DraemSynthesisWorkload(batches=1)
    workload.setup(tmp_path)
    assert workload.images.shape == (BATCH, 3, SIZE, SIZE)
    states = [workload.generator.get_state()]
    for _ in range(2):
        workload.run()
        states.append(workload.generator.get_state())
    # Every run drew from the generator, so repeated runs synthesise new anomalies.
    assert not torch.equal(states[0], states[1]) and not torch.equal(states[1], states[2])
    # Every image gets an anomaly: no normal share.
    assert bool(workload.synthesizer(workload.images[:2], workload.generator).masks.flatten(1).amax(1).gt(0).all())
