"""A meta-batch of tasks, and the paper's sinusoid regression task distribution.

Sinusoid tasks (Finn et al. 2017, section 5.1): the amplitude is uniform in [0.1, 5.0], the
phase uniform in [0, π], and the inputs x uniform in [-5, 5]; each task gives K support points
to adapt on and a query set to measure the adapted model. The official code computes
y = A·sin(x - φ) (``data_generator.py``); the paper gives no sign, and the sign matters because
φ only covers half a period, so this follows the code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TaskBatch:
    """T tasks, each with a support set to adapt on and a query set to measure on.

    Inputs are (T, examples, ...) tensors; targets are (T, examples) class indices for
    classification or (T, examples, outputs) values for regression.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor

    def __post_init__(self) -> None:
        tasks = {tensor.shape[0] for tensor in (self.support_x, self.support_y, self.query_x, self.query_y)}
        if len(tasks) != 1:
            raise ValueError(f"support and query tensors disagree on the number of tasks: {sorted(tasks)}")

    @property
    def tasks(self) -> int:
        return self.support_x.shape[0]

    def to(self, device: torch.device | str) -> TaskBatch:
        return TaskBatch(*(t.to(device) for t in (self.support_x, self.support_y, self.query_x, self.query_y)))


@dataclass(frozen=True)
class SinusoidTasks:
    """The paper's sinusoid distribution; ``sample`` gives (T, K, 1) inputs and targets."""

    shots: int = 10
    queries: int = 10
    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)

    def __post_init__(self) -> None:
        if self.shots < 1 or self.queries < 1:
            raise ValueError(f"shots and queries must be at least 1, got {self.shots} and {self.queries}")
        for name in ("amplitude", "phase", "x_range"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"{name} must be (low, high) with low <= high, got {(low, high)}")

    def sample_functions(self, tasks: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Amplitudes and phases of ``tasks`` sinusoids, each of shape (T,)."""
        return _uniform((tasks,), self.amplitude, generator), _uniform((tasks,), self.phase, generator)

    def sample_inputs(self, tasks: int, points: int, generator: torch.Generator) -> torch.Tensor:
        """(T, points, 1) inputs, uniform in ``x_range``."""
        return _uniform((tasks, points, 1), self.x_range, generator)

    @staticmethod
    def evaluate(amplitude: torch.Tensor, phase: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """y = A·sin(x - φ) for inputs x of shape (T, points, 1)."""
        return amplitude[:, None, None] * torch.sin(x - phase[:, None, None])

    def sample(self, tasks: int, generator: torch.Generator) -> TaskBatch:
        amplitude, phase = self.sample_functions(tasks, generator)
        x = self.sample_inputs(tasks, self.shots + self.queries, generator)
        y = self.evaluate(amplitude, phase, x)
        return TaskBatch(x[:, : self.shots], y[:, : self.shots], x[:, self.shots :], y[:, self.shots :])


def _uniform(shape: tuple[int, ...], bounds: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(shape, generator=generator)
