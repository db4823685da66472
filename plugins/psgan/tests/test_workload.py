"""The PS-GAN workload of ``fewgen bench contention``: registered, and it trains."""

from __future__ import annotations

from pathlib import Path

from fewgen_psgan import hooks
from fewgen_psgan.workload import PsganTinyWorkload


def test_workload_is_registered() -> None:
    found: list[type] = []
    hooks.register_workloads(found.append)
    assert found == [PsganTinyWorkload]


def test_each_run_takes_its_training_iterations(tmp_path: Path) -> None:
    workload = PsganTinyWorkload(iterations=1)
    workload.setup(tmp_path)
    assert workload.inputs.shape == (8, 3, 64, 64)
    # The box holds noise in the inputs; outside it they are the targets.
    assert workload.inputs[:, :, :4].equal(workload.targets[:, :, :4])
    workload.run()
    workload.run()
    assert workload.trainer.gen_opt.state_dict()["state"][0]["step"] == 2  # two Adam steps
