"""The yolo evaluator end to end on tiny generated data: plumbing and metric keys, not accuracy.

One real training run (1 epoch, 64 px) through the engine, as a user runs it; the values
of a detector trained this little are meaningless, which is why benchmarks, not tests,
measure them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fewgen_yolo.evaluator import YoloParams, _splits
from pydantic import ValidationError

from fewgen.dataset import Box, Dataset, Provenance, Sample
from fewgen.errors import UsageError
from fewgen.imageio import save_image


def squares_dataset(folder: Path, count: int = 14, size: int = 64) -> Dataset:
    """Grey images, each with one or two bright squares labelled 'square'."""
    rng = np.random.default_rng(3)
    samples = []
    for index in range(count):
        image = np.full((size, size, 3), 60, dtype=np.uint8)
        boxes = []
        for _ in range(1 + index % 2):
            x, y = (int(v) for v in rng.integers(4, size - 24, 2))
            side = int(rng.integers(12, 20))
            image[y : y + side, x : x + side] = (230, 200, 40)
            boxes.append(Box(0, x, y, x + side, y + side))
        split = "test" if index < 4 else "val" if index < 6 else "train"
        path = save_image(image, folder / "images" / f"sq{index:02d}.png")
        samples.append(Sample(f"sq{index:02d}", path, size, size, split=split, boxes=tuple(boxes)))
    dataset = Dataset(samples, ["square"], "squares")
    dataset.save(folder)
    return dataset


def test_params_refuse_weights_that_would_be_downloaded_and_reserved_train_args():
    with pytest.raises(ValidationError, match="never downloads weights"):
        YoloParams(model="yolo11n.pt")
    with pytest.raises(ValidationError, match="model YAML"):
        YoloParams(model="yolo11n")
    with pytest.raises(ValidationError, match="'epochs'"):
        YoloParams(train_args={"epochs": 3})
    with pytest.raises(ValidationError, match="test_split must differ"):
        YoloParams(test_split="train")
    assert YoloParams(train_args={"mosaic": 0.0}).train_args == {"mosaic": 0.0}


def test_splits_need_real_test_and_synthetic_training_samples(tmp_path):
    dataset = squares_dataset(tmp_path / "data")
    with pytest.raises(UsageError, match="no synthetic samples"):
        _splits(dataset, YoloParams())
    synthetic = dataset.samples[-1].derive(id="aug/x", provenance=Provenance("augment", "aug", 0, "sq13"))
    without_test = dataset.with_samples([s for s in dataset if s.split != "test"] + [synthetic])
    with pytest.raises(UsageError, match="no real samples in the test split"):
        _splits(without_test, YoloParams())
    # Synthetic samples never leak into the test split's real images.
    leaked = synthetic.derive(id="aug/y", split="test")
    found = _splits(dataset.with_samples([*dataset.samples, synthetic, leaked]), YoloParams())
    assert all(not s.is_synthetic for s in found["test"]) and found["synthetic"] == [synthetic]


@pytest.mark.slow
def test_recipe_with_yolo_step_writes_metrics_and_report(tmp_path, monkeypatch, capfd):
    from fewgen.cache import StepCache
    from fewgen.engine import Engine
    from fewgen.plugins import load_registry
    from fewgen.recipe import load_recipe

    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics"))
    squares_dataset(tmp_path / "data")
    (tmp_path / "recipe.yaml").write_text(
        """
name: tiny-detect
dataset: {format: fewgen, root: data}
steps:
  - name: flip
    generator: augment
    params: {preset: flip}
  - name: detect
    evaluator: yolo
    params: {model: yolov8n.yaml, epochs: 1, schedule: same_steps, imgsz: 64, batch: 4, bootstrap: 100,
             report_images: 2}
output: {format: fewgen}
"""
    )
    registry = load_registry()
    loaded = load_recipe(tmp_path / "recipe.yaml", registry)
    engine = Engine(registry, cache=StepCache(tmp_path / "cache"), show_progress=False, echo=lambda _: None)
    result = engine.run(loaded, tmp_path / "out")
    # stdout belongs to results (`fewgen bench` prints JSON there): ultralytics' logs go to stderr.
    assert capfd.readouterr().out == ""
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())["detect"]
    assert set(metrics) == {"settings", "baseline", "augmented", "delta", "crosscheck"}
    assert metrics["settings"]["train_images"] == {"real": 8, "synthetic": 8}
    assert metrics["settings"]["test_images"] == 4
    # same_steps: 8 real images train 2 epochs, as many batches as 16 images for 1 epoch.
    assert metrics["settings"]["baseline_epochs"] == 2
    for variant in ("baseline", "augmented"):
        assert 0.0 <= metrics[variant]["mAP50"]["mean"] <= 1.0
        assert set(metrics["crosscheck"][variant]) >= {"ultralytics", "coco_map50", "map50"}
        # Our mAP and pycocotools' agree on the same predictions.
        assert metrics["crosscheck"][variant]["abs_diff_map50"] < 1e-6
    low, high = metrics["delta"]["map50"]["delta_ci"]
    assert low <= metrics["delta"]["map50"]["delta"] <= high
    reports = tmp_path / "out" / "reports" / "detect"
    assert (reports / "report.html").is_file()
    assert sorted(p.name for p in (reports / "models").iterdir()) == ["augmented-seed0.pt", "baseline-seed0.pt"]
    predictions = json.loads((reports / "predictions" / "augmented-seed0.json").read_text())
    assert [p["sample"] for p in predictions] == ["sq00", "sq01", "sq02", "sq03"]
    assert result.manifest["steps"][1]["component"] == "yolo"


def test_ultralytics_import_leaves_pillow_errors_alone(tmp_path):
    from fewgen_yolo.training import prepare_ultralytics

    from fewgen.imageio import CorruptImage, checked_size

    prepare_ultralytics(tmp_path / "ultralytics")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    # Without the fix, ultralytics' patched Image.open tries to install a HEIF plugin and
    # raises ModuleNotFoundError offline instead of Pillow's own error.
    with pytest.raises(CorruptImage):
        checked_size(broken)
