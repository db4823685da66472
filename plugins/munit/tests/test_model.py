"""MUNIT's networks: shapes, AdaIN and layer norm, the AdaIN parameter layout, initialisation."""

from __future__ import annotations

import math

import pytest
import torch
from fewgen_munit.model import (
    OPTIM,
    PRESETS,
    AdaINGen,
    AdaptiveInstanceNorm2d,
    ContentEncoder,
    Decoder,
    GenConfig,
    LayerNorm,
    MultiScaleDiscriminator,
    Munit,
    StyleEncoder,
    adain_layers,
    adam,
    assign_adain_params,
    check_image,
    init_weights,
    min_side,
    num_adain_params,
    parameter_count,
    step_decay,
)
from torch import nn


def images(batch: int, side: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def tiny() -> Munit:
    torch.manual_seed(0)
    return Munit.from_preset("tiny")


@pytest.mark.parametrize("side", [64, 128])
def test_generator_shapes(tiny: Munit, side: int) -> None:
    config = tiny.config.gen
    x = images(2, side)
    with torch.no_grad():
        content, style = tiny.gen_a.encode(x)
        assert content.shape == (2, config.dim * 4, side // 4, side // 4)
        assert style.shape == (2, 8, 1, 1)
        out = tiny.gen_a.decode(content, style)
    assert out.shape == x.shape
    assert out.abs().max() <= 1  # tanh


@pytest.mark.parametrize(("side", "sizes"), [(64, [4, 2]), (128, [8, 4])])
def test_discriminator_sizes_per_scale(tiny: Munit, side: int, sizes: list[int]) -> None:
    with torch.no_grad():
        outputs = tiny.dis_a(images(2, side))
    assert [tuple(o.shape) for o in outputs] == [(2, 1, s, s) for s in sizes]


def test_paper_networks_at_64_pixels() -> None:
    torch.manual_seed(0)
    config = PRESETS["paper"]
    gen, dis = AdaINGen(config.gen), MultiScaleDiscriminator(config.dis)
    x = images(1, 64)
    with torch.no_grad():
        content, style = gen.encode(x)
        assert content.shape == (1, 256, 16, 16)
        assert style.shape == (1, 8, 1, 1)
        assert gen.decode(content, style).shape == x.shape
        # Three scales of 4 stride-2 convs: 64/16, 32/16, 16/16.
        assert [o.shape[-1] for o in dis(x)] == [4, 2, 1]


def test_paper_adain_parameter_count() -> None:
    gen = AdaINGen(PRESETS["paper"].gen)
    # 2 (mean, std) x 256 channels x 2 AdaIN layers per residual block x 4 blocks.
    assert num_adain_params(gen.dec) == 2 * 256 * 2 * 4 == 4096
    assert gen.mlp.model[-1].out_features == 4096
    assert [layer.in_features for layer in gen.mlp.model if isinstance(layer, nn.Linear)] == [8, 256, 256]
    assert num_adain_params(AdaINGen(PRESETS["small"].gen).dec) == 2 * 128 * 2 * 2


@pytest.mark.parametrize(
    ("name", "generator", "discriminator", "whole"),
    [
        ("paper", 15_026_187, 8_271_171, 46_594_716),
        ("small", 2_454_539, 1_380_802, 7_670_682),
        ("tiny", 454_155, 346_338, 1_600_986),
    ],
)
def test_parameter_counts(name: str, generator: int, discriminator: int, whole: int) -> None:
    config = PRESETS[name]
    assert parameter_count(AdaINGen(config.gen)) == generator
    assert parameter_count(MultiScaleDiscriminator(config.dis)) == discriminator
    assert 2 * (generator + discriminator) == whole


def test_paper_generator_parameters_by_hand() -> None:
    # Content encoder: 7x7 3->64, 4x4 64->128, 4x4 128->256, 8 res convs 3x3 256->256 (all with bias).
    conv = lambda k, i, o: k * k * i * o + o  # noqa: E731
    content = conv(7, 3, 64) + conv(4, 64, 128) + conv(4, 128, 256) + 8 * conv(3, 256, 256)
    style = conv(7, 3, 64) + conv(4, 64, 128) + conv(4, 128, 256) + 2 * conv(4, 256, 256) + conv(1, 256, 8)
    config = GenConfig()
    assert parameter_count(ContentEncoder(config)) == content
    assert parameter_count(StyleEncoder(config)) == style
    # Layer norms add gamma and beta per channel; AdaIN adds nothing.
    decoder = 8 * conv(3, 256, 256) + conv(5, 256, 128) + 2 * 128 + conv(5, 128, 64) + 2 * 64 + conv(7, 64, 3)
    assert parameter_count(Decoder(config)) == decoder


def test_adain_output_has_the_requested_statistics() -> None:
    layer = AdaptiveInstanceNorm2d(3)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 5 + 3
    mean = torch.tensor([[0.0, 1.0, -2.0], [0.5, 3.0, 0.0]])
    std = torch.tensor([[1.0, 0.5, 2.0], [3.0, 0.1, 1.0]])
    layer.style_mean, layer.style_std = mean, std
    out = layer(x)
    assert torch.allclose(out.mean((2, 3)), mean, atol=1e-5)
    assert torch.allclose(out.var((2, 3), unbiased=False).sqrt(), std, atol=1e-4)


def test_adain_needs_its_parameters() -> None:
    layer = AdaptiveInstanceNorm2d(3)
    with pytest.raises(RuntimeError, match="not assigned"):
        layer(torch.zeros(1, 3, 4, 4))
    layer.style_mean = layer.style_std = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="shape"):
        layer(torch.zeros(1, 3, 4, 4))


def test_assign_adain_params_order() -> None:
    decoder = Decoder(GenConfig(dim=4, n_downsample=1, n_res=2))  # 8 channels, 4 AdaIN layers
    layers = list(adain_layers(decoder))
    assert len(layers) == 4
    assert layers[0] is decoder.model[0].body[0][2] and layers[1] is decoder.model[0].body[1][2]
    params = torch.arange(2 * 64, dtype=torch.float32).reshape(2, 64)
    assign_adain_params(params, decoder)
    for index, layer in enumerate(layers):
        start = 16 * index
        assert torch.equal(layer.style_mean, params[:, start : start + 8])
        assert torch.equal(layer.style_std, params[:, start + 8 : start + 16])
    with pytest.raises(ValueError, match=r"\(B, 64\)"):
        assign_adain_params(torch.zeros(2, 65), decoder)


def test_decoded_image_depends_on_the_style(tiny: Munit) -> None:
    x = images(1, 64)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        content, _ = tiny.gen_b.encode(x)
        first, second = tiny.gen_b.random_style(1, generator), tiny.gen_b.random_style(1, generator)
        out_first = tiny.gen_b.decode(content, first)
        again = tiny.gen_b.decode(content, first)
        out_second = tiny.gen_b.decode(content, second)
    assert torch.equal(out_first, again)
    assert (out_first - out_second).abs().mean() > 1e-3


def test_layer_norm_normalises_each_sample_over_all_channels() -> None:
    torch.manual_seed(0)
    norm = LayerNorm(4)
    assert ((norm.gamma >= 0) & (norm.gamma < 1)).all() and torch.equal(norm.beta, torch.zeros(4))
    x = torch.randn(3, 4, 5, 5) * torch.tensor([1.0, 10.0, 100.0]).view(3, 1, 1, 1) + 7
    with torch.no_grad():
        norm.gamma.fill_(1.0)
        out = norm(x)
    flat = out.flatten(1)
    assert torch.allclose(flat.mean(1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(flat.std(1), torch.ones(3), atol=1e-4)  # unbiased std, as the official code
    # Not per channel: a channel's own mean is not forced to zero.
    assert out.mean((2, 3)).abs().max() > 1e-2
    with torch.no_grad():
        norm.gamma.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        norm.beta.copy_(torch.tensor([0.0, 1.0, 0.0, -1.0]))
    scaled = norm(x).detach()
    expected = out * torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1) + torch.tensor([0.0, 1.0, 0.0, -1.0]).view(
        1, 4, 1, 1
    )
    assert torch.allclose(scaled, expected, atol=1e-5)


def test_style_encoder_has_no_normalisation_and_the_content_encoder_instance_norm() -> None:
    config = GenConfig(dim=8, n_res=1)
    style_layers = list(StyleEncoder(config).modules())
    assert not any(isinstance(m, nn.InstanceNorm2d | LayerNorm | nn.BatchNorm2d) for m in style_layers)
    norms = [m for m in ContentEncoder(config).modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 1 + 2 + 2 and all(not n.affine and not n.track_running_stats for n in norms)
    assert not any(name.endswith(("running_mean", "running_var")) for name, _ in ContentEncoder(config).named_buffers())


def test_content_encoder_normalises_each_image_by_its_own_statistics_in_eval_mode() -> None:
    # The official Conv2dBlock's plain InstanceNorm2d: a translation never depends on the training images.
    torch.manual_seed(0)
    x = images(1, 32)
    encoder = ContentEncoder(GenConfig(dim=4, n_res=1))
    with torch.no_grad():
        before = encoder.eval()(x)
        encoder.train()
        for _ in range(3):
            encoder(images(2, 32, seed=1) * 3 + 1)  # training batches with other statistics
        after = encoder.eval()(x)
        assert torch.equal(before, after)
        assert torch.allclose(after, encoder.train()(x), atol=1e-6)
        # Per image: a code does not depend on the other images of its batch either.
        assert torch.allclose(encoder.eval()(torch.cat([x, images(1, 32, seed=2) * 2]))[:1], after, atol=1e-5)


def test_discriminator_pooling_ignores_padding() -> None:
    dis = MultiScaleDiscriminator(PRESETS["tiny"].dis)
    pooled = dis.downsample(torch.full((1, 3, 8, 8), 0.6))
    assert pooled.shape == (1, 3, 4, 4)
    assert torch.allclose(pooled, torch.full_like(pooled, 0.6))  # count_include_pad=True would darken the border


def test_init_weights() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(64, 128, 3), nn.Linear(256, 512), LayerNorm(4))
    gamma = model[2].gamma.detach().clone()
    init_weights(model, "gaussian")
    assert model[0].weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model[1].weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert not model[0].bias.any() and not model[1].bias.any()
    init_weights(model, "kaiming")
    assert model[0].weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)
    assert model[1].weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.05)
    assert torch.equal(model[2].gamma, gamma)  # normalisation layers are left alone
    with pytest.raises(ValueError, match="unknown initialisation"):
        init_weights(model, "uniform")


def test_munit_initialises_as_the_official_trainer() -> None:
    torch.manual_seed(0)
    model = Munit.from_preset("tiny")
    dis_conv = model.dis_a.cnns[0][-2][1]  # the deepest strided conv, 64 -> 128 channels
    assert dis_conv.weight.std().item() == pytest.approx(0.02, rel=0.1)
    gen_conv = model.gen_a.enc_content.model[-1].body[0][1]
    assert gen_conv.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.1)
    assert not gen_conv.bias.any()
    with pytest.raises(ValueError, match="unknown MUNIT preset"):
        Munit.from_preset("huge")


def test_determinism_under_a_seed() -> None:
    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        model = Munit.from_preset("tiny")
        with torch.no_grad():
            content, _ = model.gen_a.encode(images(1, 32))
            return model.gen_b.decode(content, model.gen_b.random_style(1, torch.Generator().manual_seed(seed)))

    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


def test_optimiser_settings() -> None:
    model = nn.Linear(2, 2)
    optimizer = adam(model.parameters())
    group = optimizer.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"]) == (1e-4, (0.5, 0.999), 1e-4)
    scheduler = step_decay(optimizer)
    assert (scheduler.step_size, scheduler.gamma) == (100_000, 0.5)
    assert (OPTIM.max_iter, OPTIM.batch_size) == (1_000_000, 1)


def test_image_checks() -> None:
    config = PRESETS["paper"]
    assert min_side(config) == 64 and min_side(PRESETS["tiny"]) == 32
    check_image(torch.zeros(1, 3, 64, 96), config)
    with pytest.raises(ValueError, match="multiples of 4"):
        check_image(torch.zeros(1, 3, 64, 66), config)
    with pytest.raises(ValueError, match="at least 64"):
        check_image(torch.zeros(1, 3, 32, 32), config)
    with pytest.raises(ValueError, match="expected images"):
        check_image(torch.zeros(3, 64, 64), config)


def convs(module: nn.Module) -> list[tuple[int, int, int, int]]:
    """(kernel, stride, in, out) of every conv in registration order."""
    return [
        (m.kernel_size[0], m.stride[0], m.in_channels, m.out_channels)
        for m in module.modules()
        if isinstance(m, nn.Conv2d)
    ]


def test_layer_layout_of_the_paper_networks() -> None:
    config = PRESETS["paper"]
    gen = AdaINGen(config.gen)
    assert convs(gen.enc_content) == [(7, 1, 3, 64), (4, 2, 64, 128), (4, 2, 128, 256)] + [(3, 1, 256, 256)] * 8
    # Four downsamplings: two doubling the channels, two keeping them; then the 1x1 conv to the code.
    style_convs = [(7, 1, 3, 64), (4, 2, 64, 128), (4, 2, 128, 256), (4, 2, 256, 256), (4, 2, 256, 256)]
    assert convs(gen.enc_style) == [*style_convs, (1, 1, 256, 8)]
    assert convs(gen.dec) == [(3, 1, 256, 256)] * 8 + [(5, 1, 256, 128), (5, 1, 128, 64), (7, 1, 64, 3)]
    upsamples = [m for m in gen.dec.modules() if isinstance(m, nn.Upsample)]
    assert [(m.scale_factor, m.mode) for m in upsamples] == [(2.0, "nearest")] * 2
    assert isinstance(gen.dec.model[-1][-1], nn.Tanh)
    assert sum(isinstance(m, LayerNorm) for m in gen.dec.modules()) == 2
    dis = MultiScaleDiscriminator(config.dis)
    per_scale = [(4, 2, 3, 64), (4, 2, 64, 128), (4, 2, 128, 256), (4, 2, 256, 512), (1, 1, 512, 1)]
    assert convs(dis) == per_scale * 3
    leaky = [m for m in dis.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(leaky) == 12 and all(m.negative_slope == 0.2 for m in leaky)
    # Reflection padding everywhere; no conv pads by itself.
    assert all(m.padding == (0, 0) for m in [*gen.modules(), *dis.modules()] if isinstance(m, nn.Conv2d))
    pads = [m.padding[0] for m in gen.enc_content.modules() if isinstance(m, nn.ReflectionPad2d)]
    assert pads == [3, 1, 1] + [1] * 8
