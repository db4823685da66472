"""The MUNIT workload of ``fewgen bench contention``: training iterations of the tiny preset.

One iteration is a discriminator and a generator update on one image of each domain at the
preset's own training size, as the ``munit`` generator trains on a CPU.
"""

from __future__ import annotations

from pathlib import Path

from fewgen.contention import Workload


class MunitTinyWorkload(Workload):
    name = "munit-tiny"
    description = "MUNIT training iterations (tiny preset, 64 px, one image per domain)"

    def __init__(self, iterations: int = 12) -> None:
        self.iterations = iterations

    def setup(self, folder: Path) -> None:
        import torch

        from fewgen_munit.training import MunitTrainer

        self.trainer = MunitTrainer("tiny", seed=0)
        size = self.trainer.config.image_size
        generator = torch.Generator().manual_seed(0)
        self.images = torch.rand(2, 1, 3, size, size, generator=generator) * 2 - 1

    def run(self) -> None:
        for _ in range(self.iterations):
            self.trainer.step(self.images[0], self.images[1])
