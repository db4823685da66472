"""The arithmetic of one paste, apart from files and recipes: where it goes, what it hides, how it blends.

A :class:`Patch` is an instance at its pasted size and place, with ``shape`` saying which
of its pixels belong to the object (alpha > 0.5: a mask cut-out's mask, a box crop's whole
rectangle). A :class:`Layout` holds the labels of one image while patches are pasted into
it, each later patch in front of everything before it: every label box keeps a boolean
mask of its pixels still seen, so a box partly hidden shrinks to the bounding box of what
is left and a box hidden below ``min_visible`` of its area goes. Pixels are composited
with a hard edge, a feathered edge or Poisson (gradient-domain) blending.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from fewgen.dataset import Box

# A label narrower or lower than this many pixels is no object a detector can learn from.
MIN_SIDE = 2


@dataclass
class Patch:
    """An instance resized (and maybe flipped) to its pasted size, with its top-left corner in the image.

    The corner may lie outside the image: a patch may stand partly beyond the border.
    """

    cls: int
    x: int
    y: int
    pixels: np.ndarray  # h x w x 3 uint8
    shape: np.ndarray  # h x w bool: the object's pixels

    @property
    def width(self) -> int:
        return int(self.shape.shape[1])

    @property
    def height(self) -> int:
        return int(self.shape.shape[0])

    @property
    def box(self) -> Box:
        """The pasted box before clipping to the image."""
        return Box(self.cls, float(self.x), float(self.y), float(self.x + self.width), float(self.y + self.height))


def fit_patch(
    pixels: np.ndarray, alpha: np.ndarray, cls: int, x: int, y: int, width: int, height: int, flip: bool
) -> Patch:
    """An instance's crop ``pixels`` and boolean ``alpha`` resized to ``width`` x ``height``, placed at (x, y)."""
    source_height, source_width = alpha.shape
    shrinking = width * height < source_width * source_height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(pixels, (width, height), interpolation=interpolation)
    soft = cv2.resize(alpha.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    shape = soft > 0.5
    if flip:
        resized, shape = resized[:, ::-1], shape[:, ::-1]
    return Patch(cls, x, y, np.ascontiguousarray(resized), np.ascontiguousarray(shape))


def random_corner(
    width: int, height: int, image_width: int, image_height: int, rng: np.random.Generator
) -> tuple[int, int]:
    """Top-left corner of a ``width`` x ``height`` patch whose centre pixel is uniform over the image.

    Up to half the patch may so stand outside the image; ``min_visible`` decides whether it stays.
    """
    centre_x, centre_y = int(rng.integers(image_width)), int(rng.integers(image_height))
    return centre_x - width // 2, centre_y - height // 2


def pixel_rect(box: Box) -> tuple[int, int, int, int] | None:
    """(x, y, width, height) of the whole pixels inside ``box`` (rounded inwards, so it overlaps nothing
    the box does not), or None when that is under :data:`MIN_SIDE` a side."""
    x1, y1 = math.ceil(box.x1 - 1e-9), math.ceil(box.y1 - 1e-9)
    x2, y2 = math.floor(box.x2 + 1e-9), math.floor(box.y2 + 1e-9)
    if x2 - x1 < MIN_SIDE or y2 - y1 < MIN_SIDE:
        return None
    return x1, y1, x2 - x1, y2 - y1


def overlap(
    x: int, y: int, width: int, height: int, other_x: int, other_y: int, other_width: int, other_height: int
) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Slices of two rectangles' common part, in the first's and the second's own pixels; None when disjoint."""
    left, top = max(x, other_x), max(y, other_y)
    right, bottom = min(x + width, other_x + other_width), min(y + height, other_y + other_height)
    if right <= left or bottom <= top:
        return None
    first = (slice(top - y, bottom - y), slice(left - x, right - x))
    second = (slice(top - other_y, bottom - other_y), slice(left - other_x, right - other_x))
    return first, second


@dataclass
class TrackedBox:
    """A label box and which of its pixels are still seen (``seen``, over the pixels from (x, y))."""

    box: Box
    x: int
    y: int
    seen: np.ndarray
    area: int  # the pixels the object had when made: what min_visible compares with
    lost: bool = False  # whether any pixel was hidden (or lay outside the image) since
    first: Box | None = None  # its label when it joined the image (a paste's is clipped); None: ``box``

    @classmethod
    def of_label(cls, box: Box, image_width: int, image_height: int) -> TrackedBox:
        """A box the image already had: all its whole pixels (rounded), within the image, are its object."""
        x1, y1 = max(round(box.x1), 0), max(round(box.y1), 0)
        x2, y2 = min(round(box.x2), image_width), min(round(box.y2), image_height)
        seen = np.ones((max(y2 - y1, 0), max(x2 - x1, 0)), bool)
        return cls(box, x1, y1, seen, int(seen.sum()))

    @classmethod
    def of_patch(cls, patch: Patch, image_width: int, image_height: int) -> TrackedBox:
        """A pasted object: its shape's pixels, of which those outside the image are lost from the start."""
        seen = np.zeros_like(patch.shape)
        inside = overlap(patch.x, patch.y, patch.width, patch.height, 0, 0, image_width, image_height)
        if inside is not None:
            seen[inside[0]] = patch.shape[inside[0]]
        area = int(patch.shape.sum())
        return cls(patch.box, patch.x, patch.y, seen, area, lost=int(seen.sum()) < area)

    def hide(self, patch: Patch) -> None:
        """The patch, pasted in front, covers the pixels of this box under its shape."""
        common = overlap(
            self.x, self.y, self.seen.shape[1], self.seen.shape[0], patch.x, patch.y, patch.width, patch.height
        )
        if common is None:
            return
        mine, theirs = common
        covered = self.seen[mine] & patch.shape[theirs]
        if covered.any():
            self.seen[mine] &= ~covered
            self.lost = True

    def label(self, min_visible: float) -> Box | None:
        """The box as labelled now: unchanged while nothing was lost; else the bounding box of the pixels
        still seen (never beyond the box), or None when under ``min_visible`` of the area or :data:`MIN_SIDE`."""
        if not self.lost:
            return self.box
        visible = int(self.seen.sum())
        if visible == 0 or visible < min_visible * self.area:
            return None
        rows = np.flatnonzero(self.seen.any(axis=1))
        columns = np.flatnonzero(self.seen.any(axis=0))
        box = Box(
            self.box.cls,
            max(self.box.x1, float(self.x + columns[0])),
            max(self.box.y1, float(self.y + rows[0])),
            min(self.box.x2, float(self.x + columns[-1] + 1)),
            min(self.box.y2, float(self.y + rows[-1] + 1)),
        )
        return box if box.width >= MIN_SIDE and box.height >= MIN_SIDE else None


class Layout:
    """The label boxes of one image while patches are pasted into it, each in front of those before."""

    def __init__(self, boxes: tuple[Box, ...] | list[Box], width: int, height: int, min_visible: float) -> None:
        self.width, self.height, self.min_visible = width, height, min_visible
        self.tracked = [TrackedBox.of_label(box, width, height) for box in boxes]
        self.original = len(self.tracked)

    def boxes(self) -> list[Box]:
        """The labels as they stand now (what a new box must not overlap under learned placement)."""
        return [box for tracked in self.tracked if (box := tracked.label(self.min_visible)) is not None]

    def admit(self, patch: Patch) -> TrackedBox | None:
        """The patch's label if enough of it is inside the image (else None: the paste is dropped)."""
        tracked = TrackedBox.of_patch(patch, self.width, self.height)
        tracked.first = tracked.label(self.min_visible)
        return tracked if tracked.first is not None else None

    def add(self, tracked: TrackedBox, patch: Patch) -> None:
        for earlier in self.tracked:
            earlier.hide(patch)
        self.tracked.append(tracked)

    def result(self) -> tuple[list[Box], int, int]:
        """(the final boxes, how many boxes later pastes removed, how many they shrank), pastes included."""
        boxes, removed, shrunk = [], 0, 0
        for tracked in self.tracked:
            box = tracked.label(self.min_visible)
            if box is None:
                removed += 1
            else:
                shrunk += box != (tracked.first or tracked.box)
                boxes.append(box)
        return boxes, removed, shrunk


def feather_weights(shape: np.ndarray, feather: float) -> np.ndarray:
    """Blending weights rising from ``1 / feather`` at the shape's outline to 1 at ``feather`` pixels inside it."""
    if feather <= 0:
        return shape.astype(np.float32)
    # The padding makes the patch's own border an outline, as it is for a box crop.
    padded = np.pad(shape, 1).astype(np.uint8)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_5)[1:-1, 1:-1]
    return np.clip(distance / feather, 0.0, 1.0).astype(np.float32)


def composite(image: np.ndarray, patch: Patch, weights: np.ndarray) -> None:
    """Blend the patch into ``image`` in place, pixel by pixel with ``weights`` (0 keeps the image)."""
    height, width = image.shape[:2]
    common = overlap(0, 0, width, height, patch.x, patch.y, patch.width, patch.height)
    if common is None:
        return
    mine, theirs = common
    weight = weights[theirs][..., None]
    mixed = image[mine] * (1.0 - weight) + patch.pixels[theirs] * weight
    image[mine] = np.rint(mixed).astype(np.uint8)


# Poisson blending needs a ring of fixed pixels around the object and OpenCV clears the outer
# pixel of its input: an object this close to the border cannot be cloned whole.
POISSON_MARGIN = 2


def poisson_clone(image: np.ndarray, patch: Patch) -> str | None:
    """Paste the patch with ``cv2.seamlessClone`` (NORMAL_CLONE) in place; None, or why it could not run.

    OpenCV holds the outermost pixels of its mask fixed to the image and keeps only the
    gradients inside the mask, so the mask is the object grown by one pixel: every object
    pixel is solved for, and the object meets the image along its outline without a seam.
    Only the object's pixels change.
    """
    height, width = image.shape[:2]
    rows, columns = np.flatnonzero(patch.shape.any(axis=1)), np.flatnonzero(patch.shape.any(axis=0))
    if rows.size == 0:
        return "the instance has no pixels at this size"
    top, bottom = patch.y + rows[0] - POISSON_MARGIN, patch.y + rows[-1] + 1 + POISSON_MARGIN
    left, right = patch.x + columns[0] - POISSON_MARGIN, patch.x + columns[-1] + 1 + POISSON_MARGIN
    if top < 0 or left < 0 or bottom > height or right > width:
        return f"the instance reaches within {POISSON_MARGIN} px of the image border"
    window = (slice(top, bottom), slice(left, right))
    placed = overlap(left, top, right - left, bottom - top, patch.x, patch.y, patch.width, patch.height)
    assert placed is not None  # the window holds the whole object
    mine, theirs = placed
    shape = np.zeros((bottom - top, right - left), bool)
    shape[mine] = patch.shape[theirs]
    source = image[window].copy()
    source[mine][patch.shape[theirs]] = patch.pixels[theirs][patch.shape[theirs]]
    mask = cv2.dilate(shape.astype(np.uint8) * 255, np.ones((3, 3), np.uint8))
    x, y, w, h = cv2.boundingRect(mask)
    try:
        # seamlessClone writes into the mask it is given: it gets a copy.
        cloned = cv2.seamlessClone(
            source, image[window].copy(), mask.copy(), (x + w // 2, y + h // 2), cv2.NORMAL_CLONE
        )
    except cv2.error as exc:
        return f"cv2.seamlessClone failed: {str(exc).strip().splitlines()[-1]}"
    image[window][shape] = cloned[shape]
    return None


def blend_into(image: np.ndarray, patch: Patch, blend: str, feather: float) -> tuple[str, str | None]:
    """Paste the patch into ``image`` in place; (the blending used, a note when Poisson fell back to feather)."""
    if blend == "poisson":
        problem = poisson_clone(image, patch)
        if problem is None:
            return "poisson", None
        composite(image, patch, feather_weights(patch.shape, feather))
        return "feather", f"poisson fell back to feather: {problem}"
    if blend == "feather":
        composite(image, patch, feather_weights(patch.shape, feather))
        return "feather", None
    composite(image, patch, patch.shape.astype(np.float32))
    return "none", None
