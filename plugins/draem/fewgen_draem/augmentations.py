"""The ten colour and geometry augmentations DRAEM draws from to vary anomaly sources, batched in torch.

The reference code composes three of these imgaug augmenters per anomaly:
GammaContrast((0.5, 2.0), per_channel=True), MultiplyAndAddToBrightness(mul=(0.8, 1.2),
add=(-30, 30)), pillike.EnhanceSharpness(), AddToHueAndSaturation((-50, 50),
per_channel=True), Solarize(0.5, threshold=(32, 128)), Posterize(), Invert(),
pillike.Autocontrast(), pillike.Equalize() and Affine(rotate=(-45, 45)). Each function here
reproduces one of them with imgaug's default ranges, on (N, 3, H, W) images in [0, 1].
Functions that work on 8-bit levels in PIL (posterize, autocontrast, equalize) quantise to
those levels first, so they give PIL's lookup tables.

Every random parameter is drawn from a CPU ``torch.Generator`` and then moved to the
images' device: one seed, the same images on any device.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

LEVELS = 256  # 8-bit images: the PIL operations are defined on these levels


def uniform(count: int, low: float, high: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return (low + (high - low) * torch.rand(count, generator=generator)).to(device)


def per_image(values: torch.Tensor) -> torch.Tensor:
    """(N,) or (N, C) parameters shaped to broadcast over (N, C, H, W) images."""
    return values.reshape(values.shape[0], -1, 1, 1)


def rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image about its centre by its angle (bilinear), filling uncovered corners with 0 like imgaug."""
    height, width = images.shape[-2:]
    radians = torch.deg2rad(degrees.to(images.device, images.dtype))
    cos, sin = torch.cos(radians), torch.sin(radians)
    zero = torch.zeros_like(cos)
    # affine_grid works in coordinates normalised to [-1, 1] per axis; the aspect ratio keeps the rotation rigid.
    theta = torch.stack(
        (torch.stack((cos, sin * height / width, zero), -1), torch.stack((-sin * width / height, cos, zero), -1)), 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def to_levels(images: torch.Tensor) -> torch.Tensor:
    """Nearest 8-bit level of every value, as integers (N, C, H*W)."""
    return (images.clamp(0, 1) * (LEVELS - 1)).round().long().flatten(2)


def apply_lookup(images: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """Map every 8-bit level through its image's and channel's table (N, C, 256) of output levels."""
    levels = to_levels(images)
    return torch.gather(tables.to(images.dtype), 2, levels).reshape(images.shape) / (LEVELS - 1)


def histograms(images: torch.Tensor) -> torch.Tensor:
    """(N, C, 256) pixel counts per 8-bit level."""
    levels = to_levels(images)
    counts = torch.zeros(*levels.shape[:2], LEVELS, device=images.device, dtype=torch.long)
    return counts.scatter_add_(2, levels, torch.ones_like(levels))


def gamma_contrast(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """GammaContrast((0.5, 2.0), per_channel=True): x ** gamma with one gamma per channel."""
    count, channels = images.shape[:2]
    gamma = (0.5 + 1.5 * torch.rand(count, channels, generator=generator)).to(images.device)
    return images.clamp(0, 1) ** per_image(gamma)


def multiply_and_add_to_brightness(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """MultiplyAndAddToBrightness(mul=(0.8, 1.2), add=(-30, 30)) on the luma channel of YCrCb.

    Changing Y with Cr and Cb fixed adds the same amount to R, G and B.
    """
    count = images.shape[0]
    multiply = uniform(count, 0.8, 1.2, generator, images.device)
    add = uniform(count, -30 / 255, 30 / 255, generator, images.device)
    luma = (0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]).unsqueeze(1)
    changed = (luma * per_image(multiply) + per_image(add)).clamp(0, 1)
    return (images + changed - luma).clamp(0, 1)


def enhance_sharpness(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """pillike.EnhanceSharpness(factor=(0, 2)): PIL's blend between the image and its SMOOTH-filtered copy.

    Factor 0 gives the smoothed image, 1 the original, 2 twice the detail; PIL leaves the
    one-pixel border unfiltered.
    """
    count, channels = images.shape[:2]
    factor = uniform(count, 0.0, 2.0, generator, images.device)
    kernel = torch.ones(3, 3, device=images.device, dtype=images.dtype)
    kernel[1, 1] = 5
    kernel = (kernel / kernel.sum()).expand(channels, 1, 3, 3)
    smoothed = images.clone()
    smoothed[..., 1:-1, 1:-1] = F.conv2d(images, kernel, groups=channels)
    return (smoothed + per_image(factor) * (images - smoothed)).clamp(0, 1)


def rgb_to_hsv(images: torch.Tensor) -> torch.Tensor:
    """Hue as a fraction of the full circle, saturation and value in [0, 1]."""
    value, argmax = images.max(dim=1)
    minimum = images.min(dim=1).values
    chroma = value - minimum
    saturation = torch.where(value > 0, chroma / value.clamp_min(1e-12), torch.zeros_like(value))
    safe_chroma = chroma.clamp_min(1e-12)
    red, green, blue = images.unbind(1)
    hue = torch.stack(
        (((green - blue) / safe_chroma) % 6, (blue - red) / safe_chroma + 2, (red - green) / safe_chroma + 4), 1
    )
    hue = torch.gather(hue, 1, argmax.unsqueeze(1)).squeeze(1) / 6
    hue = torch.where(chroma > 0, hue, torch.zeros_like(hue))
    return torch.stack((hue, saturation, value), 1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    hue, saturation, value = hsv.unbind(1)
    # Each channel is value minus chroma times a ramp that is 1 away from its hue sector.
    sector = torch.tensor([5.0, 3.0, 1.0], device=hsv.device, dtype=hsv.dtype).reshape(1, 3, 1, 1)
    k = (sector + hue.unsqueeze(1) * 6) % 6
    ramp = torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return value.unsqueeze(1) - value.unsqueeze(1) * saturation.unsqueeze(1) * ramp


def add_to_hue_and_saturation(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """AddToHueAndSaturation((-50, 50), per_channel=True): independent hue and saturation shifts.

    imgaug's values are on a -255..255 scale; for hue that scale spans the full circle.
    """
    count = images.shape[0]
    hue_shift = uniform(count, -50 / 255, 50 / 255, generator, images.device)
    saturation_shift = uniform(count, -50 / 255, 50 / 255, generator, images.device)
    hsv = rgb_to_hsv(images.clamp(0, 1))
    hue = (hsv[:, 0] + hue_shift[:, None, None]) % 1
    saturation = (hsv[:, 1] + saturation_shift[:, None, None]).clamp(0, 1)
    return hsv_to_rgb(torch.stack((hue, saturation, hsv[:, 2]), 1)).clamp(0, 1)


def solarize(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Solarize(0.5, threshold=(32, 128)): half of the images get every level at or above the threshold inverted."""
    count = images.shape[0]
    applies = (torch.rand(count, generator=generator) < 0.5).to(images.device)
    threshold = uniform(count, 32 / 255, 128 / 255, generator, images.device)
    inverted = (images >= per_image(threshold)) & per_image(applies)
    return torch.where(inverted, 1 - images, images)


def posterize(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Posterize(): keep the top 1 to 8 bits of every 8-bit level (imgaug's default nb_bits=(1, 8))."""
    count = images.shape[0]
    bits = torch.randint(1, 9, (count,), generator=generator).to(images.device)
    step = 2 ** (8 - per_image(bits))
    levels = (images.clamp(0, 1) * (LEVELS - 1)).round()
    return torch.div(levels, step, rounding_mode="floor") * step / (LEVELS - 1)


def invert(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Invert(): every image, every channel."""
    return 1 - images


def autocontrast(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """pillike.Autocontrast(cutoff=(0, 20)): PIL's per-channel stretch after cutting 0-20% off each end."""
    cutoff = torch.randint(0, 21, (images.shape[0],), generator=generator)
    return stretch_contrast(images, cutoff)


def stretch_contrast(images: torch.Tensor, cutoff: torch.Tensor) -> torch.Tensor:
    """PIL's ImageOps.autocontrast per image with its own cutoff (percent of pixels ignored at each end).

    A channel whose remaining levels collapse to one value is left as it is, as PIL does.
    """
    counts = histograms(images)
    total = counts.sum(2, keepdim=True)
    cut = torch.div(total * cutoff.to(images.device)[:, None, None], 100, rounding_mode="floor")
    levels = torch.arange(LEVELS, device=images.device)
    # Lowest level with pixels left once `cut` pixels are removed from the dark end; likewise from the bright end.
    low = torch.where(counts.cumsum(2) > cut, levels, LEVELS).min(2, keepdim=True).values
    high = torch.where(counts.flip(2).cumsum(2).flip(2) > cut, levels, -1).max(2, keepdim=True).values
    span = (high - low).clamp_min(1).double()
    # full(255) / span, not 255.0 / span: the scalar form is a reciprocal multiply, one ulp off PIL's table.
    scale = torch.full_like(span, 255.0) / span
    stretched = (levels * scale - low * scale).trunc().clamp(0, 255)
    tables = torch.where(high > low, stretched, levels.double().expand_as(stretched))
    return apply_lookup(images, tables)


def equalize(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """pillike.Equalize(): PIL's per-channel histogram equalisation (ImageOps.equalize)."""
    counts = histograms(images)
    levels = torch.arange(LEVELS, device=images.device)
    # PIL leaves out the count of the brightest occupied level when it sizes the steps.
    brightest = torch.where(counts > 0, levels, -1).max(2, keepdim=True).values
    step = torch.div(counts.sum(2, keepdim=True) - counts.gather(2, brightest), LEVELS - 1, rounding_mode="floor")
    before = counts.cumsum(2) - counts  # pixels at lower levels
    equalized = torch.div(before + torch.div(step, 2, rounding_mode="floor"), step.clamp_min(1), rounding_mode="floor")
    # One occupied level, or too few pixels for a step: PIL keeps the channel.
    tables = torch.where(step > 0, equalized.clamp(max=255), levels.expand_as(equalized))
    return apply_lookup(images, tables)


def rotate_source(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Affine(rotate=(-45, 45)): bilinear, black corners."""
    return rotate(images, uniform(images.shape[0], -45.0, 45.0, generator, images.device))


# The reference code's order: DRAEM picks three distinct indices into this tuple per anomaly.
AUGMENTATIONS: tuple[Augmentation, ...] = (
    gamma_contrast,
    multiply_and_add_to_brightness,
    enhance_sharpness,
    add_to_hue_and_saturation,
    solarize,
    posterize,
    invert,
    autocontrast,
    equalize,
    rotate_source,
)
