"""PS-GAN's objectives: the two discriminators' GAN terms and the weighted generator loss.

Generator: ``image·GAN_image + l1·L1 + person·GAN_person`` with the paper's weights 1, 100
and 1. The L1 term is pix2pix's, over the whole window (the context should come back
unchanged, the box should look like the real object). A discriminator pushes real scores
to 1 and fake scores to 0, the generator pushes fake scores to 1; each discriminator's loss
is half the sum of its real and fake terms, as pix2pix halves it to slow the discriminator
relative to the generator.

The official training command (``--use_spp --no_lsgan``) gives the two discriminators
different losses, because its person discriminator reads the flag the other way round:

* the image discriminator ends in a sigmoid and is trained with binary cross-entropy
  (``bce``, here on the logits, which is the same loss computed stably); least squares
  (``lsgan``, Mao et al., 2017) is kept as an option;
* the person discriminator has no sigmoid and is trained with least squares on its 21
  pooled patch scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

GanLoss = Literal["bce", "lsgan"]
GAN_LOSSES: tuple[GanLoss, ...] = ("bce", "lsgan")
IMAGE_GAN_LOSS: GanLoss = "bce"  # the official image discriminator (--no_lsgan)
PERSON_GAN_LOSS: GanLoss = "lsgan"  # the official person discriminator under that same flag


@dataclass(frozen=True)
class LossWeights:
    image: float = 1.0  # conditional PatchGAN on the whole window
    l1: float = 100.0  # pix2pix's lambda_L1
    person: float = 1.0  # SPP discriminator on the box crop


def lsgan(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Mean squared distance of the scores to 1 (real) or 0 (fake)."""
    target = torch.ones_like(scores) if real else torch.zeros_like(scores)
    return F.mse_loss(scores, target)


def bce(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Mean binary cross-entropy of sigmoid(scores) against 1 (real) or 0 (fake); ``scores`` are logits."""
    target = torch.ones_like(scores) if real else torch.zeros_like(scores)
    return F.binary_cross_entropy_with_logits(scores, target)


def check_gan_loss(kind: str) -> None:
    if kind not in GAN_LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}; choose one of {', '.join(GAN_LOSSES)}")


def gan_loss(scores: torch.Tensor, real: bool, kind: GanLoss) -> torch.Tensor:
    check_gan_loss(kind)
    return bce(scores, real) if kind == "bce" else lsgan(scores, real)


def discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor, kind: GanLoss) -> torch.Tensor:
    return 0.5 * (gan_loss(real_scores, True, kind) + gan_loss(fake_scores, False, kind))


def generator_terms(
    image_scores: torch.Tensor,
    person_scores: torch.Tensor,
    fake: torch.Tensor,
    real: torch.Tensor,
    image_loss: GanLoss = IMAGE_GAN_LOSS,
) -> dict[str, torch.Tensor]:
    """The unweighted terms: both discriminators' scores of the fake, and L1 between fake and real windows."""
    return {
        "gan_image": gan_loss(image_scores, True, image_loss),
        "l1": F.l1_loss(fake, real),
        "gan_person": gan_loss(person_scores, True, PERSON_GAN_LOSS),
    }


def generator_objective(terms: dict[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    return weights.image * terms["gan_image"] + weights.l1 * terms["l1"] + weights.person * terms["gan_person"]
