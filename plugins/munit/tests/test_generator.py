"""The ``munit`` recipe step: fit on two unpaired domains, translate, keep every label."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from fewgen_munit.generator import MunitGenerator, MunitParams
from pydantic import ValidationError

from fewgen.cli import cli
from fewgen.dataset import Box, Dataset, Sample
from fewgen.errors import UsageError
from fewgen.imageio import load_mask, load_rgb, save_image
from fewgen.testing import make_context, run_recipe

QUICK = {"preset": "tiny", "size": 32, "iterations": 2}


def day_dataset(folder: Path, count: int = 4, with_night: int = 0) -> Dataset:
    """Bright 48x40 scenes, each with a person box and a car box, and a mask on the first."""
    rng = np.random.default_rng(0)
    samples = []
    for index in range(count + with_night):
        night = index >= count
        image = rng.integers(120, 255, (40, 48, 3), dtype=np.uint8)
        if night:
            image = image // 5
        path = save_image(image, folder / "images" / f"img{index}.png")
        mask = None
        if index == 0:
            mask = save_image(
                np.where(np.arange(48)[None, :] > 20, 255, 0).repeat(40, 0).astype(np.uint8),
                folder / "masks" / "m0.png",
            )
        boxes = (Box(0, 3.0, 4.5, 13.25, 30.0), Box(1, 20.0, 10.0, 44.0, 25.5))
        samples.append(Sample(f"img{index}", path, 48, 40, boxes=boxes, mask=mask, domain="night" if night else "day"))
    return Dataset(samples, ["person", "car"], "tiny")


def night_folder(folder: Path, count: int = 3) -> Path:
    rng = np.random.default_rng(1)
    for index in range(count):
        save_image(rng.integers(0, 60, (36, 52, 3), dtype=np.uint8), folder / f"n{index}.jpg")
    return folder


def run(dataset: Dataset, tmp_path: Path, seed: int = 0, **params: Any) -> tuple[list[Sample], Any]:
    ctx = make_context(tmp_path, seed=seed, step="night")
    generator = MunitGenerator(MunitParams(**params))
    generator.fit(dataset, ctx)
    return list(generator.generate(dataset, ctx)), ctx


def test_translated_copies_keep_boxes_masks_and_size(tmp_path: Path) -> None:
    dataset = day_dataset(tmp_path / "data")
    samples, ctx = run(dataset, tmp_path, target_images=night_folder(tmp_path / "night"), styles=2, **QUICK)
    assert len(samples) == 4 * 2
    parents = {s.id: s for s in dataset}
    for sample in samples:
        parent = parents[sample.provenance.parent]
        assert sample.boxes == parent.boxes  # exactly the same boxes: translation moves no pixel
        assert (sample.width, sample.height, sample.split) == (parent.width, parent.height, parent.split)
        assert load_rgb(sample.image).shape == (40, 48, 3)
        assert sample.image.is_relative_to(ctx.work_dir) and sample.domain == "night"
        assert (sample.provenance.generator, sample.provenance.step) == ("munit", "night")
        details = sample.attributes["night"]
        assert details["style"] in (0, 1) and isinstance(details["style_seed"], int)
        drift = details["label_drift"]
        assert drift["objects"] == 1 and drift["found_source"] <= 1 and isinstance(drift["vanished"], bool)
    with_mask = [s for s in samples if s.provenance.parent == "img0"]
    assert all(s.mask is not None and s.mask.is_relative_to(ctx.work_dir) for s in with_mask)
    assert all(np.array_equal(load_mask(s.mask), load_mask(dataset.samples[0].mask)) for s in with_mask)
    # Two styles of one image differ; the step leaves its model, its training record and the drift tally.
    first, second = (load_rgb(s.image) for s in samples if s.provenance.parent == "img1")
    assert not np.array_equal(first, second)
    training = json.loads((ctx.work_dir / "training.json").read_text())
    assert training["iterations"] == 2 and (ctx.work_dir / "munit_generators.pt").is_file()
    tally = json.loads((ctx.work_dir / "label_drift.json").read_text())
    assert tally["translated"] == 8 and tally["checked_objects"] == 8


def test_same_seed_same_files_and_training_resumes_from_the_checkpoint(tmp_path: Path) -> None:
    dataset = day_dataset(tmp_path / "data", count=2)
    folder = night_folder(tmp_path / "night")
    first, _ = run(dataset, tmp_path / "a", **QUICK, target_images=folder)
    again, _ = run(dataset, tmp_path / "b", **QUICK, target_images=folder)
    assert [load_rgb(s.image).tobytes() for s in first] == [load_rgb(s.image).tobytes() for s in again]
    # Same scratch folder, more iterations: the second fit continues from the first's checkpoint.
    _, ctx = run(dataset, tmp_path / "a", **{**QUICK, "iterations": 3}, target_images=folder)
    training = json.loads((ctx.work_dir / "training.json").read_text())
    assert (training["resumed_from"], training["iterations"], training["stopped_by"]) == (2, 3, "iterations")
    assert training["total_seconds"] >= training["seconds"] > 0


def test_cycle_weight_reaches_the_generator_loss(tmp_path: Path) -> None:
    from fewgen_munit.losses import CYCLE_WEIGHT

    assert MunitParams().cycle_weight == CYCLE_WEIGHT  # the official scene configs' recon_x_cyc_w
    dataset = day_dataset(tmp_path / "data", count=2)
    folder = night_folder(tmp_path / "night")
    losses = {}
    for weight in (0.0, 10.0):
        ctx = make_context(tmp_path / str(weight), step="night")
        generator = MunitGenerator(MunitParams(**{**QUICK, "iterations": 1}, target_images=folder, cycle_weight=weight))
        generator.fit(dataset, ctx)
        assert generator.trainer is not None and generator.trainer.identity()["weights"]["recon_x_cyc"] == weight
        losses[weight] = json.loads((ctx.work_dir / "training.json").read_text())["final"]
    # The same weights and batches: the total differs by exactly the weighted cycle term.
    assert "recon_x_cyc_a" not in losses[0.0]
    cycle = losses[10.0]["recon_x_cyc_a"] + losses[10.0]["recon_x_cyc_b"]
    assert cycle > 0
    assert losses[10.0]["gen_total"] == pytest.approx(losses[0.0]["gen_total"] + 10 * cycle, abs=1e-4)


def test_keep_detail_changes_only_the_fine_detail(tmp_path: Path) -> None:
    dataset = day_dataset(tmp_path / "data", count=1)
    folder = night_folder(tmp_path / "night")
    (plain,), _ = run(dataset, tmp_path / "plain", target_images=folder, image_format="png", **QUICK)
    (detailed,), _ = run(
        dataset, tmp_path / "detail", target_images=folder, image_format="png", keep_detail=True, **QUICK
    )
    plain_pixels, detailed_pixels = (load_rgb(s.image).astype(float) for s in (plain, detailed))
    assert detailed.boxes == plain.boxes and not np.array_equal(plain_pixels, detailed_pixels)
    source = load_rgb(dataset.samples[0].image).astype(float)

    def roughness(pixels: np.ndarray) -> float:
        return float(np.abs(np.diff(pixels, axis=1)).mean())

    # The noise-like source texture comes back: the detailed copy is rougher, towards the source.
    assert roughness(plain_pixels) < roughness(detailed_pixels) <= roughness(source) + 1


def test_target_domain_samples_of_the_input_and_fraction(tmp_path: Path) -> None:
    dataset = day_dataset(tmp_path / "data", count=4, with_night=2)
    samples, _ = run(dataset, tmp_path, fraction=0.5, **QUICK)
    assert len(samples) == 2 and all(s.provenance.parent in {"img0", "img1", "img2", "img3"} for s in samples)


def test_style_image_gives_one_copy_in_that_style(tmp_path: Path) -> None:
    dataset = day_dataset(tmp_path / "data", count=2)
    folder = night_folder(tmp_path / "night")
    samples, _ = run(dataset, tmp_path, target_images=folder, style_image=folder / "n0.jpg", **QUICK)
    assert len(samples) == 2 and all(s.attributes["night"]["style_image"].endswith("n0.jpg") for s in samples)


def test_drop_vanished_leaves_out_copies_that_lost_a_pedestrian(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fewgen_munit import drift

    # Every labelled pedestrian is found in the source and lost in the translation.
    monkeypatch.setattr(drift.HogPeopleDetector, "__init__", lambda self: None)
    monkeypatch.setattr(
        drift,
        "check_drift",
        lambda detector, source, translated, boxes: drift.DriftReport(len(boxes), len(boxes), 0, 0, bool(boxes)),
    )
    dataset = day_dataset(tmp_path / "data", count=3)
    folder = night_folder(tmp_path / "night")
    kept, ctx = run(dataset, tmp_path / "keep", target_images=folder, **QUICK)
    assert all(s.attributes["night"]["label_drift"]["vanished"] for s in kept) and len(kept) == 3
    dropped, ctx = run(dataset, tmp_path / "drop", target_images=folder, drop_vanished=True, **QUICK)
    assert dropped == [] and json.loads((ctx.work_dir / "label_drift.json").read_text())["dropped"] == 3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"size": 34}, "multiple of 4"),
        ({"styles": 2, "style_image": "STYLE"}, "leave styles at 1"),
        ({"style_image": "missing.png"}, "no such file"),
        ({"source_domain": "night"}, "must differ"),
        ({"preset": "huge"}, "preset"),
        ({"drift_detector": "yolo"}, "'hog' or a YOLO weights file"),
    ],
)
def test_invalid_params_are_rejected(params: dict[str, Any], message: str, tmp_path: Path) -> None:
    (tmp_path / "style.png").write_bytes(b"")
    params = {key: str(tmp_path / "style.png") if value == "STYLE" else value for key, value in params.items()}
    with pytest.raises(ValidationError, match=message):
        MunitParams(**params)


def test_missing_target_images_are_usage_errors(tmp_path: Path) -> None:
    dataset = day_dataset(tmp_path / "data", count=2)
    with pytest.raises(UsageError, match="no input sample has domain 'night'"):
        run(dataset, tmp_path, **QUICK)
    with pytest.raises(ValidationError, match="no such folder"):
        run(dataset, tmp_path, target_images=tmp_path / "absent", **QUICK)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images"):
        run(dataset, tmp_path, target_images=tmp_path / "empty", **QUICK)
    with pytest.raises(ValidationError, match=r"no such file: .*absent\.pt"):
        run(dataset, tmp_path, target_images=night_folder(tmp_path / "n"), drift_detector="absent.pt", **QUICK)
    with pytest.raises(UsageError, match="at least 64 for paper"):
        run(dataset, tmp_path, target_images=night_folder(tmp_path / "n"), preset="paper", size=32, iterations=1)


RECIPE = """\
name: tiny_night
seed: 1
dataset:
  format: fewgen
  root: {root}
steps:
  - name: night
    generator: munit
    draw_from: real
    params: {{preset: tiny, size: 32, iterations: 2, styles: 2, target_images: {night}}}
output:
  format: fewgen
"""


def test_the_step_runs_in_a_recipe_and_its_copies_are_exported(tmp_path: Path) -> None:
    dataset = day_dataset(tmp_path / "data")
    dataset.save(tmp_path / "data")
    result = run_recipe(tmp_path, RECIPE.format(root=tmp_path / "data", night=night_folder(tmp_path / "n")))
    synthetic = [s for s in result.dataset if s.is_synthetic]
    assert len(synthetic) == 8 and all(s.domain == "night" for s in synthetic)
    lines = [json.loads(line) for line in (tmp_path / "out" / "dataset" / "samples.jsonl").read_text().splitlines()]
    exported = [line for line in lines if line.get("provenance")]
    assert len(exported) == 8 and all("label_drift" in line["attributes"]["night"] for line in exported)
    assert all(line["boxes"] == [[0, 3.0, 4.5, 13.25, 30.0], [1, 20.0, 10.0, 44.0, 25.5]] for line in exported)


def test_a_bad_target_folder_fails_the_run_in_one_line(tmp_path: Path) -> None:
    dataset = day_dataset(tmp_path / "data", count=2)
    dataset.save(tmp_path / "data")
    (tmp_path / "recipe.yaml").write_text(RECIPE.format(root=tmp_path / "data", night=tmp_path / "nowhere"))
    outcome = CliRunner().invoke(cli, ["run", str(tmp_path / "recipe.yaml"), "--out", str(tmp_path / "out")])
    assert outcome.exit_code == 2 and "no such folder" in outcome.output and "Traceback" not in outcome.output
