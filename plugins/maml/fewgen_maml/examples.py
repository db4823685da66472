"""Few-shot examples cut from a fewgen dataset: whole images, box crops or defect crops.

A few-shot class is whatever a user has a handful of: a label of whole images (Omniglot
characters, defect types in a class-folder layout), a box class of a detection dataset (crops
around each box) or the label of an anomaly dataset's images cropped around their defect masks.
Each :class:`Example` remembers the sample (and box) it came from, so predictions made on it can
be written back onto that sample.

Crops are square, centred on the object, ``margin`` of its longer side added on every side (a
little context, as a detector's crop would have), moved to lie inside the image when they fit and
clipped otherwise; they are resized with Lanczos filtering, like whole images.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from fewgen.dataset import Dataset

Source = Literal["images", "boxes", "masks"]
Region = tuple[int, int, int, int]  # left, top, right, bottom in pixels


@dataclass(frozen=True)
class Example:
    """One image or crop to classify: where it comes from and its class (None: unlabelled)."""

    sample_id: str
    image: Path
    class_name: str | None
    split: str
    region: Region | None = None  # None: the whole image
    box_index: int | None = None  # which of the sample's boxes, for box crops


def square_region(x1: float, y1: float, x2: float, y2: float, width: int, height: int, margin: float) -> Region:
    """A square around the box, ``margin`` of its longer side added on each side, kept inside the image."""
    side = max(x2 - x1, y2 - y1, 1.0) * (1.0 + 2.0 * margin)
    side = min(side, float(max(width, height)))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = min(max(cx - side / 2, 0.0), max(width - side, 0.0))
    top = min(max(cy - side / 2, 0.0), max(height - side, 0.0))
    right, bottom = min(left + side, width), min(top + side, height)
    return round(left), round(top), max(round(right), round(left) + 1), max(round(bottom), round(top) + 1)


def mask_region(mask_path: Path, margin: float) -> Region | None:
    """The square crop around every marked pixel of a mask; None when the mask is empty."""
    from fewgen.imageio import load_mask

    mask = load_mask(mask_path)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    height, width = mask.shape[:2]
    return square_region(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, width, height, margin)


def dataset_examples(
    dataset: Dataset,
    source: Source,
    margin: float = 0.15,
    on_error: Callable[[Path, str], None] | None = None,
) -> list[Example]:
    """Every example of ``dataset`` of the given kind, in dataset order.

    ``images``: one per sample, classed by the sample's label. ``boxes``: one per box, classed by
    the box's class name. ``masks``: one per sample with a non-empty mask, classed by the sample's
    label, cropped around the mask (defect-free samples have no crop and are left out).
    """
    examples: list[Example] = []
    for sample in dataset:
        if source == "images":
            examples.append(Example(sample.id, sample.image, sample.label, sample.split))
        elif source == "boxes":
            for index, box in enumerate(sample.boxes):
                clipped = box.clipped(sample.width, sample.height)
                if clipped.width < 1 or clipped.height < 1:
                    continue
                region = square_region(
                    clipped.x1, clipped.y1, clipped.x2, clipped.y2, sample.width, sample.height, margin
                )
                examples.append(
                    Example(sample.id, sample.image, dataset.class_name(box.cls), sample.split, region, index)
                )
        elif source == "masks":
            if sample.mask is None:
                continue
            try:
                region = mask_region(sample.mask, margin)
            except Exception as exc:  # a corrupt mask costs one example, not the step
                if on_error is None:
                    raise
                on_error(sample.mask, str(exc))
                continue
            if region is not None:
                examples.append(Example(sample.id, sample.image, sample.label, sample.split, region))
        else:
            raise ValueError(f"source must be 'images', 'boxes' or 'masks', got {source!r}")
    return examples


def matching(names: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """The names matching any of the shell-style patterns (``dent/*``, ``person``), sorted."""
    return sorted(name for name in set(names) if any(fnmatch.fnmatchcase(name, p) for p in patterns))


def load_examples(
    examples: Sequence[Example],
    size: int,
    channels: int = 1,
    invert: bool = False,
    on_error: Callable[[Path, str], None] | None = None,
) -> tuple[torch.Tensor, list[int]]:
    """The examples as one uint8 (n, C, size, size) tensor, and the positions of those that loaded.

    Each image file is decoded once however many crops it gives. An image that cannot be read is
    passed to ``on_error(path, reason)`` and its examples are left out (without ``on_error`` it
    raises).
    """
    from PIL import Image

    from fewgen.imageio import CorruptImage, open_image

    mode = "L" if channels == 1 else "RGB"
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    arrays: list[np.ndarray] = []
    kept: list[int] = []
    by_image: dict[Path, list[int]] = {}
    for position, example in enumerate(examples):
        by_image.setdefault(example.image, []).append(position)
    loaded: dict[int, np.ndarray] = {}
    for path, positions in by_image.items():
        try:
            # open_image refuses images over fewgen's pixel limit before decoding them.
            with open_image(path, "image") as opened:
                image = opened.convert(mode)
                image.load()
        except CorruptImage as exc:
            if on_error is None:
                raise ValueError(f"{path}: {exc}") from None
            on_error(path, str(exc))
            continue
        for position in positions:
            region = examples[position].region
            part = image if region is None else image.crop(region)
            resized = part.resize((size, size), Image.Resampling.LANCZOS)
            array = np.asarray(resized, dtype=np.uint8).reshape(size, size, channels)
            loaded[position] = 255 - array if invert else array
    for position in sorted(loaded):
        arrays.append(loaded[position])
        kept.append(position)
    if not arrays:
        return torch.empty(0, channels, size, size, dtype=torch.uint8), kept
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous(), kept


def group_by_class(examples: Sequence[Example], images: torch.Tensor, names: Iterable[str]) -> dict[str, torch.Tensor]:
    """The images of each named class, in example order (``images[i]`` belongs to ``examples[i]``)."""
    wanted = set(names)
    positions: dict[str, list[int]] = {name: [] for name in sorted(wanted)}
    for position, example in enumerate(examples):
        if example.class_name in wanted:
            positions[example.class_name].append(position)
    return {name: images[index] for name, index in positions.items() if index}


@dataclass
class ClassSplit:
    """A dataset's examples loaded into memory and split into base and novel classes."""

    examples: list[Example]  # the examples that loaded, aligned with ``images``
    images: torch.Tensor  # uint8 (n, C, size, size)
    base: list[str]
    novel: list[str]

    def images_of(self, names: Iterable[str]) -> dict[str, torch.Tensor]:
        return group_by_class(self.examples, self.images, names)


def split_classes(
    dataset: Dataset,
    source: Source,
    novel_patterns: Sequence[str],
    base_patterns: Sequence[str],
    size: int,
    channels: int,
    invert: bool = False,
    margin: float = 0.15,
    include_synthetic: bool = False,
    on_error: Callable[[Path, str], None] | None = None,
) -> ClassSplit:
    """Load ``dataset``'s examples and name its base and novel classes; errors a user can cause say so.

    Raises ``ValueError`` when the patterns match no novel class, or no base class is left.
    """
    chosen = dataset if include_synthetic else dataset.with_samples(s for s in dataset if not s.is_synthetic)
    examples = dataset_examples(chosen, source, margin, on_error)
    names = {e.class_name for e in examples if e.class_name is not None}
    if not names:
        raise ValueError(f"the dataset has no labelled {source} examples (source: {source})")
    novel = matching(names, novel_patterns)
    if not novel:
        shown = ", ".join(sorted(names)[:8]) + (", ..." if len(names) > 8 else "")
        raise ValueError(f"novel_classes {list(novel_patterns)} match none of the {len(names)} classes ({shown})")
    base = [name for name in matching(names, base_patterns) if name not in set(novel)]
    images, kept = load_examples(examples, size, channels, invert, on_error)
    return ClassSplit([examples[i] for i in kept], images, base, novel)
