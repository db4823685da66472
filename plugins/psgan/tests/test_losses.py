"""The objectives: BCE for the image discriminator and least squares for the person one (the official
``--use_spp --no_lsgan`` run), halved discriminator losses, and the generator loss weighting 1 / 100 / 1."""

from __future__ import annotations

import math

import pytest
import torch
from fewgen_psgan.losses import (
    IMAGE_GAN_LOSS,
    PERSON_GAN_LOSS,
    LossWeights,
    bce,
    discriminator_loss,
    generator_objective,
    generator_terms,
    lsgan,
)


def test_lsgan_is_the_mean_squared_distance_to_one_or_zero() -> None:
    scores = torch.tensor([0.5, 2.0])
    assert float(lsgan(scores, True)) == pytest.approx((0.25 + 1.0) / 2)
    assert float(lsgan(scores, False)) == pytest.approx((0.25 + 4.0) / 2)


def test_bce_is_binary_cross_entropy_of_the_sigmoid() -> None:
    logits = torch.tensor([0.0, 2.0])
    probability = 1 / (1 + math.exp(-2.0))
    assert float(bce(logits, True)) == pytest.approx((math.log(2) - math.log(probability)) / 2)
    assert float(bce(logits, False)) == pytest.approx((math.log(2) - math.log(1 - probability)) / 2)
    # The official nn.Sigmoid + nn.BCELoss, computed stably from the logits.
    official = torch.nn.BCELoss()(torch.sigmoid(logits), torch.ones(2))
    assert float(bce(logits, True)) == pytest.approx(float(official))


def test_the_official_losses_bce_for_the_image_lsgan_for_the_person_discriminator() -> None:
    assert (IMAGE_GAN_LOSS, PERSON_GAN_LOSS) == ("bce", "lsgan")


def test_discriminator_loss_is_half_of_real_plus_fake() -> None:
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.5])
    assert float(discriminator_loss(real, fake, "lsgan")) == pytest.approx(0.5 * (0.5 + 0.25))
    expected = 0.5 * (float(bce(real, True)) + float(bce(fake, False)))
    assert float(discriminator_loss(real, fake, "bce")) == pytest.approx(expected)
    with pytest.raises(ValueError, match="unknown GAN loss 'hinge'"):
        discriminator_loss(real, fake, "hinge")  # type: ignore[arg-type]


def test_generator_loss_is_gan_image_plus_100_l1_plus_gan_person() -> None:
    image_scores = torch.tensor([[0.0, 1.0], [1.0, 1.0]])  # lsgan: (1-0)^2 once in four: 0.25
    person_scores = torch.tensor([[0.5, 0.0]])  # (0.25 + 1) / 2 = 0.625
    fake = torch.tensor([0.0, 0.5, -1.0, 1.0])
    real = torch.tensor([0.0, 0.0, 0.0, 1.0])  # |diff| = 0, 0.5, 1, 0: mean 0.375
    terms = generator_terms(image_scores, person_scores, fake, real, "lsgan")
    assert {k: float(v) for k, v in terms.items()} == pytest.approx(
        {"gan_image": 0.25, "l1": 0.375, "gan_person": 0.625}
    )
    # By default the image term is BCE against "real"; the person term stays least squares.
    default = generator_terms(image_scores, person_scores, fake, real)
    assert float(default["gan_image"]) == pytest.approx(float(bce(image_scores, True)))
    assert float(default["gan_person"]) == pytest.approx(0.625)
    assert LossWeights() == LossWeights(image=1.0, l1=100.0, person=1.0)
    assert float(generator_objective(terms, LossWeights())) == pytest.approx(0.25 + 37.5 + 0.625)
    assert float(generator_objective(terms, LossWeights(image=2, l1=10, person=0))) == pytest.approx(0.5 + 3.75)
