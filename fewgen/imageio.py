"""Image reading and writing shared by formats and plugins, with errors that name the file.

NumPy and Pillow are imported inside the functions that need them: format plugins import
this module at registration, and a cached rerun should not pay for libraries it never uses.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class CorruptImage(Exception):
    """An image file that cannot be decoded."""


def _decode_errors() -> tuple[type[BaseException], ...]:
    from PIL import UnidentifiedImageError

    # Pillow reports damaged files through several exception types, depending on the codec.
    return (OSError, UnidentifiedImageError, ValueError, SyntaxError)


def checked_size(path: Path) -> tuple[int, int]:
    """(width, height) after decoding the whole file, so truncated images are caught here."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return image.size
    except _decode_errors() as exc:
        raise CorruptImage(f"cannot decode image: {exc}") from None


def load_rgb(path: Path) -> np.ndarray:
    """An HxWx3 uint8 array."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except _decode_errors() as exc:
        raise CorruptImage(f"cannot decode image {path}: {exc}") from None


def load_mask(path: Path) -> np.ndarray:
    """An HxW uint8 array (first channel of multi-channel masks)."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as image:
            array = np.asarray(image)
    except _decode_errors() as exc:
        raise CorruptImage(f"cannot decode mask {path}: {exc}") from None
    return array[..., 0] if array.ndim == 3 else array


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
