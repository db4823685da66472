"""Meta-training as a fewgen.training trainer: one meta-update an iteration, checkpointed, resumed exactly.

The task sampler draws from one ``torch.Generator``, whose state is saved with the model, the
optimiser and the step count, so a run interrupted and resumed from its checkpoint makes exactly
the meta-updates an uninterrupted run makes (:func:`fewgen.training.fit` does the budget, the
atomic checkpoints and their identity check).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fewgen.training import Budget, FitSummary, fit
from fewgen_maml.maml import MAML
from fewgen_maml.tasks import TaskBatch

TaskSampler = Callable[[torch.Generator], TaskBatch]
StepCallback = Callable[[int, dict[str, float]], None]


class MetaTraining:
    """MAML's meta-training (a :class:`fewgen.training.Trainable`): each iteration samples a meta-batch
    from ``generator`` and takes one meta-step."""

    def __init__(self, maml: MAML, sample: TaskSampler, generator: torch.Generator):
        self.maml = maml
        self.sample = sample
        self.generator = generator

    def train_step(self) -> dict[str, float]:
        return self.maml.meta_step(self.sample(self.generator))

    def state_dict(self) -> dict[str, Any]:
        return {"maml": self.maml.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.maml.load_state_dict(state["maml"])
        self.generator.set_state(state["generator"].cpu())

    def identity(self) -> dict[str, Any]:
        return self.maml.checkpoint_identity()


def meta_train(
    maml: MAML,
    sample: TaskSampler,
    steps: int,
    generator: torch.Generator,
    checkpoint: Path | None = None,
    checkpoint_every: int = 500,
    on_step: StepCallback | None = None,
    minutes: float | None = None,
) -> tuple[list[dict[str, float]], FitSummary]:
    """Meta-train until ``steps`` meta-updates (or ``minutes`` of training) are done in all; this call's
    metrics and the fit summary.

    ``sample(generator)`` returns one meta-batch (e.g. ``partial(SinusoidTasks().sample, 25)``).
    With ``checkpoint``, an existing file is resumed from (model, optimiser, schedule, step and
    the generator's state), and the state is saved there every ``checkpoint_every`` meta-updates
    and at the end; both limits count the meta-updates and the seconds of every earlier call
    that wrote the checkpoint. ``on_step(step, metrics)`` is called after every meta-update.
    """
    history: list[dict[str, float]] = []

    def record(step: int, metrics: dict[str, float]) -> None:
        history.append(metrics)
        if on_step is not None:
            on_step(step, metrics)

    summary = fit(
        MetaTraining(maml, sample, generator),
        Budget(iterations=steps, minutes=minutes),
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        on_iteration=record,
        device=maml.device,
        final_window=100,
    )
    return history, summary
