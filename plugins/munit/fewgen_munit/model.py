"""MUNIT's networks as plain ``nn.Module``s: no training loop, no data, no fewgen.

Huang, Liu, Belongie and Kautz, *Multimodal Unsupervised Image-to-Image Translation*,
ECCV 2018, section 3 and appendix B, and the authors' code (github.com/NVlabs/MUNIT,
``networks.py``, ``trainer.py``, ``utils.py``, ``configs/edges2handbags_folder.yaml``).

Each domain has an auto-encoder (:class:`AdaINGen`) that splits an image into a
domain-invariant **content code** (a spatial feature map) and a domain-specific **style
code** (a short vector); translating a to b decodes a's content with a style code of b,
drawn from N(0, I). Every domain also has a multi-scale LSGAN discriminator
(:class:`MultiScaleDiscriminator`). Facts of the official code kept here:

* every convolution pads by **reflection** and has a bias; activations are ReLU in the
  generator, LeakyReLU(0.2) in the discriminator;
* **content encoder**: 7x7 conv (stride 1) + instance norm + ReLU, ``n_downsample`` 4x4
  stride-2 convs doubling the channels (each + instance norm + ReLU), ``n_res`` residual
  blocks with instance norm. The instance norm has no affine parameters and keeps no running
  statistics: every image is normalised with its own, in training and in ``eval()`` mode alike
  (the official ``Conv2dBlock`` since July 2018, when ``track_running_stats=True`` was dropped);
* **style encoder**: 7x7 conv, two 4x4 stride-2 convs doubling the channels, two more
  keeping them (4 downsamplings), all with ReLU and *no* normalisation, global average
  pooling, 1x1 conv to ``style_dim``: a (B, style_dim, 1, 1) code;
* **decoder**: ``n_res`` residual blocks whose two convs are each followed by adaptive
  instance norm (AdaIN), then ``n_downsample`` stages of nearest 2x upsampling + 5x5 conv +
  layer norm + ReLU halving the channels, then a 7x7 conv to the image channels and tanh;
* **MLP**: three linear layers style_dim -> mlp_dim -> mlp_dim -> all AdaIN parameters,
  ReLU after the first two; the AdaIN parameters are assigned in the order of
  :func:`assign_adain_params`;
* **discriminator**: per scale a PatchGAN of ``n_layer`` 4x4 stride-2 convs (``dim``
  channels doubling, LeakyReLU 0.2, no normalisation) and a 1x1 conv to one channel; the
  input of the next scale is the previous one average-pooled (3x3, stride 2, padding 1,
  padding not counted);
* **initialisation**: every conv and linear weight Kaiming-normal (fan in, a = 0), biases
  zero; then the discriminators again with N(0, 0.02) (``init: kaiming`` and the trainer's
  ``weights_init('gaussian')`` for ``dis``); layer-norm scales keep their U(0, 1) start.

Image values are in [-1, 1] (the official loaders normalise with mean 0.5, std 0.5).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from fewgen_munit import losses


@dataclass(frozen=True)
class GenConfig:
    """One domain's generator (``gen:`` in the official config)."""

    dim: int = 64  # channels after the first conv of both encoders
    style_dim: int = 8
    mlp_dim: int = 256
    n_downsample: int = 2  # content encoder downsamplings = decoder upsamplings
    n_res: int = 4  # residual blocks in the content encoder and in the decoder
    style_downsample: int = 4  # the official AdaINGen hard-codes 4
    channels: int = 3

    @property
    def content_dim(self) -> int:
        return self.dim * 2**self.n_downsample


@dataclass(frozen=True)
class DisConfig:
    """One domain's discriminator (``dis:`` in the official config, LSGAN, no norm)."""

    dim: int = 64
    n_layer: int = 4
    num_scales: int = 3
    channels: int = 3


@dataclass(frozen=True)
class MunitConfig:
    gen: GenConfig = field(default_factory=GenConfig)
    dis: DisConfig = field(default_factory=DisConfig)
    image_size: int = 256  # training crop side (official: resize the short side to 256, random 256x256 crop)


# The paper's configuration and CPU presets with the same architecture and fewer channels,
# residual blocks and discriminator scales. Parameter counts are for one domain's generator
# and discriminator; a MUNIT model holds two of each (tests/test_model.py pins them):
#   paper  generator 15,026,187  discriminator 8,271,171  whole model 46,594,716
#   small  generator  2,454,539  discriminator 1,380,802  whole model  7,670,682
#   tiny   generator    454,155  discriminator   346,338  whole model  1,600,986
PRESETS: dict[str, MunitConfig] = {
    "paper": MunitConfig(GenConfig(), DisConfig(), 256),
    "small": MunitConfig(GenConfig(dim=32, mlp_dim=128, n_res=2), DisConfig(dim=32, num_scales=2), 128),
    "tiny": MunitConfig(GenConfig(dim=16, mlp_dim=64, n_res=1), DisConfig(dim=16, num_scales=2), 64),
}


@dataclass(frozen=True)
class OptimConfig:
    """The official optimiser: Adam for each pair of networks, step decay of the learning rate."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 1e-4
    step_size: int = 100_000  # iterations between decays
    gamma: float = 0.5
    max_iter: int = 1_000_000
    batch_size: int = 1


OPTIM = OptimConfig()


def adam(params: Iterable[nn.Parameter], config: OptimConfig = OPTIM) -> torch.optim.Adam:
    return torch.optim.Adam(
        [p for p in params if p.requires_grad], lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
    )


def step_decay(optimizer: torch.optim.Optimizer, config: OptimConfig = OPTIM) -> torch.optim.lr_scheduler.StepLR:
    """Stepped once per iteration, as the official trainer does."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)


# ---------------------------------------------------------------------------------------------
# Normalisation layers


class AdaptiveInstanceNorm2d(nn.Module):
    """Instance norm whose per-sample, per-channel scale and shift come from outside.

    ``style_std`` and ``style_mean`` (each (B, C)) are set by :func:`assign_adain_params`
    before the forward pass; the layer has no learned affine of its own. Each channel of each
    sample is normalised with its own mean and biased variance (eps 1e-5 inside the square
    root, as the official ``F.batch_norm`` on a (1, B*C, H, W) view computes it) and then
    scaled by ``style_std`` and shifted by ``style_mean``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.style_mean: torch.Tensor | None = None
        self.style_std: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.style_mean is None or self.style_std is None:
            raise RuntimeError("AdaIN parameters are not assigned: call assign_adain_params first")
        expected = (x.shape[0], self.num_features)
        if tuple(self.style_mean.shape) != expected or tuple(self.style_std.shape) != expected:
            raise ValueError(f"AdaIN parameters have shape {tuple(self.style_mean.shape)}, expected {expected}")
        normalised = F.instance_norm(x, eps=self.eps)
        return normalised * self.style_std[:, :, None, None] + self.style_mean[:, :, None, None]

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class LayerNorm(nn.Module):
    """The official layer norm: per sample over (C, H, W), then a learned per-channel affine.

    Unlike ``nn.LayerNorm`` it divides by the *unbiased* standard deviation plus eps (outside
    the square root), and its scale starts uniform in [0, 1), not at 1.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.affine = affine
        if affine:
            self.gamma = nn.Parameter(torch.empty(num_features).uniform_())
            self.beta = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        shape = (-1,) + (1,) * (x.ndim - 1)
        x = (x - flat.mean(1).view(shape)) / (flat.std(1).view(shape) + self.eps)
        if self.affine:
            channel = (1, -1) + (1,) * (x.ndim - 2)
            x = x * self.gamma.view(channel) + self.beta.view(channel)
        return x


# ---------------------------------------------------------------------------------------------
# Building blocks


def conv_block(
    in_channels: int,
    out_channels: int,
    kernel: int,
    stride: int,
    padding: int,
    norm: nn.Module | None = None,
    activation: nn.Module | None = None,
) -> nn.Sequential:
    """Reflection padding, convolution (with bias), optional normalisation, optional activation."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(padding), nn.Conv2d(in_channels, out_channels, kernel, stride)]
    layers += [module for module in (norm, activation) if module is not None]
    return nn.Sequential(*layers)


def instance_norm(channels: int) -> nn.InstanceNorm2d:
    """Each image normalised by its own statistics, in training and in eval mode: no affine, no running averages."""
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResBlock(nn.Module):
    """x + conv3x3-norm-ReLU-conv3x3-norm(x); ``norm(channels)`` makes a fresh normalisation layer."""

    def __init__(self, channels: int, norm: type[nn.Module] | None = None) -> None:
        super().__init__()

        def make_norm() -> nn.Module:
            return norm(channels) if norm is not None else instance_norm(channels)

        self.body = nn.Sequential(
            conv_block(channels, channels, 3, 1, 1, make_norm(), nn.ReLU(inplace=True)),
            conv_block(channels, channels, 3, 1, 1, make_norm()),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


# ---------------------------------------------------------------------------------------------
# Generator


class ContentEncoder(nn.Module):
    """(B, C, H, W) image -> (B, dim * 2**n_downsample, H / 2**n_downsample, W / 2**n_downsample)."""

    def __init__(self, config: GenConfig = GenConfig()) -> None:
        super().__init__()
        dim = config.dim
        layers: list[nn.Module] = [conv_block(config.channels, dim, 7, 1, 3, instance_norm(dim), nn.ReLU(inplace=True))]
        for _ in range(config.n_downsample):
            layers.append(conv_block(dim, 2 * dim, 4, 2, 1, instance_norm(2 * dim), nn.ReLU(inplace=True)))
            dim *= 2
        layers += [ResBlock(dim) for _ in range(config.n_res)]
        self.model = nn.Sequential(*layers)
        self.output_dim = dim

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)


class StyleEncoder(nn.Module):
    """(B, C, H, W) image -> (B, style_dim, 1, 1) style code; no normalisation anywhere."""

    def __init__(self, config: GenConfig = GenConfig()) -> None:
        super().__init__()
        if config.style_downsample < 2:
            raise ValueError("the style encoder downsamples at least twice")
        dim = config.dim
        layers: list[nn.Module] = [conv_block(config.channels, dim, 7, 1, 3, activation=nn.ReLU(inplace=True))]
        for _ in range(2):
            layers.append(conv_block(dim, 2 * dim, 4, 2, 1, activation=nn.ReLU(inplace=True)))
            dim *= 2
        for _ in range(config.style_downsample - 2):
            layers.append(conv_block(dim, dim, 4, 2, 1, activation=nn.ReLU(inplace=True)))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, config.style_dim, 1)]
        self.model = nn.Sequential(*layers)
        self.output_dim = dim

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)


class Decoder(nn.Module):
    """Content code -> image in [-1, 1]; set the AdaIN parameters first (:func:`assign_adain_params`)."""

    def __init__(self, config: GenConfig = GenConfig()) -> None:
        super().__init__()
        dim = config.content_dim
        layers: list[nn.Module] = [ResBlock(dim, AdaptiveInstanceNorm2d) for _ in range(config.n_res)]
        for _ in range(config.n_downsample):
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                conv_block(dim, dim // 2, 5, 1, 2, LayerNorm(dim // 2), nn.ReLU(inplace=True)),
            ]
            dim //= 2
        layers.append(conv_block(dim, config.channels, 7, 1, 3, activation=nn.Tanh()))
        self.model = nn.Sequential(*layers)

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        return self.model(content)


class MLP(nn.Module):
    """Style code (B, style_dim[, 1, 1]) -> (B, out_features); ``n_blk`` linear layers, ReLU between."""

    def __init__(self, in_features: int, out_features: int, hidden: int, n_blk: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_features, hidden), nn.ReLU(inplace=True)]
        for _ in range(n_blk - 2):
            layers += [nn.Linear(hidden, hidden), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(hidden, out_features))
        self.model = nn.Sequential(*layers)

    def forward(self, style: torch.Tensor) -> torch.Tensor:
        return self.model(style.reshape(style.shape[0], -1))


def adain_layers(module: nn.Module) -> Iterator[AdaptiveInstanceNorm2d]:
    """The AdaIN layers of ``module`` in ``module.modules()`` order (registration order)."""
    return (m for m in module.modules() if isinstance(m, AdaptiveInstanceNorm2d))


def num_adain_params(module: nn.Module) -> int:
    """2 x channels per AdaIN layer: 2 * 256 * (2 per residual block * 4 blocks) = 4096 in the paper."""
    return sum(2 * layer.num_features for layer in adain_layers(module))


def assign_adain_params(params: torch.Tensor, module: nn.Module) -> None:
    """Hand a flat (B, num_adain_params) vector to the AdaIN layers of ``module``.

    Order (the official ``assign_adain_params``): the layers in ``module.modules()`` order,
    i.e. residual block 0 conv 1, block 0 conv 2, block 1 conv 1, ...; each layer takes the
    next 2 x C entries, the first C as its per-channel shift (mean), the next C as its
    per-channel scale (std). The official code silently ignores surplus entries; here the
    length must match exactly.
    """
    expected = num_adain_params(module)
    if params.ndim != 2 or params.shape[1] != expected:
        raise ValueError(f"expected AdaIN parameters of shape (B, {expected}), got {tuple(params.shape)}")
    offset = 0
    for layer in adain_layers(module):
        channels = layer.num_features
        layer.style_mean = params[:, offset : offset + channels]
        layer.style_std = params[:, offset + channels : offset + 2 * channels]
        offset += 2 * channels


class AdaINGen(nn.Module):
    """One domain's auto-encoder: ``encode`` image -> (content, style), ``decode`` (content, style) -> image."""

    def __init__(self, config: GenConfig = GenConfig()) -> None:
        super().__init__()
        self.config = config
        self.enc_style = StyleEncoder(config)
        self.enc_content = ContentEncoder(config)
        self.dec = Decoder(config)
        self.mlp = MLP(config.style_dim, num_adain_params(self.dec), config.mlp_dim, 3)

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.enc_content(image), self.enc_style(image)

    def decode(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        if style.shape[0] != content.shape[0]:
            raise ValueError(f"{style.shape[0]} style codes for {content.shape[0]} content codes")
        assign_adain_params(self.mlp(style), self.dec)
        return self.dec(content)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """The within-domain reconstruction: decode the image's own content and style."""
        content, style = self.encode(image)
        return self.decode(content, style)

    def random_style(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(batch, style_dim, 1, 1) codes from the prior N(0, I), on the network's device."""
        device = next(self.parameters()).device
        return torch.randn(batch, self.config.style_dim, 1, 1, generator=generator).to(device)


# ---------------------------------------------------------------------------------------------
# Discriminator


class MultiScaleDiscriminator(nn.Module):
    """Image -> list of patch score maps, finest scale first (LSGAN: real -> 1, fake -> 0)."""

    def __init__(self, config: DisConfig = DisConfig()) -> None:
        super().__init__()
        self.config = config
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.cnns = nn.ModuleList(self._patch_gan(config) for _ in range(config.num_scales))

    @staticmethod
    def _patch_gan(config: DisConfig) -> nn.Sequential:
        dim = config.dim
        layers: list[nn.Module] = [conv_block(config.channels, dim, 4, 2, 1, activation=nn.LeakyReLU(0.2, True))]
        for _ in range(config.n_layer - 1):
            layers.append(conv_block(dim, 2 * dim, 4, 2, 1, activation=nn.LeakyReLU(0.2, True)))
            dim *= 2
        layers.append(nn.Conv2d(dim, 1, 1))
        return nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for index, cnn in enumerate(self.cnns):
            if index:
                image = self.downsample(image)
            outputs.append(cnn(image))
        return outputs

    def dis_loss(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """LSGAN loss to train this discriminator (detach ``fake`` first)."""
        return losses.lsgan_dis_loss(self(fake), self(real))

    def gen_loss(self, fake: torch.Tensor) -> torch.Tensor:
        """LSGAN loss to train the generator that made ``fake``."""
        return losses.lsgan_gen_loss(self(fake))


# ---------------------------------------------------------------------------------------------
# Initialisation and the whole model

INIT_KINDS = ("gaussian", "kaiming", "xavier", "orthogonal", "default")


def init_weights(module: nn.Module, kind: str = "kaiming") -> None:
    """The official ``weights_init``: every Conv/Linear weight of ``module``, biases set to zero.

    gaussian: N(0, 0.02); kaiming: Kaiming normal, fan in, a = 0; xavier: Xavier normal with
    gain sqrt(2); orthogonal: gain sqrt(2); default: weights untouched (biases still zeroed).
    Normalisation layers are left alone.
    """
    if kind not in INIT_KINDS:
        raise ValueError(f"unknown initialisation {kind!r}; choose one of {', '.join(INIT_KINDS)}")
    for layer in module.modules():
        if not isinstance(layer, nn.Conv2d | nn.Linear):
            continue
        if kind == "gaussian":
            nn.init.normal_(layer.weight, 0.0, 0.02)
        elif kind == "kaiming":
            nn.init.kaiming_normal_(layer.weight, a=0, mode="fan_in")
        elif kind == "xavier":
            nn.init.xavier_normal_(layer.weight, gain=math.sqrt(2))
        elif kind == "orthogonal":
            nn.init.orthogonal_(layer.weight, gain=math.sqrt(2))
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


class Munit(nn.Module):
    """Both domains' generators and discriminators, initialised as the official trainer does."""

    def __init__(self, config: MunitConfig = PRESETS["paper"], init: str = "kaiming") -> None:
        super().__init__()
        self.config = config
        self.gen_a, self.gen_b = AdaINGen(config.gen), AdaINGen(config.gen)
        self.dis_a, self.dis_b = MultiScaleDiscriminator(config.dis), MultiScaleDiscriminator(config.dis)
        init_weights(self, init)
        init_weights(self.dis_a, "gaussian")
        init_weights(self.dis_b, "gaussian")

    @classmethod
    def from_preset(cls, name: str, init: str = "kaiming") -> Munit:
        if name not in PRESETS:
            raise ValueError(f"unknown MUNIT preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(PRESETS[name], init)

    def generator_parameters(self) -> list[nn.Parameter]:
        return [*self.gen_a.parameters(), *self.gen_b.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return [*self.dis_a.parameters(), *self.dis_b.parameters()]


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def min_side(config: MunitConfig) -> int:
    """Smallest image side every network accepts: the coarsest discriminator scale needs
    2**n_layer pixels, and decoded images keep their size only for multiples of 2**n_downsample."""
    dis = config.dis
    need = max(2 ** (dis.n_layer + dis.num_scales - 1), 2**config.gen.style_downsample)
    return max(need, 2**config.gen.n_downsample)


def check_image(image: torch.Tensor, config: MunitConfig) -> None:
    if image.ndim != 4 or image.shape[1] != config.gen.channels:
        raise ValueError(f"expected images (B, {config.gen.channels}, H, W), got shape {tuple(image.shape)}")
    multiple = 2**config.gen.n_downsample
    smallest = min_side(config)
    for side in image.shape[-2:]:
        if side % multiple or side < smallest:
            raise ValueError(
                f"MUNIT needs image sides that are multiples of {multiple} and at least {smallest}, "
                f"got {image.shape[-2]}x{image.shape[-1]}"
            )
