"""Training pairs for PS-GAN from any detection dataset fewgen reads (YOLO, COCO, native, ...).

The official PS-GAN repository ships prepared pairs but not the step that makes them; this
is ours. For every box of the chosen class that is usable, a square **window** is cut
around it: the box centred, the window's side ``context`` times the box's longer side (so
the scene around the object is in view), parts beyond the image border filled by repeating
the edge pixels, and the window resized to the preset's size. The **target** is that real
window; the **input** is the same window with the box region filled with uniform noise in
[-1, 1], drawn afresh every time a batch is drawn. The box's position in the window goes
with each pair, because the person discriminator judges exactly that crop.

pix2pix's **random jitter** (images loaded at 286 px and cropped back to 256 at a random
place) is kept as a translation at the insertion scale: each window is cut with a margin
of 286/256 of its side around the same centre, at the same pixels per image pixel, and
every draw crops the preset's size from it at a random offset. The centre crop is
exactly the window insertion gives the generator (the README has its measured effect).

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
    jitter: float = 286 / 256  # pix2pix's random jitter: windows cut this much larger, cropped back at random

    @property
    def margin(self) -> int:
        """Pixels added on each side of a training window for the random crop."""
        return round(self.size * (self.jitter - 1) / 2)


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
    """Real windows with a jitter margin, (N, 3, S + 2m, S + 2m) uint8, their boxes (N, 4) int64 in those windows'
    pixels, the preset's window side S, and where they came from. The centre S x S crop of each is exactly the
    window insertion cuts around the box (:meth:`Window.around` with the rules' context)."""

    windows: torch.Tensor
    boxes: torch.Tensor
    size: int
    sources: list[tuple[str, Box]]  # (sample id, the box in its image)
    report: PairReport

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def margin(self) -> int:
        return (self.windows.shape[-1] - self.size) // 2

    def crop(self, rows: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows ``rows`` cropped to S x S at (x, y) ``offsets``, as float in [-1, 1], with their boxes."""
        import torch

        size = self.size
        windows = [
            self.windows[row, :, y : y + size, x : x + size]
            for row, (x, y) in zip(rows.tolist(), offsets.tolist(), strict=True)
        ]
        shift = torch.cat([offsets, offsets], dim=1)
        boxes = (self.boxes[rows] - shift).clamp(0, size)
        return torch.stack(windows).float() / 127.5 - 1, boxes

    def centred(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every window's centre crop (what insertion and evaluation use) and its box, in order."""
        import torch

        rows = torch.arange(len(self))
        return self.crop(rows, torch.full((len(self), 2), self.margin, dtype=torch.int64))

    def batch(
        self, generator: torch.Generator, batch_size: int, flip: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs, targets, boxes) of ``batch_size`` pairs drawn with replacement, each cropped at a random
        offset within its margin (pix2pix's jitter) and, with ``flip``, mirrored left-right (box too) half
        the time. The noise in the inputs is fresh every draw."""
        import torch

        picks = torch.randint(len(self), (batch_size,), generator=generator)
        offsets = torch.randint(2 * self.margin + 1, (batch_size, 2), generator=generator)
        targets, boxes = self.crop(picks, offsets)
        if flip:
            mirrored = torch.rand(batch_size, generator=generator) < 0.5
            targets = torch.where(mirrored[:, None, None, None], targets.flip(-1), targets)
            size = self.size
            flipped = torch.stack([size - boxes[:, 2], boxes[:, 1], size - boxes[:, 0], boxes[:, 3]], dim=1)
            boxes = torch.where(mirrored[:, None], flipped, boxes)
        return with_noise(targets, boxes, generator), targets, boxes

    def inputs(self, generator: torch.Generator) -> torch.Tensor:
        """Every centred window in order, its box filled with noise: what the generator gets at evaluation."""
        windows, boxes = self.centred()
        return with_noise(windows, boxes, generator)


def with_noise(windows: torch.Tensor, boxes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A copy of (B, 3, S, S) windows in [-1, 1] whose box regions hold uniform noise in [-1, 1]."""
    import torch

    out = windows.clone()
    for image, (x1, y1, x2, y2) in zip(out, boxes.tolist(), strict=True):
        image[:, y1:y2, x1:x2] = torch.rand(3, y2 - y1, x2 - x1, generator=generator) * 2 - 1
    return out


def build_pairs(samples: list[Sample], rules: PairRules) -> WindowPairs:
    """Windows (with their jitter margins) around the usable boxes of ``rules.cls`` in ``samples``, in sample and
    box order."""
    import torch

    report = PairReport()
    windows, boxes, sources = [], [], []
    side = rules.size + 2 * rules.margin
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
            # The same centre and pixel scale as the insertion window, with the jitter margin around it.
            window = Window.around(box, rules.context * side / rules.size)
            windows.append(torch.from_numpy(window.cut(image, side)).permute(2, 0, 1))
            boxes.append(window.box_in_window(box, side))
            sources.append((sample.id, box))
    report.used = len(sources)
    stacked = torch.stack(windows) if windows else torch.empty(0, 3, side, side, dtype=torch.uint8)
    return WindowPairs(stacked, torch.tensor(boxes, dtype=torch.int64).reshape(-1, 4), rules.size, sources, report)
