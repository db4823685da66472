"""Tests of the grayscale plugin, written against fewgen's public API as any third party would."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fewgen_grayscale.generator import Grayscale, GrayscaleParams
from PIL import Image

from fewgen.api import StepContext
from fewgen.dataset import Box, Dataset, Sample
from fewgen.imageio import load_rgb, save_image

CLASSES = ["car", "person"]
BOXES = (Box(0, 1.0, 2.0, 10.0, 12.0), Box(1, 4.5, 3.25, 15.0, 14.0))


def colour_image(path: Path, seed: int, size: tuple[int, int] = (24, 16)) -> Path:
    """A random colour image, so grayscale copies differ visibly from their parents."""
    width, height = size
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return save_image(pixels, path)


def tiny_dataset(folder: Path, count: int = 4, with_mask: bool = False) -> Dataset:
    samples = []
    for i in range(count):
        mask = None
        if with_mask:
            mask = save_image(np.full((16, 24), i, dtype=np.uint8), folder / "masks" / f"img{i}.png")
        samples.append(
            Sample(
                id=f"train/img{i}",
                image=colour_image(folder / "images" / f"img{i}.png", seed=i),
                width=24,
                height=16,
                boxes=BOXES,
                mask=mask,
                label="ok",
                domain="day",
            )
        )
    return Dataset(samples, list(CLASSES), "tiny")


def step_context(work_dir: Path, seed: int = 0) -> StepContext:
    work_dir.mkdir(parents=True, exist_ok=True)
    return StepContext(
        step="g", seed=seed, work_dir=work_dir, device="cpu", log=logging.getLogger("t"), show_progress=False
    )


def generate(dataset: Dataset, work_dir: Path, seed: int = 0, **params: object) -> tuple[list[Sample], StepContext]:
    ctx = step_context(work_dir, seed)
    generator = Grayscale(GrayscaleParams.model_validate(params))
    return list(generator.generate(dataset, ctx)), ctx


# --- the generator on its own ----------------------------------------------------------


def test_copies_have_three_equal_channels_and_keep_labels(tmp_path: Path) -> None:
    dataset = tiny_dataset(tmp_path / "data")
    new, ctx = generate(dataset, tmp_path / "w")

    assert len(new) == len(dataset)
    parents = {s.id: s for s in dataset}
    for sample in new:
        parent = parents[sample.provenance.parent]
        pixels = load_rgb(sample.image)
        assert pixels.shape == (16, 24, 3)
        assert np.array_equal(pixels[..., 0], pixels[..., 1])
        assert np.array_equal(pixels[..., 1], pixels[..., 2])
        assert sample.boxes == parent.boxes
        assert (sample.width, sample.height, sample.split, sample.label) == (24, 16, "train", "ok")
        assert sample.domain == "gray"
        assert sample.id == f"g/{parent.id}"
        assert sample.image.is_relative_to(ctx.work_dir)
        assert sample.provenance.generator == "grayscale"
        assert sample.provenance.step == "g"
        assert sample.provenance.seed == 0
    assert ctx.issues == []


def test_luma_matches_bt601(tmp_path: Path) -> None:
    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [200, 100, 50]]], dtype=np.uint8)
    image = save_image(pixels, tmp_path / "data" / "four.png")
    dataset = Dataset([Sample(id="four", image=image, width=4, height=1)])
    (copy,), _ = generate(dataset, tmp_path / "w")
    expected = np.rint(pixels[0].astype(np.float64) @ [0.299, 0.587, 0.114])
    assert load_rgb(copy.image)[0, :, 0].tolist() == expected.astype(int).tolist()


def test_contrast_stretches_around_the_mean(tmp_path: Path) -> None:
    dataset = tiny_dataset(tmp_path / "data", count=1)
    (plain,), _ = generate(dataset, tmp_path / "plain", contrast=1.0)
    (stretched,), _ = generate(dataset, tmp_path / "stretched", contrast=2.0)
    (flat,), _ = generate(dataset, tmp_path / "flat", contrast=0.25)
    plain_std = load_rgb(plain.image)[..., 0].std()
    assert load_rgb(stretched.image)[..., 0].std() > plain_std
    assert load_rgb(flat.image)[..., 0].std() < plain_std / 2


@pytest.mark.parametrize(("fraction", "expected"), [(0.0, 0), (0.25, 2), (0.5, 4), (0.8, 6), (1.0, 8)])
def test_fraction_sets_how_many_copies(tmp_path: Path, fraction: float, expected: int) -> None:
    dataset = tiny_dataset(tmp_path / "data", count=8)
    new, _ = generate(dataset, tmp_path / "w", fraction=fraction)
    assert len(new) == expected
    assert len({s.provenance.parent for s in new}) == expected


def test_same_seed_same_output_other_seed_other_choice(tmp_path: Path) -> None:
    dataset = tiny_dataset(tmp_path / "data", count=8)
    first, _ = generate(dataset, tmp_path / "a", seed=7, fraction=0.5)
    again, _ = generate(dataset, tmp_path / "b", seed=7, fraction=0.5)
    assert [s.id for s in first] == [s.id for s in again]
    for a, b in zip(first, again, strict=True):
        assert a.image.read_bytes() == b.image.read_bytes()
    chosen_by_seed = {
        tuple(s.id for s in generate(dataset, tmp_path / f"s{seed}", seed=seed, fraction=0.5)[0]) for seed in range(6)
    }
    assert len(chosen_by_seed) > 1


def test_masks_are_copied_into_the_work_folder(tmp_path: Path) -> None:
    dataset = tiny_dataset(tmp_path / "data", count=2, with_mask=True)
    new, ctx = generate(dataset, tmp_path / "w")
    parents = {s.id: s for s in dataset}
    for sample in new:
        parent = parents[sample.provenance.parent]
        assert sample.mask is not None
        assert sample.mask.is_relative_to(ctx.work_dir)
        assert sample.mask.read_bytes() == parent.mask.read_bytes()


def test_jpg_output(tmp_path: Path) -> None:
    new, _ = generate(tiny_dataset(tmp_path / "data", count=1), tmp_path / "w", image_format="jpg")
    (sample,) = new
    assert sample.image.suffix == ".jpg"
    with Image.open(sample.image) as image:
        assert image.format == "JPEG"
        assert image.mode == "RGB"


def test_corrupt_image_is_skipped_and_reported(tmp_path: Path) -> None:
    dataset = tiny_dataset(tmp_path / "data", count=3)
    broken = dataset.samples[1].image
    broken.write_bytes(b"not an image")
    new, ctx = generate(dataset, tmp_path / "w")
    assert [s.provenance.parent for s in new] == ["train/img0", "train/img2"]
    assert [issue.path for issue in ctx.issues] == [str(broken)]
    assert "cannot decode" in ctx.issues[0].reason


def test_file_names_stay_inside_the_work_folder(tmp_path: Path) -> None:
    image = colour_image(tmp_path / "data" / "x.png", seed=0)
    dataset = Dataset([Sample(id="/abs/../../escape", image=image, width=24, height=16)])
    (sample,), ctx = generate(dataset, tmp_path / "w")
    assert sample.image.resolve().is_relative_to(ctx.work_dir.resolve())
    assert sample.id == "g//abs/../../escape"


def test_unknown_or_out_of_range_params_are_rejected() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        GrayscaleParams.model_validate({"fractoin": 0.5})
    with pytest.raises(ValidationError):
        GrayscaleParams.model_validate({"fraction": 1.5})
    with pytest.raises(ValidationError):
        GrayscaleParams.model_validate({"image_format": "gif"})


# --- installed as a plugin ---------------------------------------------------------------


def test_entry_point_is_discovered() -> None:
    from fewgen.plugins import load_registry

    registry = load_registry()
    assert "grayscale" in registry.generators
    assert registry.generator("grayscale") is Grayscale
    (info,) = [info for info in registry.describe() if "grayscale" in info.generators]
    assert info.name == "grayscale"
    assert info.distribution == "fewgen-grayscale"
    assert info.version == "0.1.0"
    assert registry.plugin_version(registry.generators, "grayscale") == "0.1.0"


def test_recipe_runs_through_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fewgen_run: Callable[..., Any]
) -> None:
    from fewgen.plugins import load_registry

    # Only this plugin and the formats: a broken plugin elsewhere in the environment must not fail this test.
    monkeypatch.setenv("FEWGEN_LOAD_PLUGINS", "grayscale,fewgen.formats")
    if "fewgen" not in load_registry().formats:
        pytest.skip("fewgen's native dataset format ('fewgen') is not registered in this fewgen installation")

    tiny_dataset(tmp_path / "source", count=4, with_mask=True).save(tmp_path / "source")
    # fewgen_run (fewgen.testing's pytest plugin) writes the recipe into tmp_path and runs it.
    recipe = """
name: mono
seed: 3
device: cpu
dataset: {format: fewgen, root: source}
steps:
  - name: mono
    generator: grayscale
    params: {fraction: 0.5, image_format: jpg}
output: {format: fewgen}
"""
    result = fewgen_run(recipe)

    written = Dataset.load(tmp_path / "out" / "dataset")
    assert len(written) == 6
    copies = [s for s in written if s.is_synthetic]
    assert len(copies) == 2
    for sample in copies:
        assert sample.id.startswith("mono/train/img")
        assert sample.domain == "gray"
        assert sample.boxes == BOXES
        assert sample.mask is not None and sample.mask.is_file()
        assert sample.provenance.generator == "grayscale"
        pixels = load_rgb(sample.image)
        assert np.array_equal(pixels[..., 0], pixels[..., 2])
    (step,) = result.manifest["steps"]
    assert (step["plugin"], step["version"], step["new_samples"]) == ("grayscale", "0.1.0", 2)

    rerun = fewgen_run(recipe, out="again", cache_dir=tmp_path / "cache-out")
    assert rerun.manifest["steps"][0]["timing"]["cached"] is True
    assert sorted(s.id for s in Dataset.load(tmp_path / "again" / "dataset")) == sorted(s.id for s in written)
