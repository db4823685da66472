"""PS-GAN's networks as plain ``nn.Module``s: no training loop, no data, no fewgen.

Ouyang, Cheng, Jiang, Li and Zhou, *Pedestrian-Synthesis-GAN: Generating Pedestrian Data
in Real Scene and Beyond*, 2018, and the pix2pix networks it builds on (Isola et al., 2017,
``networks.py`` of the pix2pix code). Three networks:

* **generator** (:class:`UnetGenerator`): pix2pix's ``unet_256``. ``depth`` 4x4 stride-2
  convolutions down (LeakyReLU 0.2 before each but the first, batch norm after each but the
  first and the innermost), the mirror-image transposed convolutions up (ReLU before each,
  batch norm after each but the outermost, tanh at the end), skip connections concatenating
  each down level with its up level. Channels grow ngf, 2ngf, 4ngf, 8ngf and stay at 8ngf;
  the ``depth - 5`` up blocks just outside the innermost one have dropout 0.5. Convolutions
  followed by batch norm have no bias. With ``depth`` 8 a 256 px input reaches 1x1 in the
  middle; the CPU presets use 7 levels at 128 px and 6 at 64 px, which also reach 1x1.
* **image discriminator** (:class:`PatchDiscriminator`): pix2pix's ``basic`` PatchGAN with
  ``n_layers`` 3 on the concatenation of the generator's input and an output (6 channels):
  three 4x4 stride-2 convs (ndf, 2ndf, 4ndf), one stride-1 conv (8ndf), a stride-1 conv to
  one channel; batch norm on all but the first and the last, LeakyReLU 0.2. A 256 px pair
  gives a 30x30 map of patch scores (70x70 receptive field each).
* **person discriminator** (:class:`PersonDiscriminator`): the official ``SPP_NET`` on the
  crop of the box alone. One 4x4 stride-2 conv (ndf, LeakyReLU 0.2), three 4x4 stride-1
  convs with padding 1 (2ndf, 4ndf, 8ndf, each with batch norm and LeakyReLU 0.2), a 4x4
  stride-1 conv without padding to one channel (no bias anywhere): a map of patch scores.
  Spatial pyramid pooling (He et al., 2014) with levels 4, 2 and 1 takes the maximum score
  of each cell of a 4x4, a 2x2 and a 1x1 grid: 21 patch scores for a crop of any size,
  each judged against the real / fake label. SPP is what lets it judge boxes of every size
  and shape without resizing them.

Images are in [-1, 1]. Weights start as pix2pix's ``init_type='normal'``: N(0, 0.02) for
convolutions, N(1, 0.02) for batch-norm scales, zero biases.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

SPP_LEVELS = (4, 2, 1)
# The person discriminator's score map is the crop's side // 2 - 6: its first conv halves the
# side, the three stride-1 4x4 convs (padding 1) take a pixel each, the last one (no padding) three.
PERSON_SIDE_LOSS = 6


@dataclass(frozen=True)
class PsganConfig:
    """The networks' sizes and the training window side of one preset."""

    size: int  # side of the square training window in pixels
    depth: int  # U-Net levels: size / 2**depth is the bottleneck's side
    ngf: int = 64
    ndf: int = 64
    n_layers: int = 3  # stride-2 convs of the image discriminator
    dropout: bool = True
    batch_size: int = 1

    def __post_init__(self) -> None:
        if self.depth < 5:
            raise ValueError(f"the U-Net needs at least 5 levels, got {self.depth}")
        if self.size % 2**self.depth:
            raise ValueError(f"window size {self.size} is not divisible by 2**depth = {2**self.depth}")


# paper: the official settings (256 px windows, unet_256, 64 filters, batch of one).
# small / tiny: the same architecture made small enough to learn on a CPU in minutes.
PRESETS: dict[str, PsganConfig] = {
    "paper": PsganConfig(size=256, depth=8, ngf=64, ndf=64, batch_size=1),
    "small": PsganConfig(size=128, depth=7, ngf=32, ndf=32, batch_size=4),
    "tiny": PsganConfig(size=64, depth=6, ngf=16, ndf=16, batch_size=8),
}


def preset(name: str) -> PsganConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown PS-GAN preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


class UnetBlock(nn.Module):
    """One level of the U-Net: down conv, the inner levels, up conv, and the skip connection around them."""

    def __init__(
        self,
        outer: int,
        inner: int,
        submodule: UnetBlock | None = None,
        in_channels: int | None = None,
        outermost: bool = False,
        dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        innermost = submodule is None
        in_channels = outer if in_channels is None else in_channels
        down: list[nn.Module] = []
        if not outermost:
            # Not in place: x is also the skip connection (the next up block applies ReLU to it either way).
            down.append(nn.LeakyReLU(0.2))
        down.append(nn.Conv2d(in_channels, inner, 4, stride=2, padding=1, bias=False))
        if not outermost and not innermost:
            down.append(nn.BatchNorm2d(inner))
        # The innermost level has no skip inside it, so its up conv sees `inner` channels, not 2·inner.
        up_in = inner if innermost else inner * 2
        up: list[nn.Module] = [nn.ReLU(inplace=True)]
        if outermost:
            up += [nn.ConvTranspose2d(up_in, outer, 4, stride=2, padding=1), nn.Tanh()]
        else:
            up += [nn.ConvTranspose2d(up_in, outer, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(outer)]
            if dropout:
                up.append(nn.Dropout(0.5))
        self.down = nn.Sequential(*down)
        self.submodule = submodule
        self.up = nn.Sequential(*up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.down(x)
        if self.submodule is not None:
            y = self.submodule(y)
        y = self.up(y)
        return y if self.outermost else torch.cat([x, y], dim=1)


class UnetGenerator(nn.Module):
    """pix2pix's U-Net generator; ``depth`` 8 with ngf 64 is ``unet_256``."""

    def __init__(
        self, in_channels: int = 3, out_channels: int = 3, depth: int = 8, ngf: int = 64, dropout: bool = True
    ):
        super().__init__()
        block = UnetBlock(ngf * 8, ngf * 8)  # innermost
        for _ in range(depth - 5):
            block = UnetBlock(ngf * 8, ngf * 8, block, dropout=dropout)
        block = UnetBlock(ngf * 4, ngf * 8, block)
        block = UnetBlock(ngf * 2, ngf * 4, block)
        block = UnetBlock(ngf, ngf * 2, block)
        self.model = UnetBlock(out_channels, ngf, block, in_channels=in_channels, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def conv_stack(in_channels: int, ndf: int, n_layers: int) -> list[nn.Module]:
    """pix2pix's PatchGAN body: ``n_layers`` stride-2 convs then one stride-1 conv, channels doubling up to 8·ndf."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
    channels = ndf
    for n in range(1, n_layers + 1):
        out = ndf * min(2**n, 8)
        stride = 2 if n < n_layers else 1
        layers += [
            nn.Conv2d(channels, out, 4, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        channels = out
    return layers


def stack_channels(ndf: int, n_layers: int) -> int:
    return ndf * min(2**n_layers, 8)


class PatchDiscriminator(nn.Module):
    """pix2pix's ``basic`` PatchGAN, conditioned: it scores concat(input, image) patch by patch."""

    def __init__(self, in_channels: int = 6, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers = conv_stack(in_channels, ndf, n_layers)
        layers.append(nn.Conv2d(stack_channels(ndf, n_layers), 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([condition, image], dim=1))


def spatial_pyramid_pool(features: torch.Tensor, levels: tuple[int, ...] = SPP_LEVELS) -> torch.Tensor:
    """(B, C, H, W) of any H, W to (B, C·sum(l²)): max over an l x l grid of cells for each level l."""
    pooled = [F.adaptive_max_pool2d(features, level).flatten(1) for level in levels]
    return torch.cat(pooled, dim=1)


class PersonDiscriminator(nn.Module):
    """The official ``SPP_NET``: a map of patch scores of a box crop of any size, pooled to 21 scores."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, levels: tuple[int, ...] = SPP_LEVELS) -> None:
        super().__init__()
        self.levels = levels
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1, bias=False)]
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        channels = ndf
        for factor in (2, 4, 8):
            layers += [
                nn.Conv2d(channels, ndf * factor, 4, stride=1, padding=1, bias=False),
                nn.BatchNorm2d(ndf * factor),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            channels = ndf * factor
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=0, bias=False))
        self.patches = nn.Sequential(*layers)
        # Smaller crops are enlarged until the score map has a cell for each cell of the finest level.
        self.min_side = 2 * (max(levels) + PERSON_SIDE_LOSS)

    def forward(self, crops: list[torch.Tensor]) -> torch.Tensor:
        """(N, 21) pooled patch scores; ``crops`` are (3, h, w) tensors of different sizes, each run on its own."""
        return torch.cat([self.score(crop[None]) for crop in crops])

    def score(self, crop: torch.Tensor) -> torch.Tensor:
        """(1, 3, h, w) to (1, 21): the crop is only enlarged (never shrunk) when too small for the conv stack."""
        height, width = crop.shape[-2:]
        if min(height, width) < self.min_side:
            scale = self.min_side / min(height, width)
            size = (max(self.min_side, round(height * scale)), max(self.min_side, round(width * scale)))
            crop = F.interpolate(crop, size=size, mode="bilinear", align_corners=False)
        return spatial_pyramid_pool(self.patches(crop), self.levels)


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor) -> list[torch.Tensor]:
    """Each image's own box: (B, C, H, W) and (B, 4) integer x1, y1, x2, y2 (end exclusive) to B crops."""
    return [image[:, y1:y2, x1:x2] for image, (x1, y1, x2, y2) in zip(images, boxes.tolist(), strict=True)]


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """pix2pix's ``normal`` initialisation; apply with ``model.apply(init_weights)``."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, gain)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, gain)
        nn.init.zeros_(module.bias)


class Psgan(nn.Module):
    """The three networks of one preset."""

    def __init__(self, config: PsganConfig) -> None:
        super().__init__()
        self.config = config
        self.generator = UnetGenerator(3, 3, config.depth, config.ngf, config.dropout)
        self.image_discriminator = PatchDiscriminator(6, config.ndf, config.n_layers)
        self.person_discriminator = PersonDiscriminator(3, config.ndf)
        self.apply(init_weights)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
