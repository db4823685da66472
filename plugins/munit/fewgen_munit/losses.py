"""MUNIT's losses as pure functions, with the official code's weights.

Paper eq. 1-5 and ``trainer.py`` (``gen_update``, ``dis_update``, ``compute_vgg_loss``):

* every reconstruction term is the mean absolute difference (``recon_criterion``):
  **image** x -> (c, s) -> x', **style** s ~ N(0, I) -> decoded in the other domain ->
  re-encoded, **content** c -> decoded in the other domain with a random style ->
  re-encoded, and the optional explicit **cycle** x_a -> x_ab -> x_aba (decoded with
  x_a's own style code);
* the adversarial terms are LSGAN's, summed over the discriminator's scales:
  the discriminator minimises mean(D(fake)^2) + mean((D(real) - 1)^2), the generator
  mean((D(fake) - 1)^2);
* the optional domain-invariant perceptual term compares instance-normalised features of
  the translation x_ba and of its content source x_b: mean((IN(f(x_ba)) - IN(f(x_b)))^2).
  The official f is VGG16 up to relu5_3 with Caffe weights (``vgg_preprocess`` below);
  those weights cannot be downloaded here, so :func:`perceptual_loss` takes any feature
  extractor and the default weight is 0, as in the official configs for 256-px data;
* the generator objective weights each term (both domains summed) with :class:`LossWeights`:
  gan 1, recon_x 10, recon_s 1, recon_c 1, recon_x_cyc 0 (10 where the explicit cycle is
  wanted), vgg 0; the discriminators' loss is weighted by gan too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F

# The weight the official configs give the explicit cycle loss where they use it.
CYCLE_WEIGHT = 10.0
# Caffe VGG16's BGR channel means on the 0-255 scale, as the official vgg_preprocess subtracts them.
VGG_BGR_MEAN = (103.939, 116.779, 123.680)


@dataclass(frozen=True)
class LossWeights:
    """The official ``*_w`` hyperparameters (configs/edges2handbags_folder.yaml)."""

    gan: float = 1.0
    recon_x: float = 10.0
    recon_s: float = 1.0
    recon_c: float = 1.0
    recon_x_cyc: float = 0.0
    vgg: float = 0.0


TERMS: tuple[str, ...] = tuple(f.name for f in fields(LossWeights))

TermValue = torch.Tensor | float | Sequence[torch.Tensor | float] | None


def recon_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference; the shapes must match (no silent broadcasting)."""
    if output.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(output.shape)} and {tuple(target.shape)}")
    return (output - target).abs().mean()


def image_recon_loss(reconstruction: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """L_recon^x: an image decoded from its own content and style codes against the image."""
    return recon_loss(reconstruction, image)


def style_recon_loss(reencoded: torch.Tensor, sampled: torch.Tensor) -> torch.Tensor:
    """L_recon^s: the style re-encoded from a translation against the prior sample it was decoded with."""
    return recon_loss(reencoded, sampled)


def content_recon_loss(reencoded: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """L_recon^c: the content re-encoded from a translation against the content it was decoded from."""
    return recon_loss(reencoded, content)


def cycle_loss(cycled: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """The explicit cycle term: x_a -> x_ab -> x_aba against x_a."""
    return recon_loss(cycled, image)


def lsgan_dis_loss(fake_outputs: Sequence[torch.Tensor], real_outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over scales of mean(D(fake)^2) + mean((D(real) - 1)^2)."""
    if len(fake_outputs) != len(real_outputs) or not fake_outputs:
        raise ValueError(f"{len(fake_outputs)} fake and {len(real_outputs)} real scales")
    return sum(  # type: ignore[return-value]
        (fake**2).mean() + ((real - 1) ** 2).mean() for fake, real in zip(fake_outputs, real_outputs, strict=True)
    )


def lsgan_gen_loss(fake_outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over scales of mean((D(fake) - 1)^2)."""
    if not fake_outputs:
        raise ValueError("no discriminator outputs")
    return sum(((fake - 1) ** 2).mean() for fake in fake_outputs)  # type: ignore[return-value]


def instance_normalise(features: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each channel of each sample to zero mean and unit (biased) variance, no affine."""
    return F.instance_norm(features, eps=eps)


def vgg_preprocess(images: torch.Tensor) -> torch.Tensor:
    """The official input of its Caffe VGG16: RGB in [-1, 1] -> BGR in [0, 255] minus the BGR means."""
    bgr = images.flip(1)
    mean = torch.tensor(VGG_BGR_MEAN, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (bgr + 1) * 127.5 - mean


def perceptual_loss(
    extractor: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    target: torch.Tensor,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Domain-invariant perceptual distance: mean((IN(f(image)) - IN(f(target)))^2).

    ``extractor`` maps images to (B, C, h, w) features (the official code: frozen VGG16 to
    relu5_3, with :func:`vgg_preprocess`); ``preprocess`` runs before it on both inputs.
    """
    if preprocess is not None:
        image, target = preprocess(image), preprocess(target)
    return ((instance_normalise(extractor(image)) - instance_normalise(extractor(target))) ** 2).mean()


def generator_objective(terms: Mapping[str, TermValue], weights: LossWeights = LossWeights()) -> torch.Tensor:
    """sum_t weight_t * term_t over :data:`TERMS`; a term may be a sequence (one per domain), summed.

    A term whose weight is 0 is skipped and may be missing or None (the official code does
    not compute the cycle and perceptual terms then); a missing term with a nonzero weight,
    or an unknown name, is an error.
    """
    unknown = sorted(set(terms) - set(TERMS))
    if unknown:
        raise ValueError(f"unknown loss terms {unknown}; the terms are {', '.join(TERMS)}")
    total: Any = 0.0
    for name, weight in asdict(weights).items():
        if weight == 0:
            continue
        value = terms.get(name)
        if value is None:
            raise ValueError(f"loss term {name!r} has weight {weight} but no value")
        values = value if isinstance(value, Sequence) else [value]
        total = total + weight * sum(values)
    return torch.as_tensor(total) if not isinstance(total, torch.Tensor) else total


def discriminator_objective(
    losses: torch.Tensor | Sequence[torch.Tensor], weights: LossWeights = LossWeights()
) -> torch.Tensor:
    """gan_w times the discriminators' LSGAN losses (one per domain, summed)."""
    values = losses if isinstance(losses, Sequence) else [losses]
    return weights.gan * sum(values)  # type: ignore[return-value]


def generator_terms(
    gen_a: Any,
    gen_b: Any,
    dis_a: Any,
    dis_b: Any,
    x_a: torch.Tensor,
    x_b: torch.Tensor,
    s_a: torch.Tensor,
    s_b: torch.Tensor,
    weights: LossWeights = LossWeights(),
    perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, list[torch.Tensor]]:
    """The terms of one generator update, wired as the official ``gen_update``, per domain (a, b).

    ``s_a``, ``s_b`` are style codes drawn from the prior. x_ba = gen_a.decode(c_b, s_a) is
    b's content in a's domain; re-encoding it with gen_a gives (c_b', s_a'), compared with
    c_b and s_a. The cycle and perceptual terms are computed only if their weight is nonzero;
    ``perceptual(translation, content_source)`` is then required.
    """
    c_a, s_a_prime = gen_a.encode(x_a)
    c_b, s_b_prime = gen_b.encode(x_b)
    x_a_recon, x_b_recon = gen_a.decode(c_a, s_a_prime), gen_b.decode(c_b, s_b_prime)
    x_ba, x_ab = gen_a.decode(c_b, s_a), gen_b.decode(c_a, s_b)
    c_b_recon, s_a_recon = gen_a.encode(x_ba)
    c_a_recon, s_b_recon = gen_b.encode(x_ab)
    terms = {
        "gan": [dis_a.gen_loss(x_ba), dis_b.gen_loss(x_ab)],
        "recon_x": [image_recon_loss(x_a_recon, x_a), image_recon_loss(x_b_recon, x_b)],
        "recon_s": [style_recon_loss(s_a_recon, s_a), style_recon_loss(s_b_recon, s_b)],
        "recon_c": [content_recon_loss(c_a_recon, c_a), content_recon_loss(c_b_recon, c_b)],
    }
    if weights.recon_x_cyc:
        x_aba, x_bab = gen_a.decode(c_a_recon, s_a_prime), gen_b.decode(c_b_recon, s_b_prime)
        terms["recon_x_cyc"] = [cycle_loss(x_aba, x_a), cycle_loss(x_bab, x_b)]
    if weights.vgg:
        if perceptual is None:
            raise ValueError("the perceptual term has a nonzero weight but no perceptual loss was given")
        terms["vgg"] = [perceptual(x_ba, x_b), perceptual(x_ab, x_a)]
    return terms
