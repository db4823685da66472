"""The networks of the MAML paper as plain ``nn.Module``s: no training loop, no data, no fewgen.

Finn, Abbeel and Levine, ICML 2017, section 5 and appendix A, and the authors' TensorFlow code
(github.com/cbfinn/maml, ``maml.py`` and ``utils.py``):

* **Omniglot**: four blocks of 3x3 convolution with 64 filters and stride 2, batch norm, ReLU;
  no pooling. 28x28 grey input gives 14, 7, 4, 2 pixels a side. The official code averages the
  last 2x2 map over space before the linear layer to the N ways (``head="mean"``);
  ``head="flatten"`` feeds all 64x2x2 values to it instead.
* **MiniImagenet**: four blocks of 3x3 convolution with 32 filters and stride 1, batch norm,
  ReLU, 2x2 max-pooling; 84x84 RGB input gives 42, 21, 10, 5 pixels a side, flattened
  (32x5x5 = 800 values) into the linear layer.
* **Sinusoid**: a 1-40-40-1 perceptron with ReLU.

Convolutions pad like TensorFlow's ``'SAME'``: the output side is ceil(input / stride), and when
the padding is odd the extra row and column go at the bottom and right (a 28-pixel side with
stride 2 is padded 0 before and 1 after), which PyTorch's symmetric ``padding=1`` does not do.
Max-pooling is TensorFlow's ``'VALID'`` (a trailing odd row is dropped). Initialisation follows
the official code: Glorot-uniform convolutions and MiniImagenet head, N(0, 1) Omniglot head,
zero biases, and a truncated normal with standard deviation 0.01 for the sinusoid perceptron.

**Batch norm always normalises with the statistics of the batch it is given** (the support set
during adaptation, the query set when evaluating): the official code builds
``tf.contrib.layers.batch_norm`` without ``is_training=False``, so it never uses running
averages, at meta-training or at meta-test time, and its author confirms it (cbfinn/maml issue
#37). Each task's statistics are its own, and evaluation is transductive: a query image's output
depends on the other query images of its task. :class:`TaskBatchNorm` keeps no running averages
at all in this default.

With ``bn_steps > 1`` (MAML++, Antoniou, Edwards and Storkey, ICLR 2019: per-step batch
normalisation weights and running statistics) every batch-norm layer holds one scale, one shift
and one pair of running averages per inner step: the forward pass with the parameters after
``i`` inner updates uses set ``i`` (``bn_steps`` is the number of training inner steps plus one;
later steps reuse the last set). The running averages are only used when asked for
(:class:`NormMode` ``use_running``), which makes evaluation non-transductive.

Every module here takes ``forward(x, norm=None)`` with a :class:`NormMode`, so that MAML can tell
batch norm which inner step it is at and collect its batch statistics through
``torch.func.functional_call`` and ``vmap`` without touching module state.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

# The batch mean and (unbiased) variance of each batch-norm layer, in the order the layers ran.
StatisticsSink = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class NormMode:
    """How batch norm behaves in one forward pass.

    ``step`` is the number of inner updates the parameters have had (it picks the per-step
    weights and statistics when a layer has them); ``use_running`` normalises with the running
    averages instead of the batch's own statistics (only layers with ``bn_steps > 1`` have them);
    ``sink``, when given, receives every layer's batch statistics, detached.
    """

    step: int = 0
    use_running: bool = False
    sink: StatisticsSink | None = field(default=None)


DEFAULT_NORM = NormMode()


class TaskBatchNorm(nn.Module):
    """Batch norm over the batch it is given, with ``steps`` sets of scale and shift.

    ``eps`` is 1e-3, TensorFlow's default in the official code. The official layer has no scale
    (``scale=False``), only a shift; this one learns both, as PyTorch and MAML++ do.
    """

    def __init__(self, channels: int, steps: int = 1, eps: float = 1e-3, momentum: float = 0.1) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        self.steps = steps
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(steps, channels))
        self.bias = nn.Parameter(torch.zeros(steps, channels))
        if steps > 1:
            self.register_buffer("running_mean", torch.zeros(steps, channels))
            self.register_buffer("running_var", torch.ones(steps, channels))

    @property
    def per_step(self) -> bool:
        return self.steps > 1

    def forward(self, x: torch.Tensor, norm: NormMode = DEFAULT_NORM) -> torch.Tensor:
        index = min(norm.step, self.steps - 1)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if norm.use_running:
            if not self.per_step:
                raise ValueError("running statistics exist only with per-step batch norm (bn_steps > 1)")
            mean, var = self.running_mean[index], self.running_var[index]
        else:
            dims = (0, *range(2, x.dim()))
            mean = x.mean(dims)
            var = x.var(dims, correction=0)
            if norm.sink is not None:
                count = x.numel() // x.shape[1]
                unbiased = var * (count / (count - 1)) if count > 1 else var
                norm.sink.append((mean.detach(), unbiased.detach()))
        scale = torch.rsqrt(var + self.eps) * self.weight[index]
        return (x - mean.reshape(shape)) * scale.reshape(shape) + self.bias[index].reshape(shape)

    @torch.no_grad()
    def update_running(self, step: int, mean: torch.Tensor, var: torch.Tensor) -> None:
        """Move the running averages of inner step ``step`` towards a batch's statistics."""
        index = min(step, self.steps - 1)
        self.running_mean[index].lerp_(mean, self.momentum)
        self.running_var[index].lerp_(var, self.momentum)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow ``'SAME'`` padding of one side: (before, after), the odd pixel after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class ConvBlock(nn.Module):
    """3x3 convolution ('SAME' padding), batch norm, ReLU, then optionally 2x2 max-pooling."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, pool: bool, bn_steps: int) -> None:
        super().__init__()
        self.stride = stride
        self.pool = pool
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride)
        self.norm = TaskBatchNorm(out_channels, steps=bn_steps)

    def forward(self, x: torch.Tensor, norm: NormMode = DEFAULT_NORM) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], 3, self.stride)
        left, right = same_padding(x.shape[-1], 3, self.stride)
        x = self.conv(F.pad(x, (left, right, top, bottom)))
        x = F.relu(self.norm(x, norm))
        return F.max_pool2d(x, 2) if self.pool else x


class ConvNet(nn.Module):
    """``blocks`` conv blocks and a linear layer to ``ways`` logits.

    ``downsample="stride"`` halves the resolution with stride-2 convolutions (Omniglot),
    ``"maxpool"`` with 2x2 max-pooling after stride-1 convolutions (MiniImagenet).
    """

    def __init__(
        self,
        in_channels: int,
        ways: int,
        image_size: int,
        channels: int = 64,
        blocks: int = 4,
        downsample: Literal["stride", "maxpool"] = "stride",
        head: Literal["mean", "flatten"] = "flatten",
        bn_steps: int = 1,
    ) -> None:
        super().__init__()
        stride, pool = (2, False) if downsample == "stride" else (1, True)
        self.head_kind = head
        self.blocks = nn.ModuleList(
            ConvBlock(in_channels if i == 0 else channels, channels, stride, pool, bn_steps) for i in range(blocks)
        )
        side = image_size
        for _ in range(blocks):
            side = math.ceil(side / 2) if stride == 2 else side // 2
        if side < 1:
            raise ValueError(f"{blocks} blocks reduce a {image_size}-pixel image to nothing")
        self.head = nn.Linear(channels if head == "mean" else channels * side * side, ways)
        for block in self.blocks:
            nn.init.xavier_uniform_(block.conv.weight)
            nn.init.zeros_(block.conv.bias)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def features(self, x: torch.Tensor, norm: NormMode = DEFAULT_NORM) -> torch.Tensor:
        """What the head sees: the last feature map averaged over space or flattened (an embedding)."""
        for block in self.blocks:
            x = block(x, norm)
        return x.mean(dim=(-2, -1)) if self.head_kind == "mean" else x.flatten(1)

    def forward(self, x: torch.Tensor, norm: NormMode = DEFAULT_NORM) -> torch.Tensor:
        return self.head(self.features(x, norm))


class MLP(nn.Module):
    """Fully connected layers with ReLU between them; ``sizes`` from input to output."""

    def __init__(self, sizes: Sequence[int] = (1, 40, 40, 1)) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        for layer in self.layers:
            # The official code's tf.truncated_normal(stddev=0.01): redrawn beyond two standard deviations.
            nn.init.trunc_normal_(layer.weight, std=0.01, a=-0.02, b=0.02)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, norm: NormMode = DEFAULT_NORM) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


def omniglot_conv4(ways: int, bn_steps: int = 1, head: Literal["mean", "flatten"] = "mean") -> ConvNet:
    """The paper's Omniglot network: 28x28 grey images in, ``ways`` logits out."""
    model = ConvNet(1, ways, image_size=28, channels=64, downsample="stride", head=head, bn_steps=bn_steps)
    nn.init.normal_(model.head.weight, std=1.0)  # the official code's tf.random_normal for the Omniglot head
    return model


def miniimagenet_conv4(ways: int, bn_steps: int = 1) -> ConvNet:
    """The paper's MiniImagenet network: 84x84 RGB images in, ``ways`` logits out."""
    return ConvNet(3, ways, image_size=84, channels=32, downsample="maxpool", head="flatten", bn_steps=bn_steps)


def sinusoid_mlp() -> MLP:
    """The paper's sinusoid regressor: x in, y out, two hidden layers of 40 units."""
    return MLP((1, 40, 40, 1))
