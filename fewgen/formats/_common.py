"""Pieces the format readers and writers share: checks, box parsing, file naming."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from fewgen.api import ReadResult, SampleIssue
from fewgen.dataset import SPLITS, UNSAFE_CHARACTERS, Box, Dataset, Sample, name_problem, sample_problem
from fewgen.errors import UsageError
from fewgen.imageio import IMAGE_SUFFIXES, CorruptImage, checked_size, copy_file, load_mask, load_rgb, save_image

# Box coordinates may overshoot the image by this much (rounding in the labelling tool) before
# the box counts as wrong; within it, boxes are clipped to the image.
PIXEL_TOLERANCE = 1.0
NORMALISED_TOLERANCE = 1e-3


class SampleProblem(Exception):
    """Something wrong with one sample: it is skipped and reported, the read goes on."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(reason)
        self.issue = SampleIssue(str(path), reason)


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise UsageError(f"{what} not found: {path}")
    return path


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def walk(folder: Path, issues: list[SampleIssue] | None) -> Iterable[tuple[str, list[str], list[str]]]:
    """``os.walk`` of ``folder`` as the readers use it; a folder that cannot be listed goes to ``issues``.

    Symbolic links to folders are not followed, so a link loop cannot trap a reader, and no folder
    outside the dataset is read by walking (the tree fingerprint of the cache key follows the same rule).
    """

    def unreadable(exc: OSError) -> None:
        if issues is not None:
            issues.append(SampleIssue(str(exc.filename), f"cannot list folder: {exc.strerror or exc}"))

    return os.walk(folder, onerror=unreadable, followlinks=False)


def image_files(folder: Path, issues: list[SampleIssue] | None = None) -> list[Path]:
    """Image files anywhere below ``folder``, sorted by path (see :func:`walk` on links and errors)."""
    found = []
    for directory, subdirs, files in walk(folder, issues):
        subdirs.sort()
        found.extend(Path(directory, name) for name in files if is_image(Path(name)))
    return sorted(found)


def sample_id(image: Path, base: Path) -> str:
    """Posix path of ``image`` relative to ``base`` without its suffix.

    An image outside ``base`` (listed by absolute path, or through ``..``) is named by its whole
    path without the leading ``/``: an id never starts with ``/`` or holds a ``..`` segment.
    """
    image, base = (Path(os.path.normpath(Path(p).absolute())) for p in (image, base))
    relative = image.relative_to(base) if image.is_relative_to(base) else image.relative_to(image.anchor)
    return relative.with_suffix("").as_posix()


def finished(dataset: Dataset, issues: list[SampleIssue], source: str) -> ReadResult:
    """A reader's result, once class names are safe (else UsageError) and unsafe samples moved to ``issues``.

    Ids, labels and domains become file names when a dataset is written, so a sample whose text
    has control characters, an absolute path or ``..`` is skipped, as is one with a split other than
    train, val or test. Class names apply to the whole dataset: an unsafe one is a usage error.
    """
    for index, name in enumerate(dataset.classes):
        problem = name_problem(name)
        if problem:
            raise UsageError(f"class {index} of {source}, {name!r}, {problem}; rename it")
    kept = []
    for sample in dataset.samples:
        problem = sample_problem(sample)
        if problem:
            issues.append(SampleIssue(str(sample.image), problem))
        else:
            kept.append(sample)
    return ReadResult(dataset.with_samples(kept), issues)


def split_folder(sample: Sample) -> str:
    """The sample's split as a folder name for a writer; any other text is refused, never joined to a path."""
    if sample.split not in SPLITS:
        raise UsageError(f"split {sample.split!r} of sample {sample.id!r} is not one of {', '.join(SPLITS)}")
    return sample.split


def decoded_sizes(paths: Sequence[Path]) -> list[tuple[int, int] | CorruptImage]:
    """Fully decode every file, in parallel (decoding releases the GIL); errors are returned, not raised."""

    def size(path: Path) -> tuple[int, int] | CorruptImage:
        try:
            return checked_size(path)
        except CorruptImage as exc:
            return exc

    if len(paths) < 16:
        return [size(p) for p in paths]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(size, paths))


def checked_mask(mask: Path, size: tuple[int, int] | CorruptImage, width: int, height: int) -> None:
    """Raise :class:`SampleProblem` unless ``mask`` decoded to the image's size."""
    if isinstance(size, CorruptImage):
        raise SampleProblem(mask, f"mask: {size}")
    if size != (width, height):
        raise SampleProblem(mask, f"mask is {size[0]}x{size[1]} but the image is {width}x{height}")


def checked_box(
    cls: int,
    corners: Sequence[float],
    width: int,
    height: int,
    n_classes: int | None,
    tolerance: tuple[float, float] = (PIXEL_TOLERANCE, PIXEL_TOLERANCE),
) -> Box:
    """A validated box clipped to the image; raises ValueError with the reason otherwise."""
    x1, y1, x2, y2 = corners
    if cls < 0 or (n_classes is not None and cls >= n_classes):
        known = f"0..{n_classes - 1}" if n_classes else "none"
        raise ValueError(f"class {cls} out of range (classes {known})")
    if not (x2 > x1 and y2 > y1):
        raise ValueError(f"empty box {x1:g} {y1:g} {x2:g} {y2:g}")
    tol_x, tol_y = tolerance
    if x1 < -tol_x or y1 < -tol_y or x2 > width + tol_x or y2 > height + tol_y:
        raise ValueError(f"box {x1:g} {y1:g} {x2:g} {y2:g} lies outside the {width}x{height} image")
    return Box(cls, x1, y1, x2, y2).clipped(width, height)


_SEPARATORS = re.compile(r"[,\s]+")


def parse_box_file(
    path: Path, box_format: str, width: int, height: int, n_classes: int | None, class_base: int = 0
) -> tuple[Box, ...]:
    """Boxes of a text file, one a line: ``yolo`` (``cls cx cy w h`` normalised) or
    ``xyxy_class`` (``x1 y1 x2 y2 cls`` in pixels). Spaces or commas separate values."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SampleProblem(path, f"cannot read labels: {exc}") from None
    boxes = []
    for number, line in enumerate(text.splitlines(), start=1):
        values = [v for v in _SEPARATORS.split(line.strip()) if v]
        if not values:
            continue
        try:
            if len(values) != 5:
                raise ValueError(f"expected 5 values, found {len(values)}")
            if box_format == "yolo":
                cls_text, *numbers = values
                cx, cy, w, h = (float(v) for v in numbers)
                corners = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
                tolerance = (NORMALISED_TOLERANCE * width, NORMALISED_TOLERANCE * height)
            else:
                *numbers, cls_text = values
                corners = tuple(float(v) for v in numbers)
                tolerance = (PIXEL_TOLERANCE, PIXEL_TOLERANCE)
            cls = _class_id(cls_text) - class_base
            boxes.append(checked_box(cls, corners, width, height, n_classes, tolerance))
        except ValueError as exc:
            raise SampleProblem(path, f"line {number}: {exc}") from None
    return tuple(boxes)


def _class_id(text: str) -> int:
    # "3.0" appears in files written by tools that store everything as float.
    value = float(text)
    if not value.is_integer():
        raise ValueError(f"class id {text!r} is not an integer")
    return int(value)


def number(value: float) -> str:
    """Shortest stable text of a coordinate: integers without decimals, others with up to six."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def yolo_line(box: Box, width: int, height: int, class_base: int = 0) -> str:
    cx, cy = (box.x1 + box.x2) / 2 / width, (box.y1 + box.y2) / 2 / height
    w, h = box.width / width, box.height / height
    return f"{box.cls + class_base} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


# Long enough for any real id, short enough that a suffix and a counter stay within the 255 bytes
# most file systems allow in a name.
MAX_NAME_BYTES = 200


def file_names(samples: Iterable[Sample]) -> list[str]:
    """A file name (without suffix) per sample, unique even on case-insensitive file systems.

    Ids may contain ``/``; it becomes ``__`` so every file of a split sits in one folder. Control
    characters become ``_`` and long ids are cut, so whatever a generator made an id, the name is one
    harmless path segment.
    """
    used: set[str] = set()
    names = []
    for sample in samples:
        base = sample.id.replace("\\", "/").strip("/").replace("/", "__")
        base = UNSAFE_CHARACTERS.sub("_", base).encode()[:MAX_NAME_BYTES].decode(errors="ignore")
        if base.strip(".") == "":
            base = "sample"
        name, counter = base, 1
        while name.lower() in used:
            counter += 1
            name = f"{base}_{counter}"
        used.add(name.lower())
        names.append(name)
    return names


def class_names(value: Any, source: str) -> list[str]:
    """Class names from a list or an ``{id: name}`` mapping (ids 0..N-1; gaps are named by their id)."""
    if isinstance(value, list):
        return [str(name) for name in value]
    if isinstance(value, dict):
        try:
            by_id = {int(key): str(name) for key, name in value.items()}
        except (TypeError, ValueError):
            raise UsageError(f"class names in {source} must be keyed by integer ids") from None
        if any(key < 0 for key in by_id):
            raise UsageError(f"class ids in {source} must not be negative")
        return [by_id.get(i, str(i)) for i in range(max(by_id, default=-1) + 1)]
    raise UsageError(f"class names in {source} must be a list or a mapping of id to name")


def read_yaml(path: Path, what: str) -> Any:
    if not path.is_file():
        raise UsageError(f"{what} not found: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"{what} {path} is not valid YAML: {reason}") from None


# Suffixes that name the same codec. Comparing names avoids Pillow's full plugin table,
# whose first use imports every image plugin Pillow has.
_SUFFIX_ALIASES = {".jpeg": ".jpg", ".jpe": ".jpg", ".tif": ".tiff"}


def _same_codec(a: Path, b: Path) -> bool:
    def canonical(path: Path) -> str:
        suffix = path.suffix.lower()
        return _SUFFIX_ALIASES.get(suffix, suffix)

    return canonical(a) == canonical(b)


def export_image(source: Path, dest: Path) -> None:
    """Copy the bytes when ``dest`` asks for the source's codec, re-encode only when it does not."""
    if _same_codec(source, dest):
        copy_file(source, dest)
    else:
        save_image(load_rgb(source), dest)


def export_mask(source: Path, dest: Path) -> None:
    if _same_codec(source, dest):
        copy_file(source, dest)
    else:
        save_image(load_mask(source), dest)
