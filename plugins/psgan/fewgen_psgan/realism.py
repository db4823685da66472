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
:func:`fewgen.measures.ssim` (Wang et al. 2004, mean over the positions where the window
fits and over the channels), in float64.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from fewgen.dataset import Box
from fewgen.measures import HOG_PERSON_HEIGHT, HOG_WINDOW, box_iou, detect_people, people_detector, ssim

if TYPE_CHECKING:
    import cv2
    import torch

MARGIN = 48  # scaled pixels around the box in which the detection window may slide
MIN_IOU = 0.3


def box_region(image: np.ndarray, box: Box) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The scaled region around a box that the detector searches, and the box in its pixels."""
    import cv2

    scale = HOG_PERSON_HEIGHT / box.height
    width = box.width * scale + 2 * MARGIN
    height = HOG_PERSON_HEIGHT + 2 * MARGIN
    # The detector needs at least one window.
    width, height = max(width, HOG_WINDOW[0] + 16), max(height, HOG_WINDOW[1] + 16)
    out_w, out_h = math.ceil(width), math.ceil(height)
    cx, cy = (box.x1 + box.x2) / 2, (box.y1 + box.y2) / 2
    # An affine map (scale, then shift) cuts and scales in one go; the border repeats edge pixels.
    matrix = np.array([[scale, 0, out_w / 2 - cx * scale], [0, scale, out_h / 2 - cy * scale]], dtype=np.float64)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    region = cv2.warpAffine(image, matrix, (out_w, out_h), flags=interpolation, borderMode=cv2.BORDER_REPLICATE)
    scaled = (
        out_w / 2 - box.width * scale / 2,
        out_h / 2 - HOG_PERSON_HEIGHT / 2,
        out_w / 2 + box.width * scale / 2,
        out_h / 2 + HOG_PERSON_HEIGHT / 2,
    )
    return region, scaled


def hog_detected(image: np.ndarray, boxes: list[Box], detector: cv2.HOGDescriptor | None = None) -> list[bool]:
    """For each box of an HxWx3 RGB uint8 image: did the HOG people detector find a person there?"""
    import cv2

    detector = detector or people_detector()
    found = []
    for box in boxes:
        region, target = box_region(image, box)
        windows = detect_people(cv2.cvtColor(region, cv2.COLOR_RGB2GRAY), detector)
        found.append(any(box_iou(target, window) >= MIN_IOU for window in windows))
    return found


def nearest_heights(wanted: list[float], available: list[float]) -> list[int]:
    """For each wanted height, the index of the available height closest to it (ties: the first)."""
    heights = np.asarray(available, dtype=np.float64)
    return [int(np.argmin(np.abs(heights - value))) for value in wanted]


def box_fidelity(generated: torch.Tensor, real: torch.Tensor, boxes: torch.Tensor) -> dict[str, float | int]:
    """Mean L1 and SSIM between generated and real windows (N, 3, S, S) in [-1, 1], inside each box."""
    l1s, ssims = [], []
    for fake, target, (x1, y1, x2, y2) in zip(generated, real, boxes.tolist(), strict=True):
        a = (fake[:, y1:y2, x1:x2] + 1) / 2
        b = (target[:, y1:y2, x1:x2] + 1) / 2
        l1s.append(float((a - b).abs().mean()))
        if min(y2 - y1, x2 - x1) >= 11:
            ssims.append(float(ssim(a.clamp(0, 1).double()[None], b.clamp(0, 1).double()[None])[0]))
    return {
        "boxes": len(l1s),
        "l1": round(float(np.mean(l1s)), 4) if l1s else 0.0,
        "ssim_boxes": len(ssims),
        "ssim": round(float(np.mean(ssims)), 4) if ssims else 0.0,
    }
