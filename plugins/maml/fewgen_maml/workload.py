"""The MAML workload of ``fewgen bench contention``: second-order meta-iterations on sinusoids.

The settings of ``fewgen bench maml-speed --task sinusoid``, the benchmark whose collapse on
a busy machine (thousands of tasks per second on one thread, about a hundred on two) led to
the thread policy: the 1-40-40-1 MLP, 25 tasks of K = 10 points, one inner step.
"""

from __future__ import annotations

from pathlib import Path

from fewgen.contention import Workload

META_BATCH = 25


class MamlSinusoidWorkload(Workload):
    name = "maml-sinusoid"
    description = f"second-order MAML meta-iterations on sinusoid regression, {META_BATCH} tasks each"

    def __init__(self, iterations: int = 500) -> None:
        self.iterations = iterations

    def setup(self, folder: Path) -> None:
        import torch

        from fewgen_maml.backbones import sinusoid_mlp
        from fewgen_maml.maml import MAML, MAMLConfig
        from fewgen_maml.tasks import SinusoidTasks

        torch.manual_seed(0)
        self.maml = MAML(sinusoid_mlp(), MAMLConfig(loss="mse", inner_lr=0.01, meta_batch_size=META_BATCH))
        generator = torch.Generator().manual_seed(0)
        tasks = SinusoidTasks(shots=10, queries=10)
        self.batches = [tasks.sample(META_BATCH, generator) for _ in range(self.iterations)]

    def run(self) -> None:
        for batch in self.batches:
            self.maml.meta_step(batch)
