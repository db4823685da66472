"""Image reading and writing shared by formats and plugins, with errors that name the file.

NumPy and Pillow are imported inside the functions that need them: format plugins import
this module at registration, and a cached rerun should not pay for libraries it never uses.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fewgen.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# The most pixels fewgen decodes in one image (40 MP: a 8000 x 5000 photo fits, a header claiming
# 20000 x 20000 does not). A few hundred bytes of PNG can claim billions of pixels, and decoding
# one would exhaust memory, so sizes are checked in the header before any pixel is decoded.
# FEWGEN_MAX_IMAGE_PIXELS overrides it; a value above Pillow's own limit raises Pillow's to match.
MAX_IMAGE_PIXELS = 40_000_000
PIXEL_LIMIT_VARIABLE = "FEWGEN_MAX_IMAGE_PIXELS"


class CorruptImage(Exception):
    """An image file that cannot be decoded."""


class ImageTooLarge(CorruptImage):
    """An image over the pixel limit, or one there is not enough memory to decode."""


def max_image_pixels() -> int:
    """The pixel limit in force: ``FEWGEN_MAX_IMAGE_PIXELS`` when set, else :data:`MAX_IMAGE_PIXELS`."""
    text = os.environ.get(PIXEL_LIMIT_VARIABLE, "").strip()
    if not text:
        return MAX_IMAGE_PIXELS
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if limit <= 0:
        raise UsageError(f"{PIXEL_LIMIT_VARIABLE} must be a positive number of pixels, not {text!r}")
    return limit


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.4g} MP"


def _too_large(what: str, size: tuple[int, int], limit: int) -> ImageTooLarge:
    claimed = f"{size[0]}x{size[1]} = {_megapixels(size[0] * size[1])}"
    return ImageTooLarge(f"{what} is {claimed}, over fewgen's limit of {_megapixels(limit)} ({PIXEL_LIMIT_VARIABLE})")


def _header_size(path: Path) -> tuple[int, int] | None:
    """The size an image's header claims, read by the format's own parser.

    Only for images Pillow refused as decompression bombs: its refusal does not say the size.
    """
    from PIL import Image

    Image.init()
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(16)
            for format_id in Image.ID:
                factory, accept = Image.OPEN[format_id]
                if accept is not None and not accept(prefix):
                    continue
                handle.seek(0)
                try:
                    return factory(handle, str(path)).size
                except Exception:  # a parser failing only means the file is not in its format
                    continue
    except OSError:
        pass
    return None


@contextmanager
def open_image(path: Path, what: str | None = None) -> Iterator[Image.Image]:
    """Open an image with Pillow once its header's size is within :func:`max_image_pixels`.

    Whatever Pillow raises for a damaged or oversized file, on opening or while decoding in the
    ``with`` block, becomes a :class:`CorruptImage` (:class:`ImageTooLarge` for size and memory)
    whose message starts with ``what`` (default ``image <path>``); a plugin skips the sample.
    """
    from PIL import Image, UnidentifiedImageError

    what = what or f"image {path}"
    limit = max_image_pixels()
    if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limit  # fewgen's own check below is the one that applies
    size: tuple[int, int] | None = None
    try:
        with Image.open(path) as image:
            size = image.size
            if size[0] * size[1] > limit:
                raise _too_large(what, size, limit)
            yield image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Raised by Image.open itself, before fewgen sees the size (a warning only under -W error).
        claimed = _header_size(path)
        if claimed is None:
            raise ImageTooLarge(f"{what} was refused by Pillow as a possible decompression bomb: {exc}") from None
        raise _too_large(what, claimed, limit) from None
    except MemoryError:
        claimed = f" ({size[0]}x{size[1]})" if size else ""
        raise ImageTooLarge(f"{what}{claimed}: not enough memory to decode it") from None
    # Pillow reports damaged files through several exception types, depending on the codec.
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise CorruptImage(f"cannot decode {what}: {exc}") from None


def checked_size(path: Path) -> tuple[int, int]:
    """(width, height) after decoding the whole file, so truncated images are caught here."""
    with open_image(path, "image") as image:
        image.load()
        return image.size


def load_rgb(path: Path) -> np.ndarray:
    """An HxWx3 uint8 array."""
    import numpy as np

    with open_image(path) as image:
        return np.asarray(image.convert("RGB"))


def load_mask(path: Path) -> np.ndarray:
    """An HxW uint8 array (first channel of multi-channel masks)."""
    import numpy as np

    with open_image(path, f"mask {path}") as image:
        array = np.asarray(image)
    return array[..., 0] if array.ndim == 3 else array


def load_sample_pixels(
    image_path: Path, mask_path: Path | None, skip: Callable[[Path, str], None]
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """A sample's RGB image and its mask (None when it has none), or None after ``skip(path, reason)``.

    A sample whose mask cannot be read, or does not match its image's size, is skipped whole:
    its image alone would teach a segmenter that its objects vanished, and box crops of it
    would carry its background. Generators pass ``ctx.skip``.
    """
    try:
        image = load_rgb(image_path)
    except CorruptImage as exc:
        skip(image_path, str(exc))
        return None
    if mask_path is None:
        return image, None
    try:
        mask = load_mask(mask_path)
    except CorruptImage as exc:
        skip(mask_path, str(exc))
        return None
    if mask.shape != image.shape[:2]:
        skip(mask_path, f"mask is {mask.shape[1]}x{mask.shape[0]}, its image {image.shape[1]}x{image.shape[0]}")
        return None
    return image, mask


def save_image(array: np.ndarray, path: Path, quality: int = 95) -> Path:
    """Write an image atomically (temporary file, then rename); the suffix picks the codec."""
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.ascontiguousarray(array))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        options = {"quality": quality} if path.suffix.lower() in (".jpg", ".jpeg") else {}
        image.save(tmp, **options)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def copy_file(source: Path, dest: Path) -> None:
    """Copy bytes (never a hard link: editing an exported image must not alter the cache)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
