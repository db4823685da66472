"""DRAEM's simulated anomalies: Perlin-shaped patches of an augmented foreign texture blended into good images.

Zavrtanik, Kristan and Skočaj, "DRAEM - A discriminatively trained reconstruction embedding
for surface anomaly detection", ICCV 2021, section 3.3. For every image that gets an anomaly:

1. a Perlin noise map whose lattice resolution is 2**k per axis (k uniform in 0..5, drawn
   independently for rows and columns) is rotated by an angle uniform in [-90, 90] degrees
   and thresholded at 0.5: the binary anomaly mask;
2. an anomaly source image (a texture, or colourised Perlin noise when none is given) is
   resized to the image and varied by 3 of the 10 augmentations in
   :mod:`fewgen_draem.augmentations`, drawn without replacement and applied in the drawn order;
3. inside the mask the image becomes (1 - beta) * source + beta * image, with the opacity
   beta uniform in [0, beta_max); outside it the image is unchanged.

A share of the images is left normal (mask empty), and a mask that thresholds to nothing
makes its sample normal too, as in the reference code. Everything runs batched on the
images' device; every random number comes from one CPU ``torch.Generator``, so a seed gives
the same anomalies on any device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fewgen_draem.augmentations import AUGMENTATIONS, KERNELS, rotate
from fewgen_draem.perlin import perlin_noise, random_resolutions


@dataclass(frozen=True)
class Synthesis:
    """One synthesised batch, with the random choices a caller or a test may want to see."""

    images: torch.Tensor  # (B, 3, H, W) in [0, 1]
    masks: torch.Tensor  # (B, 1, H, W), 1.0 on anomalous pixels, else 0.0
    has_anomaly: torch.Tensor  # (B,) bool: the mask is not empty
    beta: torch.Tensor  # (B,) opacity of the image inside the mask; NaN where no anomaly was planned
    augmentations: torch.Tensor  # (B, 3) indices into AUGMENTATIONS in the order applied; -1 where none was planned


class AnomalySynthesizer:
    """Turns batches of good images into DRAEM training pairs: (augmented image, anomaly mask)."""

    def __init__(
        self,
        beta_max: float = 0.8,
        normal_share: float = 0.5,
        rotate_normal: float = 0.0,
        threshold: float = 0.5,
        perlin_exponents: tuple[int, int] = (0, 5),
        augmentations_per_source: int = 3,
    ) -> None:
        if not 0.0 <= beta_max <= 1.0:
            raise ValueError(f"beta_max must lie in [0, 1], got {beta_max}")
        if not 0.0 <= normal_share <= 1.0:
            raise ValueError(f"normal_share must lie in [0, 1], got {normal_share}")
        if not 0.0 <= rotate_normal <= 1.0:
            raise ValueError(f"rotate_normal must lie in [0, 1], got {rotate_normal}")
        if not 0 <= perlin_exponents[0] <= perlin_exponents[1]:
            raise ValueError(f"perlin_exponents must be (low, high) with 0 <= low <= high, got {perlin_exponents}")
        if not 0 <= augmentations_per_source <= len(AUGMENTATIONS):
            raise ValueError(f"augmentations_per_source must lie in [0, {len(AUGMENTATIONS)}]")
        self.beta_max = beta_max
        self.normal_share = normal_share
        self.rotate_normal = rotate_normal
        self.threshold = threshold
        self.perlin_exponents = perlin_exponents
        self.augmentations_per_source = augmentations_per_source

    def __call__(
        self,
        images: torch.Tensor,
        generator: torch.Generator,
        sources: torch.Tensor | Sequence[torch.Tensor] | None = None,
    ) -> Synthesis:
        """Synthesise anomalies into ``images`` (B, 3, H, W) in [0, 1].

        ``sources`` holds one anomaly source image per input image, (3, h, w) in [0, 1] of any
        size, or is None for colourised Perlin noise. ``generator`` is a CPU generator.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        if sources is not None and len(sources) != images.shape[0]:
            raise ValueError(f"one anomaly source per image: {len(sources)} sources for {images.shape[0]} images")
        count, _, height, width = images.shape
        device = images.device
        images = images.float()

        if self.rotate_normal > 0:
            # The reference MVTec loader turns the good image itself before adding the anomaly.
            turned = torch.rand(count, generator=generator) < self.rotate_normal
            angles = -90 + 180 * torch.rand(count, generator=generator)
            rows = turned.nonzero().squeeze(1)
            if len(rows):
                images = images.clone()
                images[rows.to(device)] = rotate(images[rows.to(device)], angles[rows])

        planned = (torch.rand(count, generator=generator) >= self.normal_share).nonzero().squeeze(1)
        beta = torch.full((count,), float("nan"))
        chosen = torch.full((count, self.augmentations_per_source), -1, dtype=torch.long)
        if len(planned) == 0:
            result, masks = images.clone(), torch.zeros(count, 1, height, width, device=device)
        else:
            planned_masks = self.anomaly_masks(len(planned), (height, width), generator, device)
            if sources is None:
                planned_sources = self.perlin_textures(len(planned), (height, width), generator, device)
            else:
                planned_sources = fit_sources([sources[int(i)] for i in planned], (height, width), device)
            planned_chosen = torch.rand(len(planned), len(AUGMENTATIONS), generator=generator).argsort(1)
            planned_chosen = planned_chosen[:, : self.augmentations_per_source]
            # The sources were made here: augmented and then blended in place, they become the result.
            augment_sources_(planned_sources, planned_chosen, generator)
            planned_beta = self.beta_max * torch.rand(len(planned), generator=generator)

            everyone = len(planned) == count  # no normal samples: no copies in and out of the batch
            on_device = planned.to(device)
            good = images if everyone else images.index_select(0, on_device)
            # (1 - m) image + m ((1 - beta) source + beta image) = image + m (1 - beta) (source - image),
            # exactly the image where the mask is 0.
            opacity = planned_beta.to(device).reshape(-1, 1, 1, 1)
            blended = planned_sources.sub_(good).mul_(planned_masks).mul_(1 - opacity).add_(good)
            if everyone:
                result, masks = blended, planned_masks
            else:
                result = images.clone().index_copy_(0, on_device, blended)
                masks = torch.zeros(count, 1, height, width, device=device).index_copy_(0, on_device, planned_masks)
            beta[planned] = planned_beta
            chosen[planned] = planned_chosen
        has_anomaly = masks.flatten(1).any(1)
        return Synthesis(result, masks, has_anomaly, beta.to(device), chosen.to(device))

    def anomaly_masks(
        self, count: int, size: tuple[int, int], generator: torch.Generator, device: torch.device
    ) -> torch.Tensor:
        """(count, 1, H, W) binary masks: rotated Perlin noise above the threshold."""
        resolutions = random_resolutions(count, generator, *self.perlin_exponents)
        noise = perlin_noise(resolutions, size, generator, device).unsqueeze(1)
        noise = rotate(noise, -90 + 180 * torch.rand(count, generator=generator))
        return noise.gt_(self.threshold)  # in place: 1.0 above the threshold, else 0.0

    def perlin_textures(
        self, count: int, size: tuple[int, int], generator: torch.Generator, device: torch.device
    ) -> torch.Tensor:
        """(count, 3, H, W) anomaly sources without a texture folder: Perlin noise between two random colours.

        Each map is stretched to [0, 1] so both colours appear in full before the augmentations vary them.
        """
        resolutions = random_resolutions(count, generator, *self.perlin_exponents)
        noise = perlin_noise(resolutions, size, generator, device).flatten(1)
        # amin/amax: min/max with indices is a much slower reduction on CPU.
        low, high = noise.amin(1, keepdim=True), noise.amax(1, keepdim=True)
        weight = noise.sub_(low).div_((high - low).clamp_min(1e-6)).reshape(count, 1, *size)
        colours = torch.rand(count, 2, 3, generator=generator).to(device)
        low_colour, high_colour = colours[:, 0, :, None, None], colours[:, 1, :, None, None]
        # low + (high - low) weight: addcmul runs faster than lerp with both ends broadcast.
        return torch.addcmul(low_colour, high_colour - low_colour, weight).clamp_(0, 1)


def fit_sources(
    sources: torch.Tensor | Sequence[torch.Tensor], size: tuple[int, int], device: torch.device
) -> torch.Tensor:
    """(N, 3, H, W) sources resized bilinearly to the images' size (as cv2.resize does in the reference code).

    The result is contiguous whatever the sources' layout (an image loaded as HWC and permuted
    is channels-last): the augmentations then work on it in place.
    """
    fitted = torch.empty(len(sources), 3, *size, device=device)
    for row, source in zip(fitted, sources, strict=True):
        source = source.to(device).float()
        if source.ndim != 3 or source.shape[0] not in (1, 3):
            raise ValueError(f"an anomaly source must be (3, h, w) or (1, h, w), got {tuple(source.shape)}")
        source = source.expand(3, -1, -1)
        if tuple(source.shape[-2:]) != size:
            source = F.interpolate(source.unsqueeze(0), size=size, mode="bilinear", align_corners=False)[0]
        torch.clamp(source, 0, 1, out=row)
    return fitted


def augment_sources(sources: torch.Tensor, chosen: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Apply augmentation chosen[i, k] to source i for k = 0, 1, ...; samples sharing one run batched together.

    Returns a new tensor; ``sources`` is left as it is.
    """
    augmented = sources.clone(memory_format=torch.contiguous_format)
    augment_sources_(augmented, chosen, generator)
    return augmented


def augment_sources_(sources: torch.Tensor, chosen: torch.Tensor, generator: torch.Generator) -> None:
    """:func:`augment_sources` in place, on a contiguous batch.

    At each position the rows are reordered, in place, so that each augmentation's samples
    form one slice its in-place kernel works on; at the end they go back to sample order.
    No pixel-sized tensor is created for the grouping: on CPU, fresh memory costs page faults
    that take longer than the row copies themselves.
    """
    if not sources.is_contiguous():
        raise ValueError("augment_sources_ works in place on a contiguous batch")
    held = list(range(len(sources)))  # the sample in each row
    for position in range(chosen.shape[1]):
        labels = chosen[held, position]
        regroup = labels.argsort(stable=True)
        permute_rows_(sources, regroup.tolist())
        held = [held[row] for row in regroup.tolist()]
        start = 0
        for kernel, size in zip(KERNELS, torch.bincount(labels, minlength=len(KERNELS)).tolist(), strict=True):
            if size:
                kernel(sources[start : start + size], generator)
                start += size
    permute_rows_(sources, sorted(range(len(held)), key=held.__getitem__))


def permute_rows_(tensor: torch.Tensor, order: list[int]) -> None:
    """tensor[row] = tensor[order[row]] for every row, in place: cycle by cycle through one spare row."""
    spare = None
    done = [False] * len(order)
    for start in range(len(order)):
        if done[start] or order[start] == start:
            continue
        spare = torch.empty_like(tensor[start]) if spare is None else spare
        spare.copy_(tensor[start])
        row = start
        while order[row] != start:  # each row takes its source's value before that source is overwritten
            done[row] = True
            tensor[row].copy_(tensor[order[row]])
            row = order[row]
        done[row] = True
        tensor[row].copy_(spare)
