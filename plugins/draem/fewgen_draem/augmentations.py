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

These run on every anomaly source, so they are written for few passes over the pixels and
few new pixel-sized tensors (on CPU a fresh large tensor costs page faults on top of the
pass that fills it). Each augmentation is an in-place kernel, ``name_``, that overwrites a
contiguous batch the caller owns (the synthesiser's sources), and the pure function
``name`` that runs the kernel on a copy and never modifies its input. The kernels keep to
fast CPU paths: no bool-mask ``torch.where``, no ``max`` with indices over the channels,
no modulo, per-image parameters broadcast rather than expanded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
Kernel = Callable[[torch.Tensor, torch.Generator], None]

LEVELS = 256  # 8-bit images: the PIL operations are defined on these levels


def pure(kernel: Kernel) -> Augmentation:
    """The augmentation that returns a new tensor, from the kernel that overwrites its argument."""

    @functools.wraps(kernel)
    def augmentation(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        augmented = images.clone(memory_format=torch.contiguous_format)
        kernel(augmented, generator)
        return augmented

    augmentation.__name__ = augmentation.__qualname__ = kernel.__name__.rstrip("_")
    return augmentation


def uniform(count: int, low: float, high: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return (low + (high - low) * torch.rand(count, generator=generator)).to(device)


def per_image(values: torch.Tensor) -> torch.Tensor:
    """(N,) or (N, C) parameters shaped to broadcast over (N, C, H, W) images."""
    return values.reshape(values.shape[0], -1, 1, 1)


def rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image about its centre by its angle (bilinear), filling uncovered corners with 0 like imgaug."""
    height, width = images.shape[-2:]
    radians = torch.deg2rad(degrees.to(images.device, images.dtype))
    cos, sin = torch.cos(radians)[:, None], torch.sin(radians)[:, None]
    # The grid affine_grid(theta, align_corners=False) gives for theta = [[cos, sin h/w, 0], [-sin w/h, cos, 0]]:
    # coordinates normalised to [-1, 1] per axis at pixel centres, the aspect ratio keeping the rotation rigid.
    # Each coordinate is a per-column plus a per-row term, summed straight into the grid's two planes:
    # affine_grid's (H * W, 3) matrix product per image costs several times more.
    xs = (2 * torch.arange(width, device=images.device, dtype=images.dtype) + 1) / width - 1
    ys = (2 * torch.arange(height, device=images.device, dtype=images.dtype) + 1) / height - 1
    grid = torch.empty(len(images), height, width, 2, device=images.device, dtype=images.dtype)
    torch.add((cos * xs)[:, None, :], (sin * (height / width) * ys)[:, :, None], out=grid[..., 0])
    torch.add((-sin * (width / height) * xs)[:, None, :], (cos * ys)[:, :, None], out=grid[..., 1])
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def to_levels(images: torch.Tensor) -> torch.Tensor:
    """Nearest 8-bit level of every value, offset by 256 per channel of the batch: int32 (N * C * H * W,).

    Channel c of image n has its levels in [256 (n C + c), 256 (n C + c) + 255], so one
    bincount gives every channel's histogram and one index_select applies every channel's
    table; int32 indices are half the memory of the int64 that gather and scatter need.
    """
    count, channels = images.shape[:2]
    offsets = torch.arange(0, count * channels * LEVELS, LEVELS, device=images.device, dtype=torch.int32)
    # Scaling before clamping to [0, 255] is the same as clamping to [0, 1] first, one pass fewer.
    levels = torch.mul(images, LEVELS - 1).clamp_(0, LEVELS - 1).round_().int()
    return levels.add_(offsets.reshape(count, channels, 1, 1)).flatten()


def histograms(levels: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """(N, C, 256) pixel counts per 8-bit level, from the images' :func:`to_levels`."""
    count, channels = images.shape[:2]
    return torch.bincount(levels, minlength=count * channels * LEVELS).reshape(count, channels, LEVELS)


def apply_lookup_(images: torch.Tensor, levels: torch.Tensor, tables: torch.Tensor) -> None:
    """Overwrite the (contiguous) images with their levels (from :func:`to_levels`) mapped through tables (N, C, 256).

    The tables hold output levels; they are scaled to [0, 1] before the lookup (256 divisions per
    channel instead of one per pixel, the same values).
    """
    scaled = (tables.to(images.dtype) / (LEVELS - 1)).flatten()
    torch.index_select(scaled, 0, levels, out=images.view(-1))


def gamma_contrast_(images: torch.Tensor, generator: torch.Generator) -> None:
    """GammaContrast((0.5, 2.0), per_channel=True): x ** gamma with one gamma per channel."""
    count, channels = images.shape[:2]
    gamma = (0.5 + 1.5 * torch.rand(count, channels, generator=generator)).to(images.device)
    images.clamp_(0, 1).pow_(per_image(gamma))


gamma_contrast = pure(gamma_contrast_)


def multiply_and_add_to_brightness_(images: torch.Tensor, generator: torch.Generator) -> None:
    """MultiplyAndAddToBrightness(mul=(0.8, 1.2), add=(-30, 30)) on the luma channel of YCrCb.

    Changing Y with Cr and Cb fixed adds the same amount to R, G and B.
    """
    count = images.shape[0]
    multiply = uniform(count, 0.8, 1.2, generator, images.device)
    add = uniform(count, -30 / 255, 30 / 255, generator, images.device)
    red, green, blue = images.unbind(1)
    luma = (0.299 * red).add_(green, alpha=0.587).add_(blue, alpha=0.114).unsqueeze(1)
    shift = torch.addcmul(per_image(add), luma, per_image(multiply)).clamp_(0, 1).sub_(luma)
    images.add_(shift).clamp_(0, 1)


multiply_and_add_to_brightness = pure(multiply_and_add_to_brightness_)


def enhance_sharpness_(images: torch.Tensor, generator: torch.Generator) -> None:
    """pillike.EnhanceSharpness(factor=(0, 2)): PIL's blend between the image and its SMOOTH-filtered copy.

    Factor 0 gives the smoothed image, 1 the original, 2 twice the detail; PIL leaves the
    one-pixel border unfiltered.
    """
    count = images.shape[0]
    factor = uniform(count, 0.0, 2.0, generator, images.device)
    # SMOOTH is [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 = (3x3 box sum + 4 centre) / 13, so the blend
    # smoothed + factor (image - smoothed) is image + (1 - factor) (box sum - 9 image) / 13.
    # The box sum from shifted views, rows then columns, is many times faster on CPU than a
    # depthwise convolution on (N, C, H, W).
    rows = images[..., :-2, :] + images[..., 1:-1, :]
    rows += images[..., 2:, :]
    detail = rows[..., :-2] + rows[..., 2:]
    detail += rows[..., 1:-1]
    inner = images[..., 1:-1, 1:-1]
    detail.sub_(inner, alpha=9)  # all read from the image before it is overwritten
    inner.addcmul_(detail, per_image((1 - factor) / 13))
    images.clamp_(0, 1)


enhance_sharpness = pure(enhance_sharpness_)


def rgb_to_hsv(images: torch.Tensor) -> torch.Tensor:
    """Hue as a fraction of the full circle, saturation and value in [0, 1]."""
    sixths, chroma, value = hue_chroma_value(images)
    saturation = chroma.div_(value.clamp_min(1e-12))  # a black pixel has chroma 0: saturation 0
    return torch.stack((sixths.remainder_(6).div_(6), saturation, value), 1)


def hue_chroma_value(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hue in sixths of the circle, not yet reduced modulo 6 (in [-1, 5]), chroma and value: (N, H, W) each.

    The largest channel picks the hue's sector. Where two channels tie for largest, the
    sectors meet and either formula gives the same hue; where all three tie the chroma is 0
    and so is the hue (red's formula, numerator 0).
    """
    red, green, blue = images.unbind(1)
    value = images.amax(1)
    chroma = value - images.amin(1)
    # 0/1 float masks, written straight by the comparisons: the hue is a weighted sum of the three
    # sector formulas instead of a gather by argmax (max with indices is slow over the channels).
    red_largest = torch.eq(red, value, out=torch.empty_like(value))
    green_largest = torch.eq(green, value, out=torch.empty_like(value))
    green_largest.mul_(1 - red_largest)  # red wins ties, then green: one sector per pixel
    blue_largest = 1 - red_largest - green_largest
    numerator = (green - blue).mul_(red_largest)
    numerator.addcmul_(blue - red, green_largest).addcmul_(red - green, blue_largest)
    sixths = numerator.div_(chroma.clamp_min(1e-12))
    return sixths.add_(green_largest, alpha=2).add_(blue_largest, alpha=4), chroma, value


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    hue, saturation, value = hsv.unbind(1)
    rgb = torch.empty_like(hsv)
    rgb_from_hue_chroma_value_(rgb, 6 * hue, value * saturation, value)
    return rgb


def rgb_from_hue_chroma_value_(
    rgb: torch.Tensor, sixths: torch.Tensor, chroma: torch.Tensor, value: torch.Tensor
) -> None:
    """Write (N, 3, H, W) colours from hue in sixths of the circle (any value in [-3, 7]), chroma and value.

    Each channel is value minus chroma times a ramp of the hue's circular distance d to the
    channel's own hue (0, 2, 4 for red, green, blue): 0 for d <= 1, 1 for d >= 2, linear
    between; HSV's clamp(min(k, 4 - k), 0, 1) with k = (5, 3, 1) + hue modulo 6. Written as
    clamp(2 - ||hue - centre| - 3|, 0, 1), it needs no modulo (a slow op on CPU) as long as
    |hue - centre| <= 7: beyond 6 the formula is already at its 0 floor, as is the true ramp.
    """
    centres = torch.tensor([0.0, 2.0, 4.0], device=value.device, dtype=value.dtype).reshape(1, 3, 1, 1)
    distance = torch.sub(sixths.unsqueeze(1), centres, out=rgb).abs_().sub_(3).abs_()
    negative_ramp = distance.sub_(2).clamp_(-1, 0)  # -ramp, all in place in rgb
    torch.addcmul(value.unsqueeze(1), chroma.unsqueeze(1), negative_ramp, out=rgb)


def add_to_hue_and_saturation_(images: torch.Tensor, generator: torch.Generator) -> None:
    """AddToHueAndSaturation((-50, 50), per_channel=True): independent hue and saturation shifts.

    imgaug's values are on a -255..255 scale; for hue that scale spans the full circle.
    """
    count = images.shape[0]
    hue_shift = uniform(count, -50 / 255, 50 / 255, generator, images.device)
    saturation_shift = uniform(count, -50 / 255, 50 / 255, generator, images.device)
    # HSV round trip without building the HSV image: the hue stays in sixths, shifted but never
    # reduced modulo 6 (it stays within [-3, 7]), and saturation goes back as chroma = value * saturation.
    sixths, chroma, value = hue_chroma_value(images.clamp_(0, 1))
    sixths.add_(6 * hue_shift[:, None, None])
    saturation = chroma.div_(value.clamp_min(1e-12)).add_(saturation_shift[:, None, None]).clamp_(0, 1)
    rgb_from_hue_chroma_value_(images, sixths, saturation.mul_(value), value)
    images.clamp_(0, 1)


add_to_hue_and_saturation = pure(add_to_hue_and_saturation_)


def solarize_(images: torch.Tensor, generator: torch.Generator) -> None:
    """Solarize(0.5, threshold=(32, 128)): half of the images get every level at or above the threshold inverted."""
    count = images.shape[0]
    applies = (torch.rand(count, generator=generator) < 0.5).to(images.device)
    threshold = uniform(count, 32 / 255, 128 / 255, generator, images.device)
    # An image left as it is gets a threshold no level reaches.
    threshold = torch.where(applies, threshold, torch.full_like(threshold, float("inf")))
    inverted = torch.ge(images, per_image(threshold), out=torch.empty_like(images))  # 1.0 / 0.0
    # |1 - x| = 1 - x and |0 - x| = x for x in [0, 1]: a select in arithmetic, faster than torch.where.
    torch.sub(inverted, images, out=images).abs_()


solarize = pure(solarize_)


def posterize_(images: torch.Tensor, generator: torch.Generator) -> None:
    """Posterize(): keep the top 1 to 8 bits of every 8-bit level (imgaug's default nb_bits=(1, 8))."""
    count = images.shape[0]
    bits = torch.randint(1, 9, (count,), generator=generator).to(images.device)
    step = (2 ** (8 - per_image(bits))).to(images.dtype)
    levels = images.mul_(LEVELS - 1).clamp_(0, LEVELS - 1).round_()
    # Steps are powers of two: the division and the product are exact, as in integers.
    levels.div_(step).floor_().mul_(step).div_(LEVELS - 1)


posterize = pure(posterize_)


def invert_(images: torch.Tensor, generator: torch.Generator) -> None:
    """Invert(): every image, every channel."""
    images.neg_().add_(1)  # -x + 1 rounds exactly as 1 - x


invert = pure(invert_)


def autocontrast_(images: torch.Tensor, generator: torch.Generator) -> None:
    """pillike.Autocontrast(cutoff=(0, 20)): PIL's per-channel stretch after cutting 0-20% off each end."""
    cutoff = torch.randint(0, 21, (images.shape[0],), generator=generator)
    stretch_contrast_(images, cutoff)


autocontrast = pure(autocontrast_)


def stretch_contrast_(images: torch.Tensor, cutoff: torch.Tensor) -> None:
    """PIL's ImageOps.autocontrast per image with its own cutoff (percent of pixels ignored at each end).

    A channel whose remaining levels collapse to one value is left as it is, as PIL does.
    """
    levels = to_levels(images)
    counts = histograms(levels, images)
    total = counts.sum(2, keepdim=True)
    cut = torch.div(total * cutoff.to(images.device)[:, None, None], 100, rounding_mode="floor")
    table_levels = torch.arange(LEVELS, device=images.device)
    # Lowest level with pixels left once `cut` pixels are removed from the dark end; likewise from the bright end.
    low = torch.where(counts.cumsum(2) > cut, table_levels, LEVELS).min(2, keepdim=True).values
    high = torch.where(counts.flip(2).cumsum(2).flip(2) > cut, table_levels, -1).max(2, keepdim=True).values
    span = (high - low).clamp_min(1).double()
    # full(255) / span, not 255.0 / span: the scalar form is a reciprocal multiply, one ulp off PIL's table.
    scale = torch.full_like(span, 255.0) / span
    stretched = (table_levels * scale - low * scale).trunc().clamp(0, 255)
    tables = torch.where(high > low, stretched, table_levels.double().expand_as(stretched))
    apply_lookup_(images, levels, tables)


def stretch_contrast(images: torch.Tensor, cutoff: torch.Tensor) -> torch.Tensor:
    """:func:`stretch_contrast_` on a copy."""
    stretched = images.clone(memory_format=torch.contiguous_format)
    stretch_contrast_(stretched, cutoff)
    return stretched


def equalize_(images: torch.Tensor, generator: torch.Generator) -> None:
    """pillike.Equalize(): PIL's per-channel histogram equalisation (ImageOps.equalize)."""
    levels = to_levels(images)
    counts = histograms(levels, images)
    table_levels = torch.arange(LEVELS, device=images.device)
    # PIL leaves out the count of the brightest occupied level when it sizes the steps.
    brightest = torch.where(counts > 0, table_levels, -1).max(2, keepdim=True).values
    step = torch.div(counts.sum(2, keepdim=True) - counts.gather(2, brightest), LEVELS - 1, rounding_mode="floor")
    before = counts.cumsum(2) - counts  # pixels at lower levels
    equalized = torch.div(before + torch.div(step, 2, rounding_mode="floor"), step.clamp_min(1), rounding_mode="floor")
    # One occupied level, or too few pixels for a step: PIL keeps the channel.
    tables = torch.where(step > 0, equalized.clamp(max=255), table_levels.expand_as(equalized))
    apply_lookup_(images, levels, tables)


equalize = pure(equalize_)


def rotate_source_(images: torch.Tensor, generator: torch.Generator) -> None:
    """Affine(rotate=(-45, 45)): bilinear, black corners."""
    images.copy_(rotate(images, uniform(images.shape[0], -45.0, 45.0, generator, images.device)))


rotate_source = pure(rotate_source_)


# The reference code's order: DRAEM picks three distinct indices into this tuple per anomaly.
KERNELS: tuple[Kernel, ...] = (
    gamma_contrast_,
    multiply_and_add_to_brightness_,
    enhance_sharpness_,
    add_to_hue_and_saturation_,
    solarize_,
    posterize_,
    invert_,
    autocontrast_,
    equalize_,
    rotate_source_,
)
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
