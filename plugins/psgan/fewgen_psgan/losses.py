"""PS-GAN's objectives: least-squares GAN terms for both discriminators and the weighted generator loss.

Generator: ``image·GAN_image + l1·L1 + person·GAN_person`` with the paper's weights 1, 100
and 1. The L1 term is pix2pix's, over the whole window (the context should come back
unchanged, the box should look like the real object). Every GAN term is least squares
(LSGAN, Mao et al., 2017): a discriminator pushes real scores to 1 and fake scores to 0, the
generator pushes fake scores to 1. Each discriminator's loss is half the sum of its real
and fake terms, as pix2pix halves it to slow the discriminator relative to the generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossWeights:
    image: float = 1.0  # conditional PatchGAN on the whole window
    l1: float = 100.0  # pix2pix's lambda_L1
    person: float = 1.0  # SPP discriminator on the box crop


def lsgan(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Mean squared distance of the scores to 1 (real) or 0 (fake)."""
    target = torch.ones_like(scores) if real else torch.zeros_like(scores)
    return F.mse_loss(scores, target)


def discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return 0.5 * (lsgan(real_scores, True) + lsgan(fake_scores, False))


def generator_terms(
    image_scores: torch.Tensor, person_scores: torch.Tensor, fake: torch.Tensor, real: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The unweighted terms: both discriminators' scores of the fake, and L1 between fake and real windows."""
    return {
        "gan_image": lsgan(image_scores, True),
        "l1": F.l1_loss(fake, real),
        "gan_person": lsgan(person_scores, True),
    }


def generator_objective(terms: dict[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    return weights.image * terms["gan_image"] + weights.l1 * terms["l1"] + weights.person * terms["gan_person"]
