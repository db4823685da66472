"""DRAEM's two networks as plain ``nn.Module``s: no training loop, no data, no fewgen.

Zavrtanik, Kristan and Skočaj, ICCV 2021, section 3.1-3.2 and the authors' reference code:

* the **reconstructive sub-network** is an encoder-decoder *without* skip connections
  (skips would let anomalies pass straight through): five double-conv blocks with four
  2x max-pools down, four bilinear 2x upsamplings with double-conv blocks up, a 3x3 conv out;
* the **discriminative sub-network** is a U-Net on the channel concatenation of the
  reconstruction and the input: six double-conv blocks with five max-pools, skip
  connections at every scale, two output channels (normal, anomalous) as logits.

Every conv is 3x3 with padding 1 followed by batch norm and ReLU, as in the reference.
``base_width`` scales the channel counts: the paper uses 128 (reconstructive) and 64
(discriminative); the smaller presets keep the shape and divide the widths, which is what
makes training on a CPU possible at all. Input sides must be multiples of 32 (five pools).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Widths:
    """Base channel counts of the two sub-networks."""

    reconstructive: int
    discriminative: int


# The paper's widths, and CPU presets that keep the architecture and shrink the channel counts.
PRESETS: dict[str, Widths] = {
    "paper": Widths(128, 64),
    "medium": Widths(64, 32),
    "small": Widths(32, 16),
    "tiny": Widths(8, 8),
}
# Five max-pools in the discriminative encoder: sides must divide by 2**5.
SIDE_MULTIPLE = 32


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


def double_conv(in_channels: int, out_channels: int, middle: int | None = None) -> nn.Sequential:
    """Two conv-BN-ReLU layers; ``middle`` channels between them (default: ``out_channels``)."""
    middle = out_channels if middle is None else middle
    return nn.Sequential(*conv_bn_relu(in_channels, middle), *conv_bn_relu(middle, out_channels))


def up_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Bilinear 2x upsampling (corners aligned, as in the reference) then one conv-BN-ReLU."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), *conv_bn_relu(in_channels, out_channels)
    )


class ReconstructiveSubNetwork(nn.Module):
    """Image in, its anomaly-free reconstruction out (same size; unbounded, trained towards [0, 1])."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, base_width: int = 128) -> None:
        super().__init__()
        w = base_width
        self.encoder = nn.Sequential(
            double_conv(in_channels, w),
            nn.MaxPool2d(2),
            double_conv(w, 2 * w),
            nn.MaxPool2d(2),
            double_conv(2 * w, 4 * w),
            nn.MaxPool2d(2),
            double_conv(4 * w, 8 * w),
            nn.MaxPool2d(2),
            double_conv(8 * w, 8 * w),
        )
        self.decoder = nn.Sequential(
            up_conv(8 * w, 8 * w),
            double_conv(8 * w, 4 * w, middle=8 * w),
            up_conv(4 * w, 4 * w),
            double_conv(4 * w, 2 * w, middle=4 * w),
            up_conv(2 * w, 2 * w),
            double_conv(2 * w, w, middle=2 * w),
            up_conv(w, w),
            double_conv(w, w),
            nn.Conv2d(w, out_channels, 3, padding=1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(image))


class DiscriminativeSubNetwork(nn.Module):
    """(reconstruction, image) concatenated in, per-pixel (normal, anomalous) logits out."""

    def __init__(self, in_channels: int = 6, out_channels: int = 2, base_width: int = 64) -> None:
        super().__init__()
        w = base_width
        widths = [w, 2 * w, 4 * w, 8 * w, 8 * w, 8 * w]
        self.down = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.down.append(double_conv(previous, width))
            previous = width
        # Decoder, deepest first: upsample to the next shallower scale, join its skip, double conv.
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        below = widths[-1]
        for skip, width in zip(widths[-2::-1], [8 * w, 4 * w, 2 * w, w, w], strict=True):
            self.up.append(up_conv(below, width))
            self.merge.append(double_conv(width + skip, width))
            below = width
        self.out = nn.Conv2d(w, out_channels, 3, padding=1)

    def forward(self, joined: torch.Tensor) -> torch.Tensor:
        skips = []
        features = joined
        for index, block in enumerate(self.down):
            if index:
                features = F.max_pool2d(features, 2)
            features = block(features)
            skips.append(features)
        for up, merge, skip in zip(self.up, self.merge, skips[-2::-1], strict=True):
            features = merge(torch.cat((up(features), skip), dim=1))
        return self.out(features)


class Draem(nn.Module):
    """Both sub-networks and the paper's inference: reconstruction, anomaly map, image score."""

    def __init__(self, widths: Widths = PRESETS["paper"], channels: int = 3, score_pool: int = 21) -> None:
        super().__init__()
        self.widths = widths
        self.score_pool = score_pool
        self.reconstructive = ReconstructiveSubNetwork(channels, channels, widths.reconstructive)
        self.discriminative = DiscriminativeSubNetwork(2 * channels, 2, widths.discriminative)

    @classmethod
    def from_preset(cls, name: str, **overrides: int) -> Draem:
        if name not in PRESETS:
            raise ValueError(f"unknown DRAEM preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(PRESETS[name], **overrides)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction, segmentation logits (B, 2, H, W)) of ``image`` (B, C, H, W) in [0, 1]."""
        check_side(image)
        reconstruction = self.reconstructive(image)
        logits = self.discriminative(torch.cat((reconstruction, image), dim=1))
        return reconstruction, logits

    @torch.no_grad()
    def predict(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(anomaly maps (B, H, W) in [0, 1], image scores (B,)) as the paper scores them."""
        _, logits = self(image)
        anomaly_map = anomaly_probability(logits)
        return anomaly_map, image_score(anomaly_map, self.score_pool)


def anomaly_probability(logits: torch.Tensor) -> torch.Tensor:
    """(B, H, W) probability of the anomalous class: the softmax over the two output channels."""
    return torch.softmax(logits, dim=1)[:, 1]


def image_score(anomaly_map: torch.Tensor, pool: int = 21) -> torch.Tensor:
    """(B,) the maximum of the map after a ``pool`` x ``pool`` mean filter (stride 1, same size).

    Averaging first makes the score reward a coherent anomalous region over an isolated hot pixel.
    Zero padding counts towards the border means, as in the reference code.
    """
    pooled = F.avg_pool2d(anomaly_map[:, None], pool, stride=1, padding=pool // 2)
    return pooled.flatten(1).max(1).values


def check_side(image: torch.Tensor) -> None:
    if image.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(image.shape)}")
    height, width = image.shape[-2:]
    if height % SIDE_MULTIPLE or width % SIDE_MULTIPLE:
        raise ValueError(f"DRAEM needs image sides that are multiples of {SIDE_MULTIPLE}, got {height}x{width}")


def init_weights(module: nn.Module) -> None:
    """The reference initialisation: conv weights N(0, 0.02); batch-norm scale N(1, 0.02), shift 0."""
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
