"""How good a translation is, without pretrained networks (none can be downloaded here).

* **Domain share**: a small CNN trained on real images of the two domains judges each
  translated image; the share it calls the target domain says whether translations look like
  that domain to a model that learnt nothing from the translator.
* **Diversity**: the mean pairwise L1 distance between the outputs of different styles for the
  same input (the paper uses LPIPS, a learned distance; plain L1 needs no weights). Zero means
  the translator ignores the style, as a unimodal one would.
* **Edge SSIM** (:func:`fewgen.measures.edge_ssim`): SSIM between the edge maps of the input
  and its translation. Night changes brightness and colour but must keep where objects are;
  edges are where their outlines are. Each edge map is divided by its own 99th percentile
  first, so a darker image with the same outlines scores as high as a brighter one.

All images are float tensors in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fewgen_munit.data import centre_crop, resize


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
