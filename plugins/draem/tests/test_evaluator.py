"""The ``anomaly`` evaluator on tiny generated data: outputs, and every kind of bad input a user can bring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fewgen_draem.evaluator import AnomalyEvaluator, AnomalyParams
from pydantic import ValidationError

from fewgen.dataset import Dataset, Sample
from fewgen.errors import UsageError
from fewgen.imageio import load_rgb, save_image
from fewgen.testing import make_context
from fewgen.verdicts import VERDICTS, describe, verdict

FAST = {"preset": "tiny", "size": 32, "epochs": 1, "batch_size": 4, "report_images": 4}


def grey_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle, frequency = rng.uniform(0, np.pi), rng.uniform(3, 8)
    wave = np.sin(2 * np.pi * frequency * (xx * np.cos(angle) + yy * np.sin(angle)))
    return np.clip(128 + 30 * wave + rng.normal(0, 4, (size, size)), 0, 255).astype(np.uint8)


def make_dataset(folder: Path, size: int = 40, good_train: int = 6, good_test: int = 2, defects: int = 2) -> Dataset:
    """Grey textures; test defects are bright discs with their masks."""
    rng = np.random.default_rng(0)
    samples = []
    for index in range(good_train + good_test + defects):
        image = grey_texture(rng, size)
        split = "train" if index < good_train else "test"
        label, mask_path = "good", None
        if index >= good_train + good_test:
            yy, xx = np.mgrid[0:size, 0:size]
            mask = (yy - size / 2) ** 2 + (xx - size / 3) ** 2 < (size / 6) ** 2
            image[mask] = 230
            label = "blob"
            mask_path = save_image(mask.astype(np.uint8) * 255, folder / "masks" / f"{index}.png")
        path = save_image(image, folder / "images" / f"{index}.png")
        samples.append(Sample(f"s{index}", path, size, size, split=split, label=label, mask=mask_path))
    return Dataset(samples, [], "tiny-surface")


def evaluate(dataset: Dataset, tmp_path: Path, **params: object):
    ctx = make_context(tmp_path)
    evaluator = AnomalyEvaluator(AnomalyParams.model_validate({**FAST, **params}))
    return evaluator.evaluate(dataset, ctx), ctx


def test_outputs_metrics_maps_report_and_model(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data")
    metrics, ctx = evaluate(dataset, tmp_path)
    assert metrics["train_images"] == 6 and metrics["test_images"] == 4
    assert metrics["images"] == 4 and metrics["anomalous"] == 2
    for key in ("image_auroc", "image_ap", "image_f1", "pixel_auroc", "pixel_ap", "pixel_f1", "aupro"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert set(metrics["per_type"]) == {"blob"}
    json.dumps(metrics, allow_nan=False)
    predictions = json.loads((ctx.work_dir / "predictions.json").read_text())
    assert set(predictions["samples"]) == {"s6", "s7", "s8", "s9"}
    for record in predictions["samples"].values():
        assert (ctx.work_dir / record["map"]).is_file()
    assert (ctx.work_dir / "report.html").is_file() and (ctx.work_dir / "report" / "roc.png").is_file()
    assert (ctx.work_dir / "model.pt").is_file()
    assert metrics["training"]["iterations"] == 2  # 6 images, batches of 4, one epoch


@pytest.mark.parametrize("baseline", ["aligned", "texture"])
def test_draem_is_compared_with_the_statistical_baseline(tmp_path: Path, baseline: str) -> None:
    dataset = make_dataset(tmp_path / "data", good_test=4, defects=4)
    metrics, ctx = evaluate(dataset, tmp_path, baseline=baseline, resamples=200)
    figures = metrics["baseline"]
    assert figures["alignment"] == baseline and figures["images"] == 8 and figures["anomalous"] == 4
    for key in ("image_auroc", "image_ap", "pixel_auroc", "pixel_ap", "aupro"):
        assert 0.0 <= figures[key] <= 1.0, key
    versus = metrics["comparison"]
    assert versus["resamples"] == 200 and versus["training_seeds"] == 1
    for key in ("image_auroc", "pixel_auroc"):
        entry = versus[key]
        assert entry["draem"] == metrics[key] and entry["baseline"] == figures[key]
        assert entry["delta"] == pytest.approx(metrics[key] - figures[key])
        low, high = entry["delta_ci"]
        assert low <= high
        assert entry["verdict"]["verdict"] in VERDICTS
        assert entry["verdict"]["verdict"] == verdict(entry["delta"], entry["delta_ci"])["verdict"]
    json.dumps(metrics, allow_nan=False)
    predictions = json.loads((ctx.work_dir / "predictions.json").read_text())
    assert predictions["baseline_threshold"] == figures["image_f1_threshold"]
    for record in predictions["samples"].values():
        assert record["baseline_score"] >= 0.0 and isinstance(record["baseline_anomalous"], bool)
    page = (ctx.work_dir / "report.html").read_text()
    assert "DRAEM against the statistical baseline" in page
    assert describe(versus["image_auroc"]["verdict"]) in page
    assert "test-image sampling only" in page


def test_no_good_training_images_is_a_usage_error(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data")
    only_test = dataset.with_samples(s for s in dataset if s.split == "test")
    with pytest.raises(UsageError, match="no real good images in split 'train'"):
        evaluate(only_test, tmp_path)


def test_unreadable_images_are_skipped_and_counted(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data")
    dataset.samples[0].image.write_bytes(b"not an image")
    dataset.samples[7].image.write_bytes(b"\x89PNG broken")
    metrics, ctx = evaluate(dataset, tmp_path)
    assert metrics["train_images"] == 5 and metrics["test_images"] == 3
    assert len(ctx.issues) == 2


def test_mask_of_the_wrong_size_is_reported_and_the_image_keeps_its_label(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data")
    save_image(np.full((10, 12), 255, np.uint8), dataset.samples[9].mask)
    metrics, ctx = evaluate(dataset, tmp_path)
    assert metrics["anomalous"] == 2  # image metrics still count it
    assert metrics["pixel_images"] == 3 and metrics["anomalous_without_mask"] == 1
    assert any("mask is 12x10" in issue.reason for issue in ctx.issues)


@pytest.mark.parametrize("masks", ["of the wrong size", "missing"])
def test_a_test_split_without_pixel_ground_truth_is_a_one_line_error_before_training(
    tmp_path: Path, masks: str
) -> None:
    dataset = make_dataset(tmp_path / "data", good_test=0)  # the test split: two defects only
    defects = [s for s in dataset if s.label == "blob"]
    if masks == "missing":
        dataset = dataset.with_samples(s.derive(mask=None) if s.label == "blob" else s for s in dataset)
    else:
        for sample in defects:
            save_image(np.full((10, 12), 255, np.uint8), sample.mask)
    with pytest.raises(UsageError, match="none of the 2 test images has pixel ground truth") as error:
        evaluate(dataset, tmp_path)
    assert "\n" not in str(error.value)
    assert not list(tmp_path.rglob("*.pt"))  # refused before training, not after it


def test_mixed_grey_and_colour_images_are_handled(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data")
    grey = load_rgb(dataset.samples[1].image)[..., 0]
    save_image(np.stack([grey, grey // 2, grey], axis=-1), dataset.samples[1].image)  # now RGB
    metrics, ctx = evaluate(dataset, tmp_path)
    assert metrics["train_images"] == 6 and not ctx.issues


def test_test_split_without_defects_gives_undefined_metrics_not_errors(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data", defects=0)
    metrics, _ = evaluate(dataset, tmp_path)
    assert metrics["image_auroc"] is None and metrics["pixel_auroc"] is None
    json.dumps(metrics, allow_nan=False)


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        AnomalyParams.model_validate({"size": 100})
    with pytest.raises(ValueError, match="training needs an end"):
        AnomalyParams.model_validate({"epochs": None})
    with pytest.raises(ValueError, match="must differ"):
        AnomalyParams.model_validate({"test_split": "train"})


def test_changed_textures_under_the_same_path_refuse_the_checkpoint_in_one_line(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data")
    textures = tmp_path / "textures"
    save_image(np.full((16, 16, 3), 40, np.uint8), textures / "dark.png")
    evaluate(dataset, tmp_path, textures=str(textures))  # leaves its checkpoint in the step's scratch folder
    save_image(np.full((16, 16, 3), 220, np.uint8), textures / "dark.png")
    with pytest.raises(UsageError, match=r"other settings.*textures.*delete it to train afresh") as error:
        evaluate(dataset, tmp_path, textures=str(textures))
    assert "\n" not in str(error.value)


def test_missing_textures_folder_is_refused_with_the_parameters(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "data")
    with pytest.raises(ValidationError, match="no such folder"):
        evaluate(dataset, tmp_path, textures=str(tmp_path / "nowhere"))
