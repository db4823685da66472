"""Images at MUNIT's working scale: loading, random training crops, and the way back to full size.

MUNIT learns at one scale (the official configs resize the short side to 256 and crop 256 x
256 windows). Translation must see objects at the scale training saw them, so a whole image
is resized to the same short side, translated, and resized back to its own size: the output
then has the input's pixel grid and every box and mask stays valid as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fewgen.imageio import IMAGE_SUFFIXES


def working_size(height: int, width: int, short_side: int, multiple: int = 4) -> tuple[int, int]:
    """(h, w) with the short side ``short_side`` and the aspect ratio kept, each rounded to ``multiple``.

    MUNIT's encoder downsamples by 2^n_downsample, so sides must be multiples of it or the decoded
    image loses rows and columns.
    """
    scale = short_side / min(height, width)
    return (
        max(multiple, round(height * scale / multiple) * multiple),
        max(multiple, round(width * scale / multiple) * multiple),
    )


def resize(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) float resized bilinearly (antialiased when shrinking) to ``size``."""
    if tuple(pixels.shape[-2:]) == tuple(size):
        return pixels
    return F.interpolate(pixels, size=size, mode="bilinear", antialias=True, align_corners=False)


def to_unit(image: np.ndarray) -> torch.Tensor:
    """An (H, W, 3) uint8 array as a (1, 3, H, W) float tensor in [0, 1]."""
    # A copy: decoded images may be read-only arrays, which torch refuses to wrap without warning.
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """A (3, H, W) float tensor in [0, 1] as an (H, W, 3) uint8 array."""
    return (pixels.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


def at_working_scale(image: np.ndarray, short_side: int, multiple: int = 4) -> torch.Tensor:
    """(3, h, w) uint8: ``image`` (H, W, 3) uint8 with its short side resized to ``short_side``."""
    pixels = to_unit(image)
    size = working_size(image.shape[0], image.shape[1], short_side, multiple)
    return (resize(pixels, size)[0] * 255).round().clamp(0, 255).byte()


def centre_crop(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """The centre ``size`` x ``size`` window of (..., H, W) pixels."""
    height, width = pixels.shape[-2:]
    if min(height, width) < size:
        raise ValueError(f"cannot crop {size}x{size} from {height}x{width}")
    top, left = (height - size) // 2, (width - size) // 2
    return pixels[..., top : top + size, left : left + size]


def random_crops(
    images: Sequence[torch.Tensor], batch: int, generator: torch.Generator, crop: int, flip: bool = True
) -> torch.Tensor:
    """``batch`` random ``crop`` x ``crop`` windows of images drawn with replacement, in [-1, 1].

    ``images`` are (3, H, W) uint8 tensors of any sizes with both sides >= ``crop``: the official
    loader's random crop and horizontal flip, for images of mixed aspect ratios.
    """
    picks = torch.randint(len(images), (batch,), generator=generator).tolist()
    windows = []
    for pick in picks:
        image = images[pick]
        height, width = image.shape[-2:]
        if min(height, width) < crop:
            raise ValueError(f"crop {crop} is larger than an image ({height}x{width})")
        top = int(torch.randint(height - crop + 1, (1,), generator=generator))
        left = int(torch.randint(width - crop + 1, (1,), generator=generator))
        window = image[:, top : top + crop, left : left + crop]
        if flip and bool(torch.rand(1, generator=generator) < 0.5):
            window = window.flip(-1)
        windows.append(window)
    return torch.stack(windows).float() / 127.5 - 1


def image_files(folder: Path) -> list[Path]:
    """The images under ``folder`` (recursively) in sorted relative-path order, so draws do not
    depend on the order a file system lists them in."""
    return sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.relative_to(folder).as_posix(),
    )


def restore_detail(translated: torch.Tensor, source: torch.Tensor, source_low: torch.Tensor) -> torch.Tensor:
    """Full-size translations with the source's fine detail added back, all in [0, 1].

    ``translated`` (K, 3, H, W) are translations made at the working scale and resized up;
    ``source`` (1, 3, H, W) is the full-size input and ``source_low`` (1, 3, H, W) the same
    input after the round trip to the working scale, i.e. what the translator saw. Their
    difference is the detail the working scale lost (edges, texture, small figures). It is
    added to each translation with a per-pixel gain: the ratio of the translation's luma to
    the source's at the working scale (clipped to [0, 2]), so detail in a region the
    translation darkened to a tenth comes back a tenth as strong, as it would in a real night
    photograph of the scene.
    """
    weights = torch.tensor((0.299, 0.587, 0.114), dtype=source.dtype).view(1, 3, 1, 1)
    detail = source - source_low
    offset = 0.02  # keeps the gain finite in black regions
    gain = ((translated * weights).sum(1, keepdim=True) + offset) / (
        (source_low * weights).sum(1, keepdim=True) + offset
    )
    return (translated + gain.clamp(0, 2) * detail).clamp(0, 1)
