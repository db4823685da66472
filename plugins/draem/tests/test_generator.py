"""The ``draem`` fewgen generator end to end, with a StepContext built by hand and tiny images in tmp_path."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fewgen_draem.generator import DraemGenerator, DraemParams
from pydantic import ValidationError

from fewgen.api import StepContext
from fewgen.dataset import Dataset, Sample
from fewgen.errors import UsageError
from fewgen.imageio import load_mask, load_rgb, save_image

WIDTH, HEIGHT = 48, 40
LABELS = ("good", "defect", None, "good")  # the defect sample is not eligible by default


def surface_image(path: Path, seed: int, gray: bool = False) -> Path:
    """A smooth shaded surface with mild noise, like a defect-free inspection image."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(90, 150, HEIGHT, dtype=np.float32)[:, None]
    pixels = rows + rng.normal(0, 4, (HEIGHT, WIDTH))
    if not gray:
        pixels = np.stack((pixels, pixels * 0.9, pixels * 0.8), axis=2)
    return save_image(np.clip(pixels, 0, 255).astype(np.uint8), path)


def make_dataset(folder: Path, classes: list[str] | None = None) -> Dataset:
    samples = [
        Sample(
            id=f"train/good/{i:03d}",
            image=surface_image(folder / "images" / f"{i}.png", seed=i, gray=i == 3),
            width=WIDTH,
            height=HEIGHT,
            split=("train", "val")[i % 2],
            label=label,
            domain="line1",
            attributes={"score": 0.1},
        )
        for i, label in enumerate(LABELS)
    ]
    return Dataset(samples, ["scratch", "anomaly"] if classes is None else classes, "tiny")


def texture_folder(folder: Path, colour: tuple[int, int, int], broken: bool = False) -> Path:
    save_image(np.full((30, 20, 3), colour, np.uint8), folder / "nested" / "plain.png")
    if broken:
        (folder / "broken.jpg").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("not an image either, and not named like one")
    return folder


def run(dataset: Dataset, work_dir: Path, seed: int = 0, **params: Any) -> tuple[list[Sample], StepContext]:
    ctx = StepContext(
        step="anomalies", seed=seed, work_dir=work_dir, device="cpu", log=logging.getLogger("t"), show_progress=False
    )
    generator = DraemGenerator(DraemParams.model_validate(params))
    return list(generator.generate(dataset, ctx)), ctx


def contents(samples: list[Sample]) -> list[bytes]:
    return [path.read_bytes() for s in samples for path in (s.image, s.mask)]


def test_copies_of_good_images_with_masks_aligned_to_the_changed_pixels(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data")
    # Unturned good images (rotate_normal 0), so outside the mask every pixel is the parent's.
    new, ctx = run(dataset, tmp_path / "w", copies=3, batch_size=4, min_box_area=1, rotate_normal=0.0)

    assert ctx.issues == []
    parents = {s.id: s for s in dataset}
    eligible = [s.id for s in dataset if s.label in ("good", None)]
    assert sorted(s.id for s in new) == sorted(f"anomalies/{p}/{k}" for p in eligible for k in range(3))
    anomalous = 0
    for sample in new:
        parent = parents[sample.provenance.parent]
        assert (sample.provenance.generator, sample.provenance.step, sample.provenance.seed) == (
            "draem",
            "anomalies",
            0,
        )
        assert (sample.split, sample.domain, sample.attributes) == (parent.split, "line1", {})
        assert sample.image.is_relative_to(ctx.work_dir / "images") and sample.image.suffix == ".png"
        assert sample.mask.is_relative_to(ctx.work_dir / "masks") and sample.mask.suffix == ".png"
        image, mask = load_rgb(sample.image), load_mask(sample.mask)
        assert image.shape == (HEIGHT, WIDTH, 3) and (sample.width, sample.height) == (WIDTH, HEIGHT)
        assert mask.shape == (HEIGHT, WIDTH) and set(np.unique(mask)) <= {0, 255}
        # Lossless PNG and no resize: outside the mask every pixel is the parent's.
        changed = (image != load_rgb(parent.image)).any(axis=2)
        assert not (changed & (mask == 0)).any()
        if mask.any():
            anomalous += 1
            assert sample.label == "synthetic_anomaly"
            assert changed[mask > 0].mean() > 0.5
        else:
            assert sample.label == parent.label and sample.boxes == ()
    assert anomalous >= 6


def test_boxes_enclose_the_mask_regions_with_the_anomaly_class(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data")
    new, _ = run(dataset, tmp_path / "w", copies=4, min_box_area=1)

    with_boxes = 0
    for sample in new:
        mask = load_mask(sample.mask) > 0
        covered = np.zeros_like(mask)
        for box in sample.boxes:
            assert box.cls == 1
            assert 0 <= box.x1 < box.x2 <= WIDTH and 0 <= box.y1 < box.y2 <= HEIGHT
            region = mask[int(box.y1) : int(box.y2), int(box.x1) : int(box.x2)]
            # Tight: every edge row and column of the box touches the region.
            assert region[0].any() and region[-1].any() and region[:, 0].any() and region[:, -1].any()
            covered[int(box.y1) : int(box.y2), int(box.x1) : int(box.x2)] = True
        assert not (mask & ~covered).any(), f"a mask region of {sample.id} has no box"
        with_boxes += bool(sample.boxes)
    assert with_boxes >= 8


def test_min_box_area_drops_small_regions(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data")
    every, _ = run(dataset, tmp_path / "a", copies=4, min_box_area=1)
    large, _ = run(dataset, tmp_path / "b", copies=4, min_box_area=200)
    assert sum(map(len, (s.boxes for s in large))) < sum(map(len, (s.boxes for s in every)))
    assert all(b.width * b.height >= 200 for s in large for b in s.boxes)


def test_box_class_missing_from_the_dataset(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data", classes=["scratch"])
    new, _ = run(dataset, tmp_path / "auto", fraction=0.5)
    assert new and all(s.boxes == () for s in new)
    with pytest.raises(UsageError, match=r"add it to the dataset's classes.*boxes: false"):
        run(dataset, tmp_path / "strict", boxes=True)
    named, _ = run(dataset, tmp_path / "named", boxes=True, box_class="scratch", copies=3)
    assert {b.cls for s in named for b in s.boxes} == {0}
    none, _ = run(make_dataset(tmp_path / "data2"), tmp_path / "off", boxes=False)
    assert all(s.boxes == () for s in none)


def test_same_seed_gives_identical_files_other_seed_differs(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data")
    first, _ = run(dataset, tmp_path / "a", seed=5, copies=2, batch_size=3)
    again, _ = run(dataset, tmp_path / "b", seed=5, copies=2, batch_size=3)
    other, _ = run(dataset, tmp_path / "c", seed=6, copies=2, batch_size=3)
    assert [(s.id, s.label, s.boxes) for s in first] == [(s.id, s.label, s.boxes) for s in again]
    assert contents(first) == contents(again)
    assert contents(first) != contents(other)


def test_textures_fill_exactly_the_masks(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data")
    red = texture_folder(tmp_path / "red", (250, 10, 10))
    green = texture_folder(tmp_path / "green", (10, 250, 10))
    reds, _ = run(dataset, tmp_path / "a", copies=4, textures=str(red))
    greens, _ = run(dataset, tmp_path / "b", copies=4, textures=str(green))

    # Masks and blending draws do not depend on the source pixels, so only the texture differs between runs.
    differs, in_mask = 0, 0
    for with_red, with_green in zip(reds, greens, strict=True):
        mask = load_mask(with_red.mask) > 0
        assert np.array_equal(mask, load_mask(with_green.mask) > 0)
        changed = (load_rgb(with_red.image) != load_rgb(with_green.image)).any(axis=2)
        assert not (changed & ~mask).any()
        differs, in_mask = differs + (changed & mask).sum(), in_mask + mask.sum()
    assert in_mask > 0 and differs > 0.5 * in_mask


def test_unreadable_textures_are_skipped_and_recorded(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data")
    folder = texture_folder(tmp_path / "textures", (200, 200, 30), broken=True)
    new, ctx = run(dataset, tmp_path / "w", copies=5, textures=str(folder))
    assert len(new) == 15
    assert [issue.path for issue in ctx.issues] == [str(folder / "broken.jpg")]


@pytest.mark.parametrize("make", ["empty", "unreadable"])
def test_a_textures_folder_without_usable_images_is_a_usage_error(tmp_path: Path, make: str) -> None:
    folder = tmp_path / "textures"
    folder.mkdir()
    if make == "unreadable":
        (folder / "broken.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(UsageError, match="textures folder"):
        run(make_dataset(tmp_path / "data"), tmp_path / "w", textures=str(folder))


def test_a_missing_textures_folder_is_refused_with_the_parameters(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no such folder"):
        run(make_dataset(tmp_path / "data"), tmp_path / "w", textures=str(tmp_path / "nowhere"))


def test_a_relative_textures_folder_is_relative_to_the_recipe(tmp_path: Path, fewgen_run: Any) -> None:
    texture_folder(tmp_path / "textures", (20, 20, 220))
    make_dataset(tmp_path / "native").save(tmp_path / "native")
    recipe = """
name: textured
seed: 0
device: cpu
dataset: {format: fewgen, root: native}
steps:
  - name: anomalies
    generator: draem
    params: {textures: textures}
output: {format: fewgen}
"""
    first = fewgen_run(recipe)
    assert first.manifest["steps"][0]["new_samples"] > 0
    # Editing a texture recomputes the step though its parameters read the same.
    texture_folder(tmp_path / "textures", (220, 20, 20))
    again = fewgen_run(recipe, out="again", cache_dir=tmp_path / "cache-out")
    assert again.manifest["steps"][0]["key"] != first.manifest["steps"][0]["key"]


def test_labels_choose_the_inputs_and_fraction_the_share(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data")
    defects, _ = run(dataset, tmp_path / "a", from_labels=["defect"], copies=2)
    assert {s.provenance.parent for s in defects} == {"train/good/001"}
    half, _ = run(dataset, tmp_path / "b", fraction=0.34)
    assert len(half) == 1
    assert run(dataset, tmp_path / "c", from_labels=["none-such"])[0] == []


def test_normal_share_makes_normal_copies(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data")
    new, _ = run(dataset, tmp_path / "w", normal_share=1.0, rotate_normal=0.0, copies=2)
    parents = {s.id: s for s in dataset}
    for sample in new:
        parent = parents[sample.provenance.parent]
        assert not load_mask(sample.mask).any() and sample.boxes == ()
        assert sample.label == parent.label
        assert np.array_equal(load_rgb(sample.image), load_rgb(parent.image))


def test_by_default_about_30_percent_of_the_good_images_are_turned_first(tmp_path: Path) -> None:
    assert DraemParams().rotate_normal == 0.3  # the official loader: torch.rand(1) > 0.7
    dataset = make_dataset(tmp_path / "data")
    new, _ = run(dataset, tmp_path / "w", normal_share=1.0, copies=20)
    parents = {s.id: s for s in dataset}
    turned = [not np.array_equal(load_rgb(s.image), load_rgb(parents[s.provenance.parent].image)) for s in new]
    assert 0.1 < np.mean(turned) < 0.5  # 60 copies, each turned with probability 0.3


def test_size_resizes_and_grayscale_inputs_come_out_rgb(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data")
    new, _ = run(dataset, tmp_path / "w", size=[32, 24], rotate_normal=1.0)
    for sample in new:
        assert (sample.width, sample.height) == (32, 24)
        assert load_rgb(sample.image).shape == (24, 32, 3)
        assert load_mask(sample.mask).shape == (24, 32)
    assert DraemParams.model_validate({"size": 64}).size == (64, 64)


def test_unreadable_or_mis_sized_images_are_skipped(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data")
    dataset.samples[0].image.write_bytes(b"broken")
    save_image(np.zeros((10, 10, 3), np.uint8), dataset.samples[2].image)
    new, ctx = run(dataset, tmp_path / "w", copies=2, batch_size=1)
    assert {s.provenance.parent for s in new} == {"train/good/003"}
    assert [issue.path for issue in ctx.issues] == [str(dataset.samples[0].image), str(dataset.samples[2].image)]
    assert "cannot decode" in ctx.issues[0].reason and "10x10" in ctx.issues[1].reason


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"copies": 0}, "greater than or equal to 1"),
        ({"beta_max": 1.5}, "less than or equal to 1"),
        ({"normal_share": -0.1}, "greater than or equal to 0"),
        ({"size": [0, 10]}, "size must be positive"),
        ({"betamax": 0.5}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_params_are_rejected(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DraemParams.model_validate(params)


def test_hook_module_imports_without_torch() -> None:
    code = "import sys, fewgen_draem.hooks; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_entry_point_registers_the_generator() -> None:
    from fewgen.plugins import load_registry

    registry = load_registry()
    assert registry.generator("draem") is DraemGenerator
    (info,) = [info for info in registry.describe() if "draem" in info.generators]
    assert (info.distribution, info.version) == ("fewgen-draem", "0.1.0")


def test_size_lets_images_of_different_sizes_share_a_batch(tmp_path: Path) -> None:
    # Real inspection sets (magnetic tiles) hold images of many sizes; with `size` they are
    # resized one by one before they are stacked into a batch.
    dataset = make_dataset(tmp_path / "data")
    big = save_image(np.full((HEIGHT * 2, WIDTH + 7, 3), 120, np.uint8), tmp_path / "data" / "big.png")
    odd = dataset.samples[0].derive(id="train/good/big", image=big, width=WIDTH + 7, height=HEIGHT * 2)
    new, ctx = run(dataset.with_samples([*dataset.samples, odd]), tmp_path / "w", size=[40, 30], batch_size=16)
    assert ctx.issues == []
    assert any(s.provenance.parent == "train/good/big" for s in new)
    assert all((s.width, s.height) == (40, 30) and load_rgb(s.image).shape == (30, 40, 3) for s in new)
