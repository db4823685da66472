"""DRAEM's training loss: L2 + SSIM for the reconstruction, focal loss for the segmentation.

L = ||I - I_r||^2 (mean) + (1 - SSIM(I, I_r)) + Focal(M, M_hat), each weighted 1, as in the
paper (eq. 1-4) and the reference training script.

* SSIM is :func:`fewgen.measures.ssim_map`: an 11x11 Gaussian window (sigma 1.5, computed in
  float32 as the reference code does), zero padding so the map keeps the image size, and the
  reference code's dynamic range rule (L = 1 for images in [0, 1]).
* The focal loss (Lin et al., 2017) takes the softmax probabilities, gamma = 2, no class
  weighting, and the reference code's label smoothing: the one-hot target is clamped to
  [1e-5, 1 - 1e-5] and 1e-5 is added to p_t before the log.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fewgen.measures import dynamic_range, gaussian_window, ssim_map

FOCAL_GAMMA = 2.0
FOCAL_SMOOTH = 1e-5


def ssim_window() -> torch.Tensor:
    """The 1-D SSIM window as the reference code computes it, in float32."""
    return gaussian_window(dtype=torch.float32)


def ssim_loss(first: torch.Tensor, second: torch.Tensor, window: torch.Tensor | None = None) -> torch.Tensor:
    """1 - mean SSIM (zero padding), with the reference window and the dynamic range of ``first``."""
    window = ssim_window() if window is None else window
    return 1 - ssim_map(first, second, window, dynamic_range(first)).mean()


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
        self.register_buffer("window", ssim_window(), persistent=False)

    def terms(
        self, image: torch.Tensor, reconstruction: torch.Tensor, mask: torch.Tensor, logits: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``image`` is the good image, ``reconstruction`` the network's output for its anomalous copy."""
        return {
            "l2": F.mse_loss(reconstruction, image),
            "ssim": ssim_loss(reconstruction, image, self.window),
            "focal": focal_loss(torch.softmax(logits, dim=1), mask, self.gamma),
        }

    def forward(
        self, image: torch.Tensor, reconstruction: torch.Tensor, mask: torch.Tensor, logits: torch.Tensor
    ) -> torch.Tensor:
        return sum(self.terms(image, reconstruction, mask, logits).values())  # type: ignore[return-value]
