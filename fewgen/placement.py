"""Where a new object may go in an image: plausible boxes learned from the dataset's own boxes of the class.

Shared by the generators that insert objects into real images (``psgan`` paints them,
``copy_paste`` pastes real ones); it needs nothing but NumPy.

In a street scene an object's size follows from where it stands: the lower its feet in the
image, the closer it is, the taller it looks. :class:`BoxPlacement` learns that from the
real boxes of the class, each measured relative to its image's height:

* **bottom** (the y of the box's lower edge, where it meets the ground): new bottoms are
  drawn from the real ones, each moved by a little Gaussian jitter, so new objects stand
  where real ones stand (the bias towards ground contact: never in the sky, rarely where
  no real object has stood);
* **height** as a linear function of the bottom, fitted by least squares, plus a Gaussian
  residual with the fit's own spread, kept within the range of real heights;
* **aspect** (width / height) drawn from the real ones.

The horizontal position is uniform. A candidate is rejected if it leaves the image, is
smaller than ``min_height`` pixels, or intersects (any overlap at all, even of zero IoU
after rounding) an existing box of any class or a box placed before it in the same image;
after ``attempts`` rejections an image gets fewer boxes than asked for.

With fewer than three boxes the slope is set to zero (a line through one or two points says
nothing about perspective): heights are then the mean height with no spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fewgen.dataset import Box, Sample


@dataclass(frozen=True)
class BoxPlacement:
    """A learned distribution of boxes of one class, in units of the image height."""

    cls: int
    bottoms: tuple[float, ...]
    aspects: tuple[float, ...]
    intercept: float
    slope: float
    spread: float  # standard deviation of the height residual
    min_height: float  # the smallest and largest real heights: sampled heights stay between them
    max_height: float

    @classmethod
    def fit(cls, samples: list[Sample], class_id: int) -> BoxPlacement:
        boxes = [(box, s.height) for s in samples for box in s.boxes if box.cls == class_id and box.height > 0]
        if not boxes:
            raise ValueError(f"no boxes of class {class_id} to learn placement from")
        bottoms = np.array([box.y2 / height for box, height in boxes])
        heights = np.array([box.height / height for box, height in boxes])
        aspects = tuple(float(box.width / box.height) for box, _ in boxes)
        if len(boxes) >= 3 and np.ptp(bottoms) > 0:
            slope, intercept = np.polyfit(bottoms, heights, 1)
            residuals = heights - (intercept + slope * bottoms)
            spread = float(np.sqrt(np.sum(residuals**2) / (len(boxes) - 2))) if len(boxes) > 2 else 0.0
        else:
            slope, intercept, spread = 0.0, float(heights.mean()), 0.0
        return cls(
            cls=class_id,
            bottoms=tuple(float(b) for b in bottoms),
            aspects=aspects,
            intercept=float(intercept),
            slope=float(slope),
            spread=spread,
            min_height=float(heights.min()),
            max_height=float(heights.max()),
        )

    def candidate(self, width: int, height: int, rng: np.random.Generator) -> Box:
        """One unchecked candidate box for an image of ``width`` x ``height``."""
        bottom = self.bottoms[int(rng.integers(len(self.bottoms)))] + rng.normal(0.0, 0.02)
        relative = self.intercept + self.slope * bottom
        if self.spread:
            relative += rng.normal(0.0, self.spread)
        box_height = float(np.clip(relative, self.min_height, self.max_height)) * height
        box_width = box_height * self.aspects[int(rng.integers(len(self.aspects)))]
        y2 = bottom * height
        x1 = rng.uniform(0.0, max(width - box_width, 0.0))
        return Box(self.cls, float(x1), float(y2 - box_height), float(x1 + box_width), float(y2))

    def place(
        self,
        width: int,
        height: int,
        existing: tuple[Box, ...] | list[Box],
        count: int,
        rng: np.random.Generator,
        min_height: float = 1.0,
        attempts: int = 100,
    ) -> list[Box]:
        """Up to ``count`` new boxes inside the image that intersect neither ``existing`` nor each other."""
        placed: list[Box] = []
        for _ in range(attempts):
            if len(placed) == count:
                break
            box = self.candidate(width, height, rng)
            if box.x1 < 0 or box.y1 < 0 or box.x2 > width or box.y2 > height or box.height < min_height:
                continue
            if any(intersects(box, other) for other in (*existing, *placed)):
                continue
            placed.append(box)
        return placed


def intersects(a: Box, b: Box) -> bool:
    """True when the boxes share any area (touching edges do not count)."""
    return a.x1 < b.x2 and b.x1 < a.x2 and a.y1 < b.y2 and b.y1 < a.y2
