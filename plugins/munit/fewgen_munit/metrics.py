"""How good a translation is, without pretrained networks (none can be downloaded here).

* **Domain share**: a small CNN trained on real images of the two domains judges each
  translated image; the share it calls the target domain says whether translations look like
  that domain to a model that learnt nothing from the translator.
* **Diversity**: the mean pairwise L1 distance between the outputs of different styles for the
  same input (the paper uses LPIPS, a learned distance; plain L1 needs no weights). Zero means
  the translator ignores the style, as a unimodal one would.
* **Edge SSIM**: SSIM between the edge maps of the input and its translation. Night changes
  brightness and colour but must keep where objects are; edges are where their outlines are.
  Each edge map is divided by its own 99th percentile first, so a darker image with the same
  outlines scores as high as a brighter one.

All images are float tensors in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fewgen_munit.data import centre_crop, resize

LUMA = (0.299, 0.587, 0.114)
SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
EDGE_PERCENTILE = 0.99


def grey(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) luma of (N, 3, H, W) RGB."""
    weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True)


def sobel_edges(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) gradient magnitude of the luma, each image divided by its 99th percentile and clipped to 1."""
    luma = F.pad(grey(images), (1, 1, 1, 1), mode="replicate")
    kernel_x = torch.tensor(SOBEL_X, dtype=images.dtype, device=images.device).view(1, 1, 3, 3)
    gx = F.conv2d(luma, kernel_x)
    gy = F.conv2d(luma, kernel_x.transpose(-1, -2))
    magnitude = (gx.square() + gy.square()).sqrt()
    scale = torch.quantile(magnitude.flatten(1), EDGE_PERCENTILE, dim=1).clamp_min(1e-6)
    return (magnitude / scale.view(-1, 1, 1, 1)).clamp(max=1.0)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(coords**2) / (2 * sigma**2))
    return (kernel / kernel.sum()).float()


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """(N,) mean SSIM (Wang et al. 2004: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03) of
    (N, C, H, W) images with values in [0, 1], over the valid (unpadded) window positions."""
    if x.shape != y.shape:
        raise ValueError(f"SSIM needs images of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    c1, c2 = 0.01**2, 0.03**2
    kernel_1d = gaussian_window(window, sigma).to(x)
    channels = x.shape[1]
    kernel = (kernel_1d[:, None] * kernel_1d[None, :]).expand(channels, 1, window, window)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x.square()
    var_y = blur(y * y) - mu_y.square()
    cov = blur(x * y) - mu_x * mu_y
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2))
    return score.flatten(1).mean(1)


def edge_ssim(sources: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """(N,) SSIM between the normalised edge maps of each source and its output, both (N, 3, H, W)."""
    return ssim(sobel_edges(sources), sobel_edges(outputs))


def diversity(outputs: torch.Tensor) -> torch.Tensor:
    """(N,) mean L1 distance over all pairs of the K outputs (K, N, 3, H, W) of each input; needs K >= 2."""
    k = outputs.shape[0]
    if k < 2:
        raise ValueError("diversity needs at least two outputs per input")
    total = torch.zeros(outputs.shape[1], dtype=torch.float64)
    for i in range(k):
        for j in range(i + 1, k):
            total += (outputs[i] - outputs[j]).abs().flatten(1).mean(1).double()
    return (total / (k * (k - 1) / 2)).float()


# ---------------------------------------------------------------------------------------------
# The domain classifier


class DomainClassifier(nn.Module):
    """A small CNN: four stride-2 convolutions, global average pooling, one logit (target domain)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (N,) that images (N, 3, H, W) in [0, 1] belong to the target domain."""
        return self.head(self.features(images * 2 - 1).mean((2, 3)))[:, 0]


@dataclass(frozen=True)
class ClassifierConfig:
    size: int = 64  # images are judged at this side (short side resized, centre crop)
    steps: int = 600
    batch: int = 32
    lr: float = 1e-3


def classifier_view(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, size, size): the short side resized to ``size`` and the centre square, as the classifier sees images."""
    height, width = images.shape[-2:]
    scale = size / min(height, width)
    scaled = resize(images, (max(size, round(height * scale)), max(size, round(width * scale))))
    return centre_crop(scaled, size)


def train_domain_classifier(
    source: Sequence[torch.Tensor],
    target: Sequence[torch.Tensor],
    seed: int = 0,
    config: ClassifierConfig = ClassifierConfig(),
) -> DomainClassifier:
    """A classifier of real ``source`` (label 0) vs real ``target`` (label 1) images, each (3, H, W) in [0, 1].

    Trained on random crops (90-100 % of the short side) with flips, balanced batches, so it
    keys on what the domains look like rather than where things are.
    """
    if not source or not target:
        raise ValueError("the domain classifier needs images of both domains")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DomainClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    model.train()
    half = config.batch // 2
    for _ in range(config.steps):
        batch = [_augmented(source, generator, config.size) for _ in range(half)]
        batch += [_augmented(target, generator, config.size) for _ in range(half)]
        labels = torch.tensor([0.0] * half + [1.0] * half)
        loss = F.binary_cross_entropy_with_logits(model(torch.stack(batch)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def _augmented(images: Sequence[torch.Tensor], generator: torch.Generator, size: int) -> torch.Tensor:
    image = images[int(torch.randint(len(images), (1,), generator=generator))]
    height, width = image.shape[-2:]
    side = int(min(height, width) * (0.9 + 0.1 * float(torch.rand(1, generator=generator))))
    top = int(torch.randint(height - side + 1, (1,), generator=generator))
    left = int(torch.randint(width - side + 1, (1,), generator=generator))
    window = resize(image[None, :, top : top + side, left : left + side], (size, size))[0]
    return window.flip(-1) if bool(torch.rand(1, generator=generator) < 0.5) else window


@torch.no_grad()
def target_probability(model: DomainClassifier, images: torch.Tensor, size: int = 64, batch: int = 64) -> torch.Tensor:
    """(N,) the classifier's probability that each image (N, 3, H, W) in [0, 1] is of the target domain."""
    model.eval()
    views = classifier_view(images, size)
    return torch.cat([torch.sigmoid(model(views[i : i + batch])) for i in range(0, len(views), batch)])
