"""The paper's networks: shapes, TensorFlow 'SAME' padding, per-task batch norm, per-step sets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fewgen_maml.backbones import (
    ConvNet,
    NormMode,
    TaskBatchNorm,
    miniimagenet_conv4,
    omniglot_conv4,
    same_padding,
    sinusoid_mlp,
)


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("size", "stride", "expected"),
    [(28, 2, (0, 1)), (14, 2, (0, 1)), (7, 2, (1, 1)), (4, 2, (0, 1)), (84, 1, (1, 1)), (5, 1, (1, 1))],
)
def test_same_padding_matches_tensorflow(size: int, stride: int, expected: tuple[int, int]) -> None:
    # TensorFlow: output ceil(size / stride), total padding split with the odd pixel after.
    assert same_padding(size, 3, stride) == expected


def test_omniglot_network_shapes_and_size() -> None:
    model = omniglot_conv4(ways=5)
    sides = []
    x = torch.rand(3, 1, 28, 28)
    for block in model.blocks:
        x = block(x)
        sides.append(x.shape[-1])
    assert sides == [14, 7, 4, 2]
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 5)
    conv = 9 * 1 * 64 + 64 + 3 * (9 * 64 * 64 + 64)
    assert parameter_count(model) == conv + 4 * 2 * 64 + (64 * 5 + 5)
    assert omniglot_conv4(ways=5, head="flatten").head.in_features == 64 * 2 * 2


def test_miniimagenet_network_shapes_and_size() -> None:
    model = miniimagenet_conv4(ways=5)
    assert model.head.in_features == 32 * 5 * 5
    assert model(torch.rand(2, 3, 84, 84)).shape == (2, 5)
    conv = 9 * 3 * 32 + 32 + 3 * (9 * 32 * 32 + 32)
    assert parameter_count(model) == conv + 4 * 2 * 32 + (800 * 5 + 5)


def test_sinusoid_network() -> None:
    model = sinusoid_mlp()
    assert [tuple(layer.weight.shape) for layer in model.layers] == [(40, 1), (40, 40), (1, 40)]
    assert model(torch.rand(7, 1)).shape == (7, 1)
    # The official truncated normal: nothing beyond two standard deviations.
    assert max(layer.weight.abs().max().item() for layer in model.layers) <= 0.02


def test_batch_norm_uses_the_batch_statistics_in_every_mode() -> None:
    layer = TaskBatchNorm(4)
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    x = torch.randn(5, 4, 3, 3)
    expected = F.batch_norm(x, None, None, layer.weight[0], layer.bias[0], training=True, eps=layer.eps)
    torch.testing.assert_close(layer(x), expected)
    layer.eval()
    torch.testing.assert_close(layer(x), expected)
    assert list(dict(layer.named_buffers())) == []


def test_per_step_batch_norm_picks_the_set_of_its_step() -> None:
    layer = TaskBatchNorm(2, steps=3)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]))
    x = torch.randn(6, 2)
    base = layer(x, NormMode(step=0))
    torch.testing.assert_close(layer(x, NormMode(step=1)), base + 1)
    torch.testing.assert_close(layer(x, NormMode(step=2)), base + 2)
    torch.testing.assert_close(layer(x, NormMode(step=7)), base + 2)  # steps beyond the last reuse it


def test_batch_norm_reports_its_statistics_and_uses_running_ones_when_asked() -> None:
    layer = TaskBatchNorm(3, steps=2)
    x = torch.randn(8, 3) * 2 + 1
    sink: list[tuple[torch.Tensor, torch.Tensor]] = []
    layer(x, NormMode(step=1, sink=sink))
    ((mean, var),) = sink
    torch.testing.assert_close(mean, x.mean(0))
    torch.testing.assert_close(var, x.var(0))  # unbiased, as running averages keep it
    layer.update_running(1, mean, var)
    torch.testing.assert_close(layer.running_mean[1], 0.1 * mean)
    torch.testing.assert_close(layer.running_mean[0], torch.zeros(3))
    running = layer(x, NormMode(step=1, use_running=True))
    expected = (x - layer.running_mean[1]) / torch.sqrt(layer.running_var[1] + layer.eps)
    torch.testing.assert_close(running, expected)


def test_running_statistics_need_per_step_batch_norm() -> None:
    with pytest.raises(ValueError, match="per-step"):
        TaskBatchNorm(3)(torch.randn(4, 3), NormMode(use_running=True))


def test_too_many_blocks_for_the_image_are_refused() -> None:
    with pytest.raises(ValueError, match="reduce"):
        ConvNet(1, 5, image_size=8, blocks=4, downsample="maxpool")
