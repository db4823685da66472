"""The anomaly synthesiser and its ten source augmentations, on tiny tensors."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch
from fewgen_draem import augmentations
from fewgen_draem.augmentations import AUGMENTATIONS, rotate
from fewgen_draem.synthesis import AnomalySynthesizer, Synthesis, augment_sources, permute_rows_
from PIL import Image, ImageEnhance, ImageOps


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def gradient_images(count: int, size: int = 64) -> torch.Tensor:
    rows, cols = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    return torch.stack((0.2 + 0.6 * rows, 0.3 + 0.4 * cols, 0.5 * (rows + cols))).expand(count, -1, -1, -1)


def textured_image(seed: int = 0) -> np.ndarray:
    """A 40x50 RGB uint8 image with skewed, channel-dependent levels, so histogram operations have work to do."""
    rng = np.random.default_rng(seed)
    return (rng.beta(2, 5, (40, 50, 3)) * 255).astype(np.uint8)


def as_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255


def as_levels(images: torch.Tensor) -> np.ndarray:
    return (images[0].permute(1, 2, 0) * 255).round().numpy().astype(np.uint8)


def test_masks_are_binary_and_cover_a_plausible_share_of_pixels() -> None:
    synthesizer = AnomalySynthesizer(normal_share=0.0)
    result = synthesizer(gradient_images(256), seeded())
    assert result.masks.shape == (256, 1, 64, 64)
    assert set(result.masks.unique().tolist()) <= {0.0, 1.0}
    # Thresholding rotated Perlin noise at 0.5 marks a few percent of the pixels, some masks none at all.
    assert 0.01 < result.masks.mean().item() < 0.1
    assert 0.0 < (~result.has_anomaly).float().mean().item() < 0.2
    assert torch.equal(result.has_anomaly, result.masks.flatten(1).any(1))
    assert result.masks.flatten(1).mean(1).max() > 0.1, "large blobs from coarse lattices are missing"


def test_empty_masks_make_normal_samples_with_unchanged_images() -> None:
    images = gradient_images(4)
    # No noise value exceeds 2: every planned anomaly thresholds to an empty mask.
    result = AnomalySynthesizer(normal_share=0.0, threshold=2.0)(images, seeded())
    assert not result.has_anomaly.any()
    assert torch.equal(result.images, images)
    assert (result.augmentations >= 0).all(), "the anomalies were planned, only their masks came out empty"


def test_blend_inside_the_mask_follows_the_opacity_beta() -> None:
    image_value, source_value = 0.2, 0.9
    images = torch.full((32, 3, 32, 32), image_value)
    sources = torch.full((32, 3, 20, 24), source_value)  # resized to the images' size
    # No augmentation: the source stays constant, so every mask pixel shows the blend formula directly.
    result = AnomalySynthesizer(normal_share=0.0, augmentations_per_source=0)(images, seeded(1), sources)
    assert ((result.beta >= 0) & (result.beta < 0.8)).all()
    assert result.beta.std() > 0.1
    inside = result.masks.expand_as(images) > 0
    expected = ((1 - result.beta) * source_value + result.beta * image_value).reshape(-1, 1, 1, 1).expand_as(images)
    assert torch.allclose(result.images[inside], expected[inside], atol=1e-6)
    assert torch.equal(result.images[~inside], images[~inside])


def test_sources_in_any_layout_and_size() -> None:
    images = torch.full((3, 3, 40, 50), 0.2)
    # Images load as HWC arrays: permuted to CHW they are channels-last in memory.
    loaded = [torch.from_numpy(textured_image(seed)).permute(2, 0, 1).float() / 255 for seed in range(3)]
    resized_and_grey = [loaded[0][:, :20, :30], loaded[1][:1], loaded[2][:1, 5:, 5:]]
    for sources in (loaded, resized_and_grey):
        result = AnomalySynthesizer(normal_share=0.0, beta_max=0.0)(images, seeded(3), sources)
        assert result.images.is_contiguous() and result.has_anomaly.any()
        inside = result.masks.expand_as(images) > 0
        assert not torch.allclose(result.images[inside], images[inside])


def test_beta_max_bounds_the_opacity() -> None:
    result = AnomalySynthesizer(normal_share=0.0, beta_max=0.1)(gradient_images(64, 16), seeded())
    assert (result.beta < 0.1).all()


@pytest.mark.parametrize("normal_share", [0.0, 0.3, 0.5, 1.0])
def test_normal_share_leaves_that_share_untouched(normal_share: float) -> None:
    images = gradient_images(200, 16)
    result = AnomalySynthesizer(normal_share=normal_share)(images, seeded(2))
    normal = result.augmentations[:, 0] < 0
    assert abs(normal.float().mean().item() - normal_share) < 0.08
    assert torch.equal(result.images[normal], images[normal])
    assert not result.masks[normal].any()
    assert result.beta[normal].isnan().all() and not result.beta[~normal].isnan().any()
    again = AnomalySynthesizer(normal_share=normal_share)(images, seeded(2))
    assert torch.equal(again.augmentations[:, 0] < 0, normal)


def test_three_distinct_augmentations_per_anomaly_all_ten_in_use() -> None:
    result = AnomalySynthesizer(normal_share=0.0)(gradient_images(100, 16), seeded(3))
    chosen = result.augmentations
    assert chosen.shape == (100, 3)
    assert ((chosen >= 0) & (chosen < len(AUGMENTATIONS))).all()
    assert all(len(set(row)) == 3 for row in chosen.tolist())
    assert set(chosen.flatten().tolist()) == set(range(10))


@pytest.mark.parametrize("augmentation", AUGMENTATIONS, ids=lambda f: f.__name__)
def test_each_augmentation_keeps_shape_and_range_and_changes_the_image(augmentation) -> None:
    images = as_tensor(textured_image()).expand(6, -1, -1, -1).contiguous()
    augmented = augmentation(images, seeded(4))
    assert augmented.shape == images.shape
    assert augmented.min() >= 0 and augmented.max() <= 1
    # Solarize and posterize leave some images as they are (p=0.5, 8 bits), never all six.
    assert (augmented - images).abs().amax(dim=(1, 2, 3)).max() > 0.02


def test_equalize_and_autocontrast_give_pil_tables() -> None:
    for seed in range(3):
        array = textured_image(seed)
        image = Image.fromarray(array)
        assert np.array_equal(as_levels(augmentations.equalize(as_tensor(array), seeded())), ImageOps.equalize(image))
        for cutoff in (0, 7, 20):
            stretched = augmentations.stretch_contrast(as_tensor(array), torch.tensor([cutoff]))
            assert np.array_equal(as_levels(stretched), ImageOps.autocontrast(image, cutoff=cutoff))


def test_sharpness_at_factor_zero_is_pils_smooth_filter() -> None:
    array = textured_image()
    smoothed = np.asarray(ImageEnhance.Sharpness(Image.fromarray(array)).enhance(0.0)).astype(int)
    # Factors are uniform in [0, 2): compare the blend the function made with PIL's at the same factor.
    generator = seeded(5)
    factor = torch.rand(1, generator=seeded(5)).item() * 2
    ours = as_levels(augmentations.enhance_sharpness(as_tensor(array), generator)).astype(int)
    theirs = np.clip(smoothed + factor * (array.astype(int) - smoothed), 0, 255)
    assert np.abs(ours - theirs).max() <= 1


def test_hsv_round_trip_is_exact() -> None:
    images = as_tensor(textured_image())
    assert torch.allclose(augmentations.hsv_to_rgb(augmentations.rgb_to_hsv(images)), images, atol=1e-6)


def test_rotation_by_a_quarter_turn_matches_rot90_and_zero_is_identity() -> None:
    images = torch.rand(2, 3, 8, 8, generator=seeded())
    turned = rotate(images, torch.tensor([90.0, -90.0]))
    assert torch.allclose(turned[0], torch.rot90(images[0], 1, (1, 2)), atol=1e-5) or torch.allclose(
        turned[0], torch.rot90(images[0], -1, (1, 2)), atol=1e-5
    )
    assert not torch.allclose(turned[0], turned[1], atol=1e-3)
    wide = torch.rand(1, 3, 6, 10, generator=seeded())
    assert torch.allclose(rotate(wide, torch.tensor([0.0])), wide, atol=1e-6)


def test_rotate_normal_turns_the_good_image_with_black_corners() -> None:
    images = torch.full((16, 3, 32, 32), 0.5)
    result = AnomalySynthesizer(normal_share=1.0, rotate_normal=1.0)(images, seeded())
    corners = result.images[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners < 0.25).any(dim=(1, 2)).float().mean() > 0.8
    assert torch.equal(AnomalySynthesizer(normal_share=1.0)(images, seeded()).images, images)


def test_without_sources_colourised_perlin_noise_fills_the_mask() -> None:
    images = torch.full((8, 3, 64, 64), 0.5)
    result = AnomalySynthesizer(normal_share=0.0, beta_max=0.0)(images, seeded(6))
    varied = 0
    for image, mask in zip(result.images, result.masks, strict=True):
        inside = image[:, mask[0] > 0]
        varied += inside.shape[1] > 20 and inside.std(dim=1).max() > 0.02
    assert varied >= 3


def test_same_seed_same_batch_other_seed_differs() -> None:
    images = gradient_images(8, 32)
    first, again, other = (AnomalySynthesizer()(images, seeded(s)) for s in (7, 7, 8))
    for field in Synthesis.__dataclass_fields__:
        assert torch.equal(getattr(first, field), getattr(again, field)) or field == "beta"
    assert torch.allclose(first.beta, again.beta, equal_nan=True)
    assert not torch.equal(first.images, other.images)


def test_one_source_per_image_is_required() -> None:
    with pytest.raises(ValueError, match="one anomaly source per image"):
        AnomalySynthesizer()(gradient_images(2, 8), seeded(), [torch.rand(3, 8, 8)])


@pytest.mark.parametrize("augmentation", AUGMENTATIONS, ids=lambda f: f.__name__)
def test_augmentations_leave_their_input_alone_and_kernels_work_in_place(augmentation) -> None:
    images = as_tensor(textured_image()).expand(4, -1, -1, -1).contiguous()
    original = images.clone()
    augmented = augmentation(images, seeded(6))
    assert torch.equal(images, original)
    kernel = augmentations.KERNELS[AUGMENTATIONS.index(augmentation)]
    assert kernel(images, seeded(6)) is None
    assert torch.equal(images, augmented)


def test_hue_and_saturation_shift_matches_colorsys() -> None:
    images = as_tensor(textured_image())[..., :12, :12].expand(3, -1, -1, -1).contiguous()
    images[0, :, 0, :] = 0.5  # grey: no hue until the saturation shift gives it colour
    images[1, :, 1, :] = 0.0  # black
    images[2, 1, 2, :] = images[2, 0, 2, :]  # red and green tie
    generator = seeded(7)
    shifted = augmentations.add_to_hue_and_saturation(images, generator)
    # The function's draws: one hue shift, then one saturation shift per image, both uniform in +-50/255.
    draws = seeded(7)
    hue_shift = -50 / 255 + 100 / 255 * torch.rand(3, generator=draws)
    saturation_shift = -50 / 255 + 100 / 255 * torch.rand(3, generator=draws)
    expected = torch.empty_like(images)
    for n in range(3):
        for y in range(12):
            for x in range(12):
                hue, saturation, value = colorsys.rgb_to_hsv(*images[n, :, y, x].tolist())
                hue = (hue + hue_shift[n].item()) % 1
                saturation = min(max(saturation + saturation_shift[n].item(), 0.0), 1.0)
                expected[n, :, y, x] = torch.tensor(colorsys.hsv_to_rgb(hue, saturation, value))
    assert torch.allclose(shifted, expected, atol=1e-5)


def test_solarize_and_posterize_match_their_level_definitions() -> None:
    images = as_tensor(textured_image()).expand(8, -1, -1, -1).contiguous()
    levels = (images * 255).round().long()
    draws = seeded(8)
    applies = torch.rand(8, generator=draws) < 0.5
    threshold = 32 / 255 + 96 / 255 * torch.rand(8, generator=draws)
    solarized = augmentations.solarize(images, seeded(8))
    inverted = applies.reshape(-1, 1, 1, 1) & (images >= threshold.reshape(-1, 1, 1, 1))
    assert torch.equal(solarized, torch.where(inverted, 1 - images, images))
    bits = torch.randint(1, 9, (8,), generator=seeded(9))
    kept = (0xFF << (8 - bits)) & 0xFF  # PIL's posterize: the top bits of each level
    posterized = augmentations.posterize(images, seeded(9))
    assert torch.equal((posterized * 255).round().long(), levels & kept.reshape(-1, 1, 1, 1))


def test_rotation_matches_affine_grid() -> None:
    images = torch.rand(3, 3, 20, 32, generator=seeded())
    degrees = torch.tensor([-73.0, 12.5, 45.0])
    radians = torch.deg2rad(degrees)
    cos, sin = torch.cos(radians), torch.sin(radians)
    zero = torch.zeros(3)
    theta = torch.stack((torch.stack((cos, sin * 20 / 32, zero), -1), torch.stack((-sin * 32 / 20, cos, zero), -1)), 1)
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    expected = torch.nn.functional.grid_sample(images, grid, mode="bilinear", align_corners=False)
    assert torch.allclose(rotate(images, degrees), expected, atol=1e-5)


def test_augment_sources_applies_each_samples_augmentations_in_its_order() -> None:
    # Invert and equalize draw nothing, so each sample's result can be rebuilt one augmentation at a time.
    invert, equalize = AUGMENTATIONS.index(augmentations.invert), AUGMENTATIONS.index(augmentations.equalize)
    chosen = torch.tensor([[invert, equalize], [equalize, invert], [equalize, equalize], [invert, invert]] * 2)
    sources = torch.cat([as_tensor(textured_image(seed)) for seed in range(8)])
    original = sources.clone()
    augmented = augment_sources(sources, chosen, seeded())
    assert torch.equal(sources, original)
    for source, result, row in zip(sources, augmented, chosen.tolist(), strict=True):
        expected = source[None]
        for index in row:
            expected = AUGMENTATIONS[index](expected, seeded())
        assert torch.equal(result, expected[0])


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 2, 1, 0], [1, 2, 3, 0], [2, 0, 1, 3], [1, 0, 3, 2]])
def test_rows_are_permuted_in_place(order: list[int]) -> None:
    rows = torch.rand(4, 3, 5, generator=seeded())
    expected = rows[order].clone()
    permute_rows_(rows, order)
    assert torch.equal(rows, expected)
