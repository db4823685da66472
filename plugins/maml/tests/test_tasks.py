"""The paper's sinusoid task distribution and the task batch."""

from __future__ import annotations

import math

import pytest
import torch
from fewgen_maml.tasks import SinusoidTasks, TaskBatch


def test_sinusoid_tasks_have_the_papers_ranges_and_shapes() -> None:
    tasks = SinusoidTasks(shots=5, queries=7)
    generator = torch.Generator().manual_seed(0)
    amplitude, phase = tasks.sample_functions(2000, generator)
    assert amplitude.min() >= 0.1 and amplitude.max() <= 5.0
    assert phase.min() >= 0.0 and phase.max() <= math.pi
    # Uniform: the draws fill the ranges.
    assert amplitude.min() < 0.2 and amplitude.max() > 4.9
    assert phase.min() < 0.05 and phase.max() > math.pi - 0.05
    batch = tasks.sample(4, generator)
    assert batch.support_x.shape == batch.support_y.shape == (4, 5, 1)
    assert batch.query_x.shape == batch.query_y.shape == (4, 7, 1)
    x = torch.cat([batch.support_x, batch.query_x], 1)
    assert x.min() >= -5.0 and x.max() <= 5.0
    assert batch.support_y.abs().max() <= 5.0


def test_targets_are_one_sinusoid_per_task() -> None:
    tasks = SinusoidTasks(shots=3, queries=3)
    batch = tasks.sample(2, torch.Generator().manual_seed(1))
    amplitude, phase = tasks.sample_functions(2, torch.Generator().manual_seed(1))
    x = torch.cat([batch.support_x, batch.query_x], 1)
    y = torch.cat([batch.support_y, batch.query_y], 1)
    torch.testing.assert_close(y, amplitude[:, None, None] * torch.sin(x - phase[:, None, None]))


def test_same_seed_same_tasks() -> None:
    tasks = SinusoidTasks()
    a = tasks.sample(3, torch.Generator().manual_seed(5))
    b = tasks.sample(3, torch.Generator().manual_seed(5))
    c = tasks.sample(3, torch.Generator().manual_seed(6))
    assert torch.equal(a.support_y, b.support_y) and torch.equal(a.query_x, b.query_x)
    assert not torch.equal(a.support_y, c.support_y)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="shots"):
        SinusoidTasks(shots=0)
    with pytest.raises(ValueError, match="amplitude"):
        SinusoidTasks(amplitude=(5.0, 0.1))
    with pytest.raises(ValueError, match="number of tasks"):
        TaskBatch(torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(3, 1), torch.zeros(3, 1))
