"""Translation metrics on images whose answers are known."""

from __future__ import annotations

import pytest
import torch
from fewgen_munit.metrics import (
    ClassifierConfig,
    DomainClassifier,
    diversity,
    target_probability,
    train_domain_classifier,
)


def scenes(count: int, seed: int, size: int = 48) -> torch.Tensor:
    """Images with a few random bright rectangles on a grey background: outlines to keep."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.full((count, 3, size, size), 0.4)
    for image in images:
        for _ in range(3):
            y, x = torch.randint(0, size - 12, (2,), generator=generator).tolist()
            h, w = torch.randint(6, 12, (2,), generator=generator).tolist()
            image[:, y : y + h, x : x + w] = torch.rand(3, 1, 1, generator=generator) * 0.5 + 0.5
    return images


def test_diversity_is_the_mean_pairwise_l1() -> None:
    base = torch.zeros(1, 2, 3, 4, 4)
    outputs = torch.cat([base, base + 0.1, base + 0.4])  # pairs: 0.1, 0.4, 0.3
    assert diversity(outputs).tolist() == pytest.approx([0.8 / 3, 0.8 / 3], rel=1e-5)
    assert diversity(torch.cat([base, base])).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="two outputs"):
        diversity(base)


def test_domain_classifier_learns_day_from_night() -> None:
    day = [image for image in scenes(24, 3, 64)]
    night = [image * 0.25 + torch.tensor([0.0, 0.0, 0.05]).view(3, 1, 1) for image in scenes(24, 4, 64)]
    model = train_domain_classifier(day, night, seed=0, config=ClassifierConfig(steps=60, batch=16))
    held_day, held_night = scenes(8, 5, 64), scenes(8, 6, 64) * 0.25
    assert float(target_probability(model, held_day).max()) < 0.5
    assert float(target_probability(model, held_night).min()) > 0.5
    assert isinstance(model, DomainClassifier) and not model.training
