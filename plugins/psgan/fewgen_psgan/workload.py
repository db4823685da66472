"""The PS-GAN workload of ``fewgen bench contention``: training iterations of the tiny preset.

Each iteration updates the generator and both discriminators on a batch of windows whose
pedestrian box is filled with noise, at the preset's window size and batch size.
"""

from __future__ import annotations

from pathlib import Path

from fewgen.contention import Workload


class PsganTinyWorkload(Workload):
    name = "psgan-tiny"
    description = "PS-GAN training iterations (tiny preset: 64 px windows, batch of 8)"

    def __init__(self, iterations: int = 15) -> None:
        self.iterations = iterations

    def setup(self, folder: Path) -> None:
        import torch

        from fewgen_psgan.pairs import with_noise
        from fewgen_psgan.training import PsganTrainer

        self.trainer = PsganTrainer("tiny", seed=0)
        size, batch = self.trainer.config.size, self.trainer.config.batch_size
        generator = torch.Generator().manual_seed(0)
        self.targets = torch.rand(batch, 3, size, size, generator=generator) * 2 - 1
        # A standing person's box: a quarter of the window wide, three quarters tall, centred.
        self.boxes = torch.tensor([[3 * size // 8, size // 8, 5 * size // 8, 7 * size // 8]] * batch)
        self.inputs = with_noise(self.targets, self.boxes, generator)

    def run(self) -> None:
        for _ in range(self.iterations):
            self.trainer.step(self.inputs, self.targets, self.boxes)
