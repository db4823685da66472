"""The objectives: least squares, halved discriminator losses, and the generator loss weighting 1 / 100 / 1."""

from __future__ import annotations

import pytest
import torch
from fewgen_psgan.losses import LossWeights, discriminator_loss, generator_objective, generator_terms, lsgan


def test_lsgan_is_the_mean_squared_distance_to_one_or_zero() -> None:
    scores = torch.tensor([0.5, 2.0])
    assert float(lsgan(scores, True)) == pytest.approx((0.25 + 1.0) / 2)
    assert float(lsgan(scores, False)) == pytest.approx((0.25 + 4.0) / 2)


def test_discriminator_loss_is_half_of_real_plus_fake() -> None:
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.5])
    assert float(discriminator_loss(real, fake)) == pytest.approx(0.5 * (0.5 + 0.25))


def test_generator_loss_is_gan_image_plus_100_l1_plus_gan_person() -> None:
    image_scores = torch.tensor([[0.0, 1.0], [1.0, 1.0]])  # (1-0)^2 once in four: 0.25
    person_scores = torch.tensor([0.5, 0.0])  # (0.25 + 1) / 2 = 0.625
    fake = torch.tensor([0.0, 0.5, -1.0, 1.0])
    real = torch.tensor([0.0, 0.0, 0.0, 1.0])  # |diff| = 0, 0.5, 1, 0: mean 0.375
    terms = generator_terms(image_scores, person_scores, fake, real)
    assert {k: float(v) for k, v in terms.items()} == pytest.approx(
        {"gan_image": 0.25, "l1": 0.375, "gan_person": 0.625}
    )
    assert LossWeights() == LossWeights(image=1.0, l1=100.0, person=1.0)
    assert float(generator_objective(terms, LossWeights())) == pytest.approx(0.25 + 37.5 + 0.625)
    assert float(generator_objective(terms, LossWeights(image=2, l1=10, person=0))) == pytest.approx(0.5 + 3.75)
