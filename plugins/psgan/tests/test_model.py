"""The networks: shapes at every preset, pinned sizes, spatial pyramid pooling, per-sample box crops."""

from __future__ import annotations

import pytest
import torch
from fewgen_psgan.model import (
    PRESETS,
    PatchDiscriminator,
    PersonDiscriminator,
    Psgan,
    PsganConfig,
    UnetGenerator,
    count_parameters,
    crop_boxes,
    preset,
    spatial_pyramid_pool,
)

# Measured once and pinned: unet_256 and the n_layers=3 PatchGAN have pix2pix's well-known sizes (54.4 M, 2.77 M);
# the person discriminator (SPP_NET) is 16·ndf²·(2 + 8 + 32) + 16·ndf·(3 + 8) + 2·ndf·(2 + 4 + 8) by hand.
PARAMETERS = {
    "paper": (54_413_955, 2_768_705, 2_765_568),
    "small": (10_461_507, 696_225, 694_656),
    "tiny": (1_830_563, 176_081, 175_296),
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_sizes_are_pinned(name: str) -> None:
    model = Psgan(PRESETS[name])
    sizes = tuple(count_parameters(m) for m in (model.generator, model.image_discriminator, model.person_discriminator))
    assert sizes == PARAMETERS[name]


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_shapes_at_the_cpu_presets(name: str) -> None:
    config = PRESETS[name]
    model = Psgan(config)
    x = torch.rand(2, 3, config.size, config.size) * 2 - 1
    fake = model.generator(x)
    assert fake.shape == x.shape and fake.abs().max() <= 1  # tanh
    patches = model.image_discriminator(x, fake)
    # Three stride-2 convs then two stride-1 4x4 convs (padding 1): side / 8 - 2.
    assert patches.shape == (2, 1, config.size // 8 - 2, config.size // 8 - 2)
    scores = model.person_discriminator(crop_boxes(fake, torch.tensor([[3, 4, 20, 40], [0, 0, 9, 9]])))
    assert scores.shape == (2, 21)  # 4x4 + 2x2 + 1x1 pooled patch scores per box


def test_unet_256_reaches_one_pixel_and_patchgan_gives_30x30() -> None:
    generator = UnetGenerator(depth=8, ngf=8)  # unet_256's structure with fewer filters, to stay fast
    bottleneck = []
    innermost = generator.model
    while innermost.submodule is not None:
        innermost = innermost.submodule
    innermost.down.register_forward_hook(lambda module, args, out: bottleneck.append(out.shape))
    generator.eval()
    assert generator(torch.zeros(1, 3, 256, 256)).shape == (1, 3, 256, 256)
    assert bottleneck == [torch.Size([1, 64, 1, 1])]
    assert PatchDiscriminator(6, ndf=8)(torch.zeros(1, 3, 256, 256), torch.zeros(1, 3, 256, 256)).shape == (
        1,
        1,
        30,
        30,
    )


def test_dropout_sits_in_the_three_up_blocks_inside_the_innermost_but_one() -> None:
    generator = UnetGenerator(depth=8, ngf=4)
    dropouts = [m for m in generator.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == 3 and all(d.p == 0.5 for d in dropouts)
    assert sum(isinstance(m, torch.nn.Dropout) for m in UnetGenerator(depth=6, ngf=4).modules()) == 1


@pytest.mark.parametrize("size", [(1, 1), (3, 7), (16, 16), (45, 20), (100, 37)])
def test_spp_gives_21_numbers_per_channel_for_any_size(size: tuple[int, int]) -> None:
    features = torch.randn(2, 5, *size)
    assert spatial_pyramid_pool(features).shape == (2, 21 * 5)


def test_spp_level_one_is_the_global_maximum() -> None:
    features = torch.randn(1, 2, 9, 13)
    pooled = spatial_pyramid_pool(features)
    assert torch.equal(pooled[0, -2:], features.amax(dim=(2, 3))[0])


def test_person_discriminator_is_the_official_spp_net() -> None:
    discriminator = PersonDiscriminator(ndf=4)
    convs = [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 4), (4, 8), (8, 16), (16, 32), (32, 1)]
    assert [(c.kernel_size, c.stride, c.padding) for c in convs] == [((4, 4), (2, 2), (1, 1))] + [
        ((4, 4), (1, 1), (1, 1))
    ] * 3 + [((4, 4), (1, 1), (0, 0))]
    assert all(c.bias is None for c in convs)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in discriminator.modules()) == 3
    assert not any(isinstance(m, torch.nn.Linear | torch.nn.Sigmoid) for m in discriminator.modules())
    # The score map of a 40x30 crop is 14x9 (side // 2 - 6); its pyramid is the maxima of 4x4, 2x2 and 1x1 cells.
    discriminator.eval()
    crop = torch.randn(1, 3, 40, 30)
    score_map = discriminator.patches(crop)
    assert score_map.shape == (1, 1, 14, 9)
    assert torch.equal(discriminator.score(crop), spatial_pyramid_pool(score_map))
    assert torch.equal(discriminator.score(crop)[0, -1], score_map.max())


def test_person_discriminator_scores_boxes_of_any_size_without_shrinking() -> None:
    discriminator = PersonDiscriminator(ndf=4).eval()
    assert discriminator.min_side == 20  # the smallest crop whose score map has 4x4 cells
    crops = [torch.randn(3, h, w) for h, w in ((9, 5), (40, 18), (120, 64))]
    assert discriminator(crops).shape == (3, 21)


def test_each_sample_is_scored_on_its_own_box_only() -> None:
    torch.manual_seed(0)
    discriminator = PersonDiscriminator(ndf=4).eval()
    images = torch.rand(3, 3, 64, 64)
    boxes = torch.tensor([[4, 6, 20, 50], [30, 10, 60, 40], [0, 40, 64, 64]])
    scores = discriminator(crop_boxes(images, boxes))
    outside = images.clone()
    mask = torch.ones(64, 64, dtype=torch.bool)
    mask[6:50, 4:20] = False
    outside[0][:, mask] = torch.rand(3, int(mask.sum()))  # sample 0 changes everywhere but in its box
    outside[1, :, 10:40, 30:60] = 0  # sample 1 changes inside its box
    again = discriminator(crop_boxes(outside, boxes))
    assert torch.equal(again[0], scores[0])
    assert not torch.equal(again[1], scores[1])
    assert torch.equal(again[2], scores[2])
    assert [tuple(c.shape) for c in crop_boxes(images, boxes)] == [(3, 44, 16), (3, 30, 30), (3, 24, 64)]


def test_unknown_preset_and_bad_depth_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown PS-GAN preset 'huge'"):
        preset("huge")
    with pytest.raises(ValueError, match="divisible"):
        PsganConfig(size=100, depth=6)
