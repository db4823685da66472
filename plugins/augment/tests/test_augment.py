"""Tests of the augment plugin through fewgen's public API, on tiny images drawn in tmp_path."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fewgen_augment.generator import AugmentGenerator, AugmentParams
from fewgen_augment.presets import PRESETS
from pydantic import ValidationError

from fewgen.api import StepContext
from fewgen.dataset import Box, Dataset, Sample
from fewgen.imageio import load_mask, load_rgb, save_image

WIDTH, HEIGHT = 64, 48
SQUARE = (20, 12, 36, 28)  # x1, y1, x2, y2 of the bright square every test image holds
BOXES = (Box(0, *map(float, SQUARE)), Box(1, 2.0, 30.0, 14.5, 46.0))


def street_like_image(path: Path, seed: int) -> Path:
    """A textured gradient with a bright square, so both colour and position changes are visible."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(60, 160, HEIGHT, dtype=np.float32)[:, None, None]
    pixels = rows + rng.normal(0, 12, (HEIGHT, WIDTH, 3))
    x1, y1, x2, y2 = SQUARE
    pixels[y1:y2, x1:x2] = 230
    return save_image(np.clip(pixels, 0, 255).astype(np.uint8), path)


def square_mask(path: Path) -> Path:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    x1, y1, x2, y2 = SQUARE
    mask[y1:y2, x1:x2] = 255
    return save_image(mask, path)


def make_dataset(folder: Path, count: int = 2, with_mask: bool = False) -> Dataset:
    samples = [
        Sample(
            id=f"train/img{i}",
            image=street_like_image(folder / "images" / f"img{i}.png", seed=i),
            width=WIDTH,
            height=HEIGHT,
            split=("train", "val")[i % 2],
            boxes=BOXES,
            mask=square_mask(folder / "masks" / f"img{i}.png") if with_mask else None,
            label="street",
            domain="day",
            attributes={"score": 0.5},
        )
        for i in range(count)
    ]
    return Dataset(samples, ["person", "car"], "tiny")


def augment(dataset: Dataset, work_dir: Path, seed: int = 0, **params: Any) -> tuple[list[Sample], StepContext]:
    ctx = StepContext(
        step="s", seed=seed, work_dir=work_dir, device="cpu", log=logging.getLogger("t"), show_progress=False
    )
    generator = AugmentGenerator(AugmentParams.model_validate(params))
    return list(generator.generate(dataset, ctx)), ctx


def corners(box: Box) -> tuple[float, float, float, float]:
    return box.x1, box.y1, box.x2, box.y2


def image_bytes(samples: list[Sample]) -> list[bytes]:
    files = [s.image for s in samples] + [s.mask for s in samples if s.mask is not None]
    return [path.read_bytes() for path in files]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_keeps_boxes_inside_the_image_and_their_classes(tmp_path: Path, preset: str) -> None:
    dataset = make_dataset(tmp_path / "data", count=2, with_mask=True)
    new, ctx = augment(dataset, tmp_path / "w", preset=preset, copies=2)

    assert len(new) == 4
    assert ctx.issues == []
    parents = {s.id: s for s in dataset}
    moves_pixels = preset in ("flip", "geometric", "rot90")
    for sample in new:
        parent = parents[sample.provenance.parent]
        # A quarter turn swaps width and height; the sample's size must say so.
        assert load_rgb(sample.image).shape == (sample.height, sample.width, 3)
        assert load_mask(sample.mask).shape == (sample.height, sample.width)
        assert {sample.width, sample.height} == {WIDTH, HEIGHT}
        if preset != "rot90":
            assert (sample.width, sample.height) == (WIDTH, HEIGHT)
        assert sample.image.is_relative_to(ctx.work_dir / "images")
        assert sample.mask.is_relative_to(ctx.work_dir / "masks")
        assert sample.boxes, "a mild augmentation must not lose every box"
        assert {b.cls for b in sample.boxes} <= {0, 1}
        for box in sample.boxes:
            assert 0 <= box.x1 < box.x2 <= sample.width
            assert 0 <= box.y1 < box.y2 <= sample.height
        if not moves_pixels:
            assert [b.cls for b in sample.boxes] == [b.cls for b in parent.boxes]
            for box, before in zip(sample.boxes, parent.boxes, strict=True):
                assert corners(box) == pytest.approx(corners(before), abs=1e-4)
        assert sample.domain == (PRESETS[preset].domain or "day")
        assert (sample.split, sample.label, sample.attributes) == (parent.split, "street", {})


def test_flip_mirrors_boxes_and_pixels_exactly(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data", count=1)
    (copy,), _ = augment(dataset, tmp_path / "w", preset="flip", image_format="png")

    assert np.array_equal(load_rgb(copy.image), load_rgb(dataset.samples[0].image)[:, ::-1])
    mirrored = [(b.cls, WIDTH - b.x2, b.y1, WIDTH - b.x1, b.y2) for b in BOXES]
    assert [(b.cls, *corners(b)) for b in copy.boxes] == [pytest.approx(m, abs=1e-4) for m in mirrored]


def test_custom_transforms_run_after_presets(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data", count=1)
    (copy,), _ = augment(
        dataset, tmp_path / "w", preset="color", transforms=[{"name": "HorizontalFlip", "p": 1.0}], image_format="png"
    )
    assert corners(copy.boxes[0]) == pytest.approx((WIDTH - 36, 12, WIDTH - 20, 28), abs=1e-4)
    assert copy.domain == "day"


@pytest.mark.parametrize(("min_visibility", "kept"), [(0.25, [(0, 0.0, 12.0, 8.0, 28.0)]), (0.6, [])])
def test_boxes_shifted_partly_out_are_clipped_or_dropped_by_min_visibility(
    tmp_path: Path, min_visibility: float, kept: list[tuple[float, ...]]
) -> None:
    dataset = make_dataset(tmp_path / "data", count=1)
    # 28 pixels left: half of the square stays in view, the small box leaves the image entirely.
    shift = {"name": "Affine", "translate_px": {"x": [-28, -28], "y": [0, 0]}, "p": 1.0}
    (copy,), _ = augment(dataset, tmp_path / "w", transforms=[shift], min_visibility=min_visibility)
    assert [(b.cls, *corners(b)) for b in copy.boxes] == [pytest.approx(k, abs=1e-4) for k in kept]


def test_mask_moves_with_the_image_under_a_geometric_transform(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data", count=1, with_mask=True)
    new, _ = augment(dataset, tmp_path / "w", preset="geometric", copies=4, image_format="png")

    original = load_mask(dataset.samples[0].mask) > 0
    moved = 0
    for sample in new:
        mask = load_mask(sample.mask) > 0
        # Halfway between the square (230) and the background around it (about 100): bilinear edges split evenly.
        bright = load_rgb(sample.image).mean(axis=2) > 165
        overlap = (mask & bright).sum() / (mask | bright).sum()
        # A shift of two pixels between mask and image would leave about 0.78 on this 16-pixel square.
        assert overlap > 0.85, f"mask and image content drifted apart in {sample.id} (IoU {overlap:.2f})"
        ys, xs = np.nonzero(mask)
        square_box = next(b for b in sample.boxes if b.cls == 0)
        assert corners(square_box) == pytest.approx((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), abs=1.5)
        moved += not np.array_equal(mask, original)
    assert moved >= 3


def test_same_seed_gives_identical_files_other_seed_differs(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data", count=3, with_mask=True)
    params = {"preset": ["night", "geometric"], "copies": 2}
    first, _ = augment(dataset, tmp_path / "a", seed=5, **params)
    again, _ = augment(dataset, tmp_path / "b", seed=5, **params)
    other, _ = augment(dataset, tmp_path / "c", seed=6, **params)

    assert [s.id for s in first] == [s.id for s in again]
    assert [s.boxes for s in first] == [s.boxes for s in again]
    assert image_bytes(first) == image_bytes(again)
    assert image_bytes(first) != image_bytes(other)


@pytest.mark.parametrize(("fraction", "copies", "parents"), [(0.5, 3, 4), (0.25, 1, 2), (0.0, 2, 0), (1.0, 2, 8)])
def test_fraction_picks_samples_and_copies_multiply_them(
    tmp_path: Path, fraction: float, copies: int, parents: int
) -> None:
    dataset = make_dataset(tmp_path / "data", count=8)
    new, _ = augment(dataset, tmp_path / "w", preset="flip", fraction=fraction, copies=copies)

    assert len(new) == parents * copies
    chosen = sorted({s.provenance.parent for s in new})
    assert len(chosen) == parents
    by_id = {s.id: s for s in dataset}
    assert sorted(s.id for s in new) == sorted(f"s/{p}/{k}" for p in chosen for k in range(copies))
    for sample in new:
        assert sample.split == by_id[sample.provenance.parent].split
        assert (sample.provenance.generator, sample.provenance.step, sample.provenance.seed) == ("augment", "s", 0)
    assert len({s.image for s in new}) == len(new)


def test_unreadable_image_or_mask_is_skipped_and_recorded(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data", count=3, with_mask=True)
    broken_image, broken_mask = dataset.samples[1].image, dataset.samples[2].mask
    broken_image.write_bytes(b"not an image")
    broken_mask.write_bytes(b"\x89PNG truncated")
    new, ctx = augment(dataset, tmp_path / "w", preset="night")

    assert [s.provenance.parent for s in new] == ["train/img0"]
    assert [issue.path for issue in ctx.issues] == [str(broken_image), str(broken_mask)]
    assert all("cannot decode" in issue.reason for issue in ctx.issues)


def test_night_darkens_the_image(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data", count=2)
    new, _ = augment(dataset, tmp_path / "w", preset="night", copies=2)
    before = np.mean([load_rgb(s.image).mean() for s in dataset])
    for sample in new:
        assert load_rgb(sample.image).mean() < 0.75 * before


def test_domains_follow_presets_unless_overridden(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data", count=1)
    (rainy_night,), _ = augment(dataset, tmp_path / "a", preset=["night", "rain"])
    (named,), _ = augment(dataset, tmp_path / "b", preset="fog", domain="haze")
    assert rainy_night.domain == "night_rain"
    assert named.domain == "haze"


def test_one_preset_name_equals_a_list_of_one() -> None:
    assert AugmentParams.model_validate({"preset": "fog"}) == AugmentParams.model_validate({"preset": ["fog"]})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"preset": "nigth"}, "did you mean 'night'"),
        ({"preset": "fog", "copie": 2}, "Extra inputs are not permitted"),
        ({}, "give a 'preset'"),
        ({"preset": "fog", "copies": 0}, "greater than or equal to 1"),
        ({"preset": "fog", "fraction": 1.5}, "less than or equal to 1"),
        ({"preset": "fog", "image_format": "gif"}, "'jpg' or 'png'"),
        ({"transforms": [{"name": "MotionBlurr"}]}, "did you mean 'MotionBlur'"),
        ({"transforms": [{"name": "OneOf"}]}, "not an albumentations transform"),
        ({"transforms": [{"name": "RandomFog", "fog_coef_range": [2, 3]}]}, "transform RandomFog"),
        ({"transforms": [{"name": "HorizontalFlip", "probability": 1}]}, "probability"),
        # A transform without an argument schema (no `strict`) still rejects unknown arguments.
        ({"transforms": [{"name": "RandomRotate90", "probability": 1}]}, "transform RandomRotate90.*probability"),
    ],
)
def test_invalid_params_are_rejected(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AugmentParams.model_validate(params)


def test_hook_module_imports_without_albumentations() -> None:
    code = (
        "import sys, fewgen_augment.hooks; "
        "loaded = [m for m in ('albumentations', 'cv2') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_entry_point_registers_the_generator() -> None:
    from fewgen.plugins import load_registry

    registry = load_registry()
    assert registry.generator("augment") is AugmentGenerator
    assert registry.plugin_version(registry.generators, "augment") == "0.1.0"


def test_transforms_without_an_argument_schema_are_accepted(tmp_path: Path) -> None:
    params = AugmentParams.model_validate({"transforms": [{"name": "RandomRotate90", "p": 1.0}]})
    assert [t.name for t in params.transforms] == ["RandomRotate90"]


def test_quarter_turns_move_the_box_with_its_square(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data", count=1, with_mask=True)
    new, _ = augment(dataset, tmp_path / "w", preset="rot90", copies=8, image_format="png")
    for sample in new:
        # The mask marks exactly the square, so its bounding box is where the square went.
        rows, cols = np.nonzero(load_mask(sample.mask))
        square = next(b for b in sample.boxes if b.cls == 0)
        assert corners(square) == pytest.approx((cols.min(), rows.min(), cols.max() + 1, rows.max() + 1), abs=1e-3)
