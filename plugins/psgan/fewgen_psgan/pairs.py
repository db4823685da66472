"""Training pairs for PS-GAN from any detection dataset fewgen reads (YOLO, COCO, native, ...).

The official PS-GAN repository ships prepared pairs but not the step that makes them; this
is ours. For every box of the chosen class that is usable, a square **window** is cut
around it: the box centred, the window's side ``context`` times the box's longer side (so
the scene around the object is in view), parts beyond the image border filled by repeating
the edge pixels, and the window resized to the preset's size. The **target** is that real
window; the **input** is the same window with the box region filled with uniform noise in
[-1, 1], drawn afresh every time a batch is drawn. The box's position in the window goes
with each pair, because the person discriminator judges exactly that crop.

A box is skipped when it is too small (``min_height`` pixels in its image), truncated (it
touches the image border: the object is cut off, and a model would learn cut-off
objects), too big (its window would be mostly padding: a side over ``max_fraction`` of the
image's), or too flat for the class (``min_aspect``, height over width: pedestrians stand).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fewgen.dataset import Box, Sample
from fewgen.imageio import CorruptImage, load_rgb

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class PairRules:
    """Which boxes become training pairs and how much context a window holds."""

    cls: int = 0
    size: int = 64  # the preset's window side
    context: float = 1.5  # window side / the box's longer side
    min_height: float = 24.0  # pixels in the source image
    min_aspect: float = 0.0  # box height / width
    max_fraction: float = 0.8  # of the image's width (height) a box's width (height) may cover


@dataclass(frozen=True)
class Window:
    """A square region of an image: top-left corner and side, in the image's pixels (it may reach outside)."""

    x0: float
    y0: float
    side: float

    @classmethod
    def around(cls, box: Box, context: float) -> Window:
        side = max(box.width, box.height) * context
        cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
        return cls(cx - side / 2, cy - side / 2, side)

    def box_in_window(self, box: Box, size: int) -> tuple[int, int, int, int]:
        """The box in the resized window's pixels, rounded outwards (end exclusive), at least one pixel."""
        scale = size / self.side
        x1 = min(max(math.floor((box.x1 - self.x0) * scale), 0), size - 1)
        y1 = min(max(math.floor((box.y1 - self.y0) * scale), 0), size - 1)
        x2 = max(min(math.ceil((box.x2 - self.x0) * scale), size), x1 + 1)
        y2 = max(min(math.ceil((box.y2 - self.y0) * scale), size), y1 + 1)
        return x1, y1, x2, y2

    def cut(self, image: np.ndarray, size: int) -> np.ndarray:
        """The window of an HxWx3 uint8 image as size x size x 3 uint8; outside the image, edge pixels repeat."""
        import cv2

        x0, y0 = math.floor(self.x0), math.floor(self.y0)
        side = max(1, math.ceil(self.x0 + self.side) - x0, math.ceil(self.y0 + self.side) - y0)
        height, width = image.shape[:2]
        region = image[max(y0, 0) : min(y0 + side, height), max(x0, 0) : min(x0 + side, width)]
        top, left = max(-y0, 0), max(-x0, 0)
        bottom, right = side - top - region.shape[0], side - left - region.shape[1]
        if top or left or bottom or right:
            region = cv2.copyMakeBorder(region, top, bottom, left, right, cv2.BORDER_REPLICATE)
        interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        # The integer region can be up to a pixel larger than the window; that shift is below a window pixel.
        return cv2.resize(np.ascontiguousarray(region), (size, size), interpolation=interpolation)


@dataclass
class PairReport:
    """How many boxes of the class were found, used and skipped (by reason)."""

    boxes: int = 0
    used: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    images: int = 0
    unreadable: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "images": self.images,
            "boxes": self.boxes,
            "used": self.used,
            "skipped": dict(sorted(self.skipped.items())),
            "unreadable": len(self.unreadable),
        }


def skip_reason(box: Box, width: int, height: int, rules: PairRules) -> str | None:
    """Why a box of the class makes no training pair, or None when it makes one."""
    if box.x1 <= 1 or box.y1 <= 1 or box.x2 >= width - 1 or box.y2 >= height - 1:
        return "truncated"
    if box.height < rules.min_height:
        return "too_small"
    if box.width > rules.max_fraction * width or box.height > rules.max_fraction * height:
        return "too_big"
    if box.width <= 0 or box.height / box.width < rules.min_aspect:
        return "too_flat"
    return None


@dataclass
class WindowPairs:
    """Real windows (N, 3, S, S) uint8 and their boxes (N, 4) int64 in window pixels, with where they came from."""

    windows: torch.Tensor
    boxes: torch.Tensor
    sources: list[tuple[str, Box]]  # (sample id, the box in its image)
    report: PairReport

    def __len__(self) -> int:
        return len(self.sources)

    def subset(self, rows: list[int]) -> WindowPairs:
        return WindowPairs(self.windows[rows], self.boxes[rows], [self.sources[i] for i in rows], self.report)

    def batch(
        self, generator: torch.Generator, batch_size: int, flip: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs, targets, boxes) of ``batch_size`` pairs drawn with replacement; with ``flip`` each is
        mirrored left-right (box too) half the time. The noise in the inputs is fresh every draw."""
        import torch

        picks = torch.randint(len(self), (batch_size,), generator=generator)
        targets = self.windows[picks].float() / 127.5 - 1
        boxes = self.boxes[picks].clone()
        if flip:
            mirrored = torch.rand(batch_size, generator=generator) < 0.5
            targets = torch.where(mirrored[:, None, None, None], targets.flip(-1), targets)
            size = targets.shape[-1]
            flipped = torch.stack([size - boxes[:, 2], boxes[:, 1], size - boxes[:, 0], boxes[:, 3]], dim=1)
            boxes = torch.where(mirrored[:, None], flipped, boxes)
        return with_noise(targets, boxes, generator), targets, boxes

    def inputs(self, generator: torch.Generator) -> torch.Tensor:
        """Every window in order, its box filled with noise: what the generator gets at evaluation."""
        return with_noise(self.windows.float() / 127.5 - 1, self.boxes, generator)


def with_noise(windows: torch.Tensor, boxes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A copy of (B, 3, S, S) windows in [-1, 1] whose box regions hold uniform noise in [-1, 1]."""
    import torch

    out = windows.clone()
    for image, (x1, y1, x2, y2) in zip(out, boxes.tolist(), strict=True):
        image[:, y1:y2, x1:x2] = torch.rand(3, y2 - y1, x2 - x1, generator=generator) * 2 - 1
    return out


def build_pairs(samples: list[Sample], rules: PairRules) -> WindowPairs:
    """Windows around the usable boxes of ``rules.cls`` in ``samples``, in sample and box order."""
    import torch

    report = PairReport()
    windows, boxes, sources = [], [], []
    for sample in samples:
        candidates = [box for box in sample.boxes if box.cls == rules.cls]
        if not candidates:
            continue
        report.boxes += len(candidates)
        usable = []
        for box in candidates:
            reason = skip_reason(box, sample.width, sample.height, rules)
            if reason is None:
                usable.append(box)
            else:
                report.skipped[reason] += 1
        if not usable:
            continue
        try:
            image = load_rgb(sample.image)
        except CorruptImage:
            report.unreadable.append(str(sample.image))
            report.skipped["unreadable"] += len(usable)
            continue
        report.images += 1
        for box in usable:
            window = Window.around(box, rules.context)
            windows.append(torch.from_numpy(window.cut(image, rules.size)).permute(2, 0, 1))
            boxes.append(window.box_in_window(box, rules.size))
            sources.append((sample.id, box))
    report.used = len(sources)
    stacked = torch.stack(windows) if windows else torch.empty(0, 3, rules.size, rules.size, dtype=torch.uint8)
    return WindowPairs(stacked, torch.tensor(boxes, dtype=torch.int64).reshape(-1, 4), sources, report)
