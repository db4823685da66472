"""The DRAEM workload of ``fewgen bench contention``: anomaly synthesis on a batch of images.

Every image gets a Perlin-noise anomaly (no normal share), as when the ``draem`` generator
or DRAEM's training makes its defective examples; 256 px, the paper's training size.
"""

from __future__ import annotations

from pathlib import Path

from fewgen.contention import Workload

SIZE = 256
BATCH = 16


class DraemSynthesisWorkload(Workload):
    name = "draem-synthesis"
    description = f"DRAEM anomaly synthesis, batches of {BATCH} images of {SIZE} px with Perlin-noise anomalies"

    def __init__(self, batches: int = 40) -> None:
        self.batches = batches

    def setup(self, folder: Path) -> None:
        import torch

        from fewgen_draem.synthesis import AnomalySynthesizer

        self.synthesizer = AnomalySynthesizer(normal_share=0.0)
        self.generator = torch.Generator().manual_seed(0)
        self.images = torch.rand(BATCH, 3, SIZE, SIZE, generator=self.generator)

    def run(self) -> None:
        for _ in range(self.batches):
            self.synthesizer(self.images, self.generator)
