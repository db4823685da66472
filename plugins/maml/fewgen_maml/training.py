"""The meta-training loop: sample a meta-batch, take a meta-step, checkpoint, resume.

The task sampler draws from one ``torch.Generator``, whose state is saved with the model,
the optimiser and the step count, so a run interrupted and resumed from its checkpoint
makes exactly the meta-updates an uninterrupted run makes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from fewgen_maml.maml import MAML
from fewgen_maml.tasks import TaskBatch

TaskSampler = Callable[[torch.Generator], TaskBatch]
StepCallback = Callable[[int, dict[str, float]], None]


def meta_train(
    maml: MAML,
    sample: TaskSampler,
    steps: int,
    generator: torch.Generator,
    checkpoint: Path | None = None,
    checkpoint_every: int = 500,
    on_step: StepCallback | None = None,
) -> list[dict[str, float]]:
    """Meta-train until ``maml`` has made ``steps`` meta-updates; returns this call's metrics.

    ``sample(generator)`` returns one meta-batch (e.g. ``partial(SinusoidTasks().sample, 25)``).
    With ``checkpoint``, an existing file is resumed from (model, optimiser, schedule, step and
    the generator's state), and the state is saved there every ``checkpoint_every`` meta-updates
    and at the end. ``on_step(step, metrics)`` is called after every meta-update.
    """
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
    if checkpoint is not None and checkpoint.exists():
        extra = maml.load_checkpoint(checkpoint)
        generator.set_state(extra["generator"])
    history = []
    while maml.meta_steps < steps:
        metrics = maml.meta_step(sample(generator))
        history.append(metrics)
        if on_step is not None:
            on_step(maml.meta_steps, metrics)
        if checkpoint is not None and (maml.meta_steps % checkpoint_every == 0 or maml.meta_steps == steps):
            maml.save_checkpoint(checkpoint, extra={"generator": generator.get_state()})
    return history
