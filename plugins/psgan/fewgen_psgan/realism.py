"""Realism checks of painted objects: a pedestrian detector's hit rate, and L1 / SSIM against the real object.

**HOG hit rate.** OpenCV's HOG people detector (Dalal and Triggs, 2005; the linear SVM that
ships with OpenCV, no download) looks at each box on its own: the region around the box
is scaled so the box is 96 pixels high (the height of a person in the detector's 64x128
window), with a margin of 48 scaled pixels on every side so the window can slide; the
region is cut from the full image (edge pixels repeated beyond the border) and searched
with a 4-pixel stride at scales 1 to 1.5. The box counts as **detected** when a detection overlaps it with IoU of at
least 0.3 (a detection window around a perfectly found, upright person of the usual shape
has an IoU of about 0.45 with the person's tight box). Painted boxes are compared with real
ones of the same heights, through the same procedure, so the upscaling blur of small boxes
hits both alike.

**L1 / SSIM.** On held-out real boxes: the generator gets the held-out window with the box
filled with noise, and its box region is compared with the real one, in [0, 1]. SSIM is
Wang et al.'s (2004): 11x11 Gaussian window with sigma 1.5, K1 0.01, K2 0.03, mean over
the positions where the window fits and over the channels.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from fewgen.dataset import Box

if TYPE_CHECKING:
    import cv2
    import torch

PERSON_HEIGHT = 96  # pixels of a person in the detector's 64x128 window
MARGIN = 48  # scaled pixels around the box in which the detection window may slide
MIN_IOU = 0.3


def people_detector() -> cv2.HOGDescriptor:
    import cv2

    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return hog


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def box_region(image: np.ndarray, box: Box) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The scaled region around a box that the detector searches, and the box in its pixels."""
    import cv2

    scale = PERSON_HEIGHT / box.height
    width = box.width * scale + 2 * MARGIN
    height = PERSON_HEIGHT + 2 * MARGIN
    # The detector needs at least one 64x128 window.
    width, height = max(width, 64 + 16), max(height, 128 + 16)
    out_w, out_h = math.ceil(width), math.ceil(height)
    cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
    # An affine map (scale, then shift) cuts and scales in one go; the border repeats edge pixels.
    matrix = np.array([[scale, 0, out_w / 2 - cx * scale], [0, scale, out_h / 2 - cy * scale]], dtype=np.float64)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    region = cv2.warpAffine(image, matrix, (out_w, out_h), flags=interpolation, borderMode=cv2.BORDER_REPLICATE)
    scaled = (
        out_w / 2 - box.width * scale / 2,
        out_h / 2 - PERSON_HEIGHT / 2,
        out_w / 2 + box.width * scale / 2,
        out_h / 2 + PERSON_HEIGHT / 2,
    )
    return region, scaled


def hog_detected(image: np.ndarray, boxes: list[Box], detector: cv2.HOGDescriptor | None = None) -> list[bool]:
    """For each box of an HxWx3 RGB uint8 image: did the HOG people detector find a person there?"""
    import cv2

    detector = detector or people_detector()
    found = []
    for box in boxes:
        region, target = box_region(image, box)
        gray = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY)
        rects, _ = detector.detectMultiScale(gray, winStride=(4, 4), padding=(0, 0), scale=1.05)
        found.append(any(iou(target, (x, y, x + w, y + h)) >= MIN_IOU for x, y, w, h in rects))
    return found


def nearest_heights(wanted: list[float], available: list[float]) -> list[int]:
    """For each wanted height, the index of the available height closest to it (ties: the first)."""
    heights = np.asarray(available, dtype=np.float64)
    return [int(np.argmin(np.abs(heights - value))) for value in wanted]


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of two (3, H, W) images in [0, 1]; both sides must be at least 11 pixels."""
    import torch
    import torch.nn.functional as F

    if min(a.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {tuple(a.shape[-2:])}")
    coords = torch.arange(11, dtype=torch.float64) - 5
    gauss = torch.exp(-(coords**2) / (2 * 1.5**2))
    gauss /= gauss.sum()
    kernel = (gauss[:, None] * gauss[None, :]).expand(a.shape[0], 1, 11, 11)
    x, y = a.double()[None], b.double()[None]

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel, groups=a.shape[0])

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(index.mean())


def box_fidelity(generated: torch.Tensor, real: torch.Tensor, boxes: torch.Tensor) -> dict[str, float | int]:
    """Mean L1 and SSIM between generated and real windows (N, 3, S, S) in [-1, 1], inside each box."""
    l1s, ssims = [], []
    for fake, target, (x1, y1, x2, y2) in zip(generated, real, boxes.tolist(), strict=True):
        a = (fake[:, y1:y2, x1:x2] + 1) / 2
        b = (target[:, y1:y2, x1:x2] + 1) / 2
        l1s.append(float((a - b).abs().mean()))
        if min(y2 - y1, x2 - x1) >= 11:
            ssims.append(ssim(a.clamp(0, 1), b.clamp(0, 1)))
    return {
        "boxes": len(l1s),
        "l1": round(float(np.mean(l1s)), 4) if l1s else 0.0,
        "ssim_boxes": len(ssims),
        "ssim": round(float(np.mean(ssims)), 4) if ssims else 0.0,
    }
