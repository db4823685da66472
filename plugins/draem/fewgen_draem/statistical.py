"""A statistical anomaly baseline without learning, to read DRAEM's figures against.

Fitted on the same good training images DRAEM trains on, at the same size, it models every
pixel feature of a good image as an independent Gaussian per colour channel and flags what
the Gaussian finds unlikely:

    z(x, c)   = (f(x, c) - mean(x, c)) / max(std(x, c), STD_FLOOR)
    map(x)    = Gaussian blur (sigma SMOOTHING px) of the mean over channels of z(x, c)^2
    score     = max of the map after the 21x21 mean filter DRAEM's image score uses

The mean over channels keeps a grey image (three equal channels) at its one-channel z^2. The
floor keeps a constant area of the good images (std 0) from turning a one-grey-level change
into an infinite score; 0.02 of the [0, 1] range is about five 8-bit grey levels, above JPEG
and quantisation noise. The standard deviation is the sample one (ddof 1): with a handful of
good images the population one understates the spread. The blur of z^2 (normalised at the
border, so the edge is not darkened) turns a speck of noise into a weak response and a
coherent region into a strong one, as the pooled image score does.

Two feature models, one per kind of surface:

* ``aligned`` (the default): f is the pixel colour and mean and std are per position,
  fitted over the good images. This assumes the good images are roughly aligned: the same
  part in the same place after resizing, as for MVTec objects or cropped magnetic tiles, so
  that the per-pixel Gaussian holds the expected appearance of that spot.
* ``texture``: for surfaces whose good images are not aligned (woven or brushed textures,
  crops at random places) a per-position model only learns a blur of everything. There f is
  the pixel's difference from its own image's local mean (a Gaussian of sigma LOCAL_SIGMA px,
  normalised at the border), and mean and std are pooled over every position of every good
  image: a position-free model of local contrast, which flags spots, holes and scratches
  that stand out from their surroundings more than the good surface does, wherever they are.
  It does not see a defect that changes a large area evenly (a stain wider than the window).

No parameter is fitted beyond the means and standard deviations: there is nothing to tune on
the test set.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from fewgen.measures import gaussian_blur, gaussian_window
from fewgen_draem.model import image_score
from fewgen_draem.training import as_float

STD_FLOOR = 0.02
SMOOTHING = 2.0
LOCAL_SIGMA = 4.0
BATCH = 32

Alignment = Literal["aligned", "texture"]


def smooth(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of (N, C, H, W) that stays unbiased at the border: blur(x) / blur(1)."""
    radius = max(1, math.ceil(3 * sigma))
    window = gaussian_window(2 * radius + 1, sigma, dtype=torch.float32)
    coverage = gaussian_blur(torch.ones_like(images[:1, :1]), window)
    return gaussian_blur(images, window) / coverage


class StatisticalBaseline:
    """Per-channel Gaussian model of good-image pixel features; :meth:`predict` gives maps and scores."""

    def __init__(self, alignment: Alignment = "aligned", std_floor: float = STD_FLOOR, smoothing: float = SMOOTHING):
        if alignment not in ("aligned", "texture"):
            raise ValueError(f"alignment must be 'aligned' or 'texture', got {alignment!r}")
        if std_floor <= 0:
            raise ValueError(f"std_floor must be positive, got {std_floor}")
        self.alignment = alignment
        self.std_floor = std_floor
        self.smoothing = smoothing
        self.mean: torch.Tensor | None = None  # (3, S, S) aligned, (3, 1, 1) texture
        self.std: torch.Tensor | None = None

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) float features of uint8 or [0, 1] images: the colour, or its local contrast."""
        values = as_float(images)
        if self.alignment == "texture":
            values = values - smooth(values, LOCAL_SIGMA)
        return values

    def fit(self, images: torch.Tensor) -> StatisticalBaseline:
        """Fit on good images (N, 3, S, S), N >= 2; float64 sums, batch by batch, so memory stays flat."""
        count = images.shape[0]
        if count < 2:
            raise ValueError(f"the baseline needs at least 2 good images, got {count}")
        # Aligned: one observation per image at each position; texture: every pixel is one observation.
        dims = (0,) if self.alignment == "aligned" else (0, 2, 3)
        total = squares = torch.zeros(())
        for start in range(0, count, BATCH):
            batch = self.features(images[start : start + BATCH]).double()
            total = total + batch.sum(dims)
            squares = squares + (batch * batch).sum(dims)
        observations = count if self.alignment == "aligned" else count * images.shape[-1] * images.shape[-2]
        if self.alignment == "texture":
            total, squares = total[:, None, None], squares[:, None, None]
        mean = total / observations
        variance = ((squares - observations * mean * mean) / (observations - 1)).clamp_min(0)
        self.mean, self.std = mean.float(), variance.sqrt().float()
        return self

    def anomaly_maps(self, images: torch.Tensor) -> torch.Tensor:
        """(N, S, S) smoothed mean squared z-score of images (N, 3, S, S), before any pooling."""
        if self.mean is None or self.std is None:
            raise RuntimeError("fit the baseline before scoring")
        maps = []
        for start in range(0, images.shape[0], BATCH):
            z = (self.features(images[start : start + BATCH]) - self.mean) / self.std.clamp_min(self.std_floor)
            squared = (z * z).mean(1, keepdim=True)
            maps.append((smooth(squared, self.smoothing) if self.smoothing > 0 else squared)[:, 0])
        return torch.cat(maps) if maps else torch.empty(0, *images.shape[-2:])

    def predict(self, images: torch.Tensor, pool: int = 21) -> tuple[torch.Tensor, torch.Tensor]:
        """(anomaly maps (N, S, S), image scores (N,)): the score is DRAEM's rule, max of the pooled map."""
        maps = self.anomaly_maps(images)
        return maps, image_score(maps, pool)

    def describe(self) -> dict[str, object]:
        """The settings, for metrics.json and the report."""
        return {
            "method": f"per-pixel Gaussian z-score ({self.alignment})",
            "alignment": self.alignment,
            "std_floor": self.std_floor,
            "smoothing_sigma": self.smoothing,
            **({"local_sigma": LOCAL_SIGMA} if self.alignment == "texture" else {}),
            "image_score": "max of the 21x21 mean-filtered map, as DRAEM",
        }
