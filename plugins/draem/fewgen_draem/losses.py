"""DRAEM's training loss: L2 + SSIM for the reconstruction, focal loss for the segmentation.

L = ||I - I_r||^2 (mean) + (1 - SSIM(I, I_r)) + Focal(M, M_hat), each weighted 1, as in the
paper (eq. 1-4) and the reference training script.

* SSIM uses an 11x11 Gaussian window (sigma 1.5), zero padding so the map keeps the image
  size, and the reference code's dynamic range rule (L = 1 for images in [0, 1]); the
  window is separable, so it runs as two 1-D convolutions instead of one 11x11.
* The focal loss (Lin et al., 2017) takes the softmax probabilities, gamma = 2, no class
  weighting, and the reference code's label smoothing: the one-hot target is clamped to
  [1e-5, 1 - 1e-5] and 1e-5 is added to p_t before the log.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
FOCAL_GAMMA = 2.0
FOCAL_SMOOTH = 1e-5


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """(size,) normalised 1-D Gaussian; its outer product with itself is the 2-D SSIM window."""
    offsets = torch.arange(size, dtype=torch.float32) - size // 2
    window = torch.exp(-(offsets**2) / (2 * sigma**2))
    return window / window.sum()


def gaussian_blur(images: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Depthwise separable Gaussian filter with zero padding: rows, then columns."""
    channels = images.shape[1]
    size = window.numel()
    rows = window.to(images).reshape(1, 1, 1, size).expand(channels, 1, 1, size)
    cols = window.to(images).reshape(1, 1, size, 1).expand(channels, 1, size, 1)
    blurred = F.conv2d(images, rows, padding=(0, size // 2), groups=channels)
    return F.conv2d(blurred, cols, padding=(size // 2, 0), groups=channels)


def dynamic_range(image: torch.Tensor) -> float:
    """The reference rule for SSIM's L: 255 for 8-bit-like values, 1 for [0, 1], 2 for [-1, 1]."""
    image = image.detach()
    high = 255.0 if float(image.max()) > 128 else 1.0
    low = -1.0 if float(image.min()) < -0.5 else 0.0
    return high - low


def ssim_map(
    first: torch.Tensor, second: torch.Tensor, window: torch.Tensor | None = None, value_range: float | None = None
) -> torch.Tensor:
    """Per-pixel SSIM (B, C, H, W) of two image batches."""
    window = gaussian_window() if window is None else window
    value_range = dynamic_range(first) if value_range is None else value_range
    c1, c2 = (0.01 * value_range) ** 2, (0.03 * value_range) ** 2
    # One blur call for all five moments: they share the window.
    stacked = torch.cat((first, second, first * first, second * second, first * second), dim=1)
    mu1, mu2, e11, e22, e12 = gaussian_blur(stacked, window).chunk(5, dim=1)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    var1, var2, cov = e11 - mu1_sq, e22 - mu2_sq, e12 - mu12
    return ((2 * mu12 + c1) * (2 * cov + c2)) / ((mu1_sq + mu2_sq + c1) * (var1 + var2 + c2))


def ssim_loss(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """1 - mean SSIM."""
    return 1 - ssim_map(first, second).mean()


def focal_loss(probabilities: torch.Tensor, target: torch.Tensor, gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """Mean focal loss of class probabilities (B, K, H, W) against an index map (B, 1, H, W) or (B, H, W)."""
    classes = probabilities.shape[1]
    target = target.reshape(target.shape[0], *probabilities.shape[2:]).long()
    one_hot = F.one_hot(target, classes).movedim(-1, 1).to(probabilities.dtype)
    one_hot = one_hot.clamp(FOCAL_SMOOTH / (classes - 1), 1 - FOCAL_SMOOTH)
    p_t = (one_hot * probabilities).sum(1) + FOCAL_SMOOTH
    return (-((1 - p_t) ** gamma) * p_t.log()).mean()


class DraemLoss(nn.Module):
    """Sum of the three terms; :meth:`terms` returns them apart for logging."""

    def __init__(self, gamma: float = FOCAL_GAMMA) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("window", gaussian_window(), persistent=False)

    def terms(
        self, image: torch.Tensor, reconstruction: torch.Tensor, mask: torch.Tensor, logits: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``image`` is the good image, ``reconstruction`` the network's output for its anomalous copy."""
        return {
            "l2": F.mse_loss(reconstruction, image),
            "ssim": 1 - ssim_map(reconstruction, image, self.window).mean(),
            "focal": focal_loss(torch.softmax(logits, dim=1), mask, self.gamma),
        }

    def forward(
        self, image: torch.Tensor, reconstruction: torch.Tensor, mask: torch.Tensor, logits: torch.Tensor
    ) -> torch.Tensor:
        return sum(self.terms(image, reconstruction, mask, logits).values())  # type: ignore[return-value]
