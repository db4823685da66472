"""Image and box measures the plugins share: SSIM, edge SSIM, box IoU, OpenCV's HOG people detector.

**SSIM** is Wang et al.'s (2004): a Gaussian window (11 pixels, sigma 1.5), K1 0.01, K2 0.03,
for images with values spanning ``value_range`` (1 for [0, 1]). The window is separable, so the
five local moments are blurred in one call of two 1-D convolutions. :func:`ssim_map` keeps the
image size (zero padding, as DRAEM's reference loss does) or only the positions where the
window fits; :func:`ssim` is the mean over the latter, per image, as scikit-image and the
paper compute it. Both are differentiable.

**Edge SSIM** is SSIM between Sobel edge maps of the luma, each map divided by its own 99th
percentile first, so a darker image with the same outlines scores as high as a brighter one
(how MUNIT's translations are checked for keeping where objects are).

**Box IoU** of (x1, y1, x2, y2) boxes; two empty boxes have IoU 0, as in COCOeval.

**People detector**: OpenCV's HOG descriptor with its default linear SVM (Dalal and Triggs,
2005; shipped with OpenCV, nothing downloaded). It scans a 64 x 128 window in which a person
stands about 96 pixels tall.

Confidence intervals of means are :func:`fewgen.verdicts.mean_ci`. torch, numpy and OpenCV are
imported inside the functions, so importing this module needs none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import cv2
    import numpy as np
    import torch

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

LUMA = (0.299, 0.587, 0.114)
SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
EDGE_PERCENTILE = 0.99

HOG_WINDOW = (64, 128)  # width, height of the people detector's window
HOG_PERSON_HEIGHT = 96  # pixels of a person in that window


def gaussian_window(
    size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """(size,) normalised 1-D Gaussian, computed in ``dtype`` (default float64); its outer product is the 2-D window."""
    import torch

    offsets = torch.arange(size, dtype=dtype or torch.float64) - size // 2
    window = torch.exp(-(offsets**2) / (2 * sigma**2))
    return window / window.sum()


def gaussian_blur(images: torch.Tensor, window: torch.Tensor, same_size: bool = True) -> torch.Tensor:
    """Depthwise separable Gaussian filter of (N, C, H, W): rows, then columns; zero padding or none."""
    import torch.nn.functional as F

    channels = images.shape[1]
    size = window.numel()
    pad = size // 2 if same_size else 0
    rows = window.to(images).reshape(1, 1, 1, size).expand(channels, 1, 1, size)
    cols = window.to(images).reshape(1, 1, size, 1).expand(channels, 1, size, 1)
    blurred = F.conv2d(images, rows, padding=(0, pad), groups=channels)
    return F.conv2d(blurred, cols, padding=(pad, 0), groups=channels)


def dynamic_range(image: torch.Tensor) -> float:
    """The pytorch-ssim rule for SSIM's L, read from the values: 255 if 8-bit-like, 1 for [0, 1], 2 for [-1, 1]."""
    image = image.detach()
    high = 255.0 if float(image.max()) > 128 else 1.0
    low = -1.0 if float(image.min()) < -0.5 else 0.0
    return high - low


def ssim_map(
    first: torch.Tensor,
    second: torch.Tensor,
    window: torch.Tensor | None = None,
    value_range: float = 1.0,
    same_size: bool = True,
) -> torch.Tensor:
    """Per-pixel SSIM of two (N, C, H, W) batches: (N, C, H, W) with zero padding, else the valid positions.

    ``window`` is the 1-D Gaussian (default :func:`gaussian_window`, rounded to the images' dtype).
    """
    import torch

    if first.shape != second.shape:
        raise ValueError(f"SSIM needs images of one shape, got {tuple(first.shape)} and {tuple(second.shape)}")
    window = gaussian_window().to(first.dtype) if window is None else window
    if not same_size and min(first.shape[-2:]) < window.numel():
        side = window.numel()
        raise ValueError(f"SSIM needs images of at least {side}x{side} pixels, got {tuple(first.shape[-2:])}")
    c1, c2 = (SSIM_K1 * value_range) ** 2, (SSIM_K2 * value_range) ** 2
    # One blur call for all five moments: they share the window.
    stacked = torch.cat((first, second, first * first, second * second, first * second), dim=1)
    mu1, mu2, e11, e22, e12 = gaussian_blur(stacked, window, same_size).chunk(5, dim=1)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    var1, var2, cov = e11 - mu1_sq, e22 - mu2_sq, e12 - mu12
    return ((2 * mu12 + c1) * (2 * cov + c2)) / ((mu1_sq + mu2_sq + c1) * (var1 + var2 + c2))


def ssim(first: torch.Tensor, second: torch.Tensor, value_range: float = 1.0) -> torch.Tensor:
    """(N,) mean SSIM of each pair of (N, C, H, W) images over the positions where the window fits."""
    return ssim_map(first, second, value_range=value_range, same_size=False).flatten(1).mean(1)


def grey(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) luma of (N, 3, H, W) RGB."""
    import torch

    weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True)


def sobel_edges(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) gradient magnitude of the luma, each image divided by its 99th percentile and clipped to 1."""
    import torch
    import torch.nn.functional as F

    luma = F.pad(grey(images), (1, 1, 1, 1), mode="replicate")
    kernel_x = torch.tensor(SOBEL_X, dtype=images.dtype, device=images.device).view(1, 1, 3, 3)
    gx = F.conv2d(luma, kernel_x)
    gy = F.conv2d(luma, kernel_x.transpose(-1, -2))
    magnitude = (gx.square() + gy.square()).sqrt()
    scale = torch.quantile(magnitude.flatten(1), EDGE_PERCENTILE, dim=1).clamp_min(1e-6)
    return (magnitude / scale.view(-1, 1, 1, 1)).clamp(max=1.0)


def edge_ssim(sources: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """(N,) SSIM between the normalised edge maps of each source and its output, both (N, 3, H, W) in [0, 1]."""
    return ssim(sobel_edges(sources), sobel_edges(outputs))


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x1, y1, x2, y2) boxes; 0 when they do not overlap or both are empty."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    intersection = max(width, 0.0) * max(height, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
    return intersection / union if union > 0 else 0.0


def pairwise_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``boxes_a`` (M, 4) with every box in ``boxes_b`` (N, 4): an (M, N) array."""
    import numpy as np

    top_left = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    intersection = np.clip(bottom_right - top_left, 0.0, None).prod(axis=2)
    area_a = (boxes_a[:, 2] - boxes_a[:, 0]) * (boxes_a[:, 3] - boxes_a[:, 1])
    area_b = (boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1])
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def people_detector() -> cv2.HOGDescriptor:
    """OpenCV's HOG descriptor with its default people SVM."""
    import cv2

    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return hog


def detect_people(
    image: np.ndarray,
    detector: cv2.HOGDescriptor | None = None,
    padding: tuple[int, int] = (0, 0),
    hit_threshold: float = 0.0,
) -> list[tuple[float, float, float, float]]:
    """The detector's windows (x1, y1, x2, y2) on a uint8 image, grey or RGB: 4-pixel stride, scales by 1.05."""
    detector = detector or people_detector()
    rects, _ = detector.detectMultiScale(
        image, hitThreshold=hit_threshold, winStride=(4, 4), padding=padding, scale=1.05
    )
    return [(x, y, x + w, y + h) for x, y, w, h in rects]
