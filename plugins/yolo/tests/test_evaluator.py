"""The yolo evaluator end to end on tiny generated data: plumbing and metric keys, not accuracy.

One real training run (1 epoch, 64 px) through the engine, as a user runs it; the values
of a detector trained this little are meaningless, which is why benchmarks, not tests,
measure them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from fewgen_yolo.evaluator import YoloEvaluator, YoloParams, _splits, schedule_epochs
from pydantic import ValidationError

from fewgen.api import StepContext
from fewgen.dataset import Box, Dataset, Provenance, Sample
from fewgen.errors import UsageError
from fewgen.imageio import save_image
from fewgen.testing import run_recipe


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


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def test_params_refuse_weights_that_would_bypass_the_record(tmp_path):
    # A cfg file's arguments could name any weights; pretrained weights must be a .pt that exists.
    with pytest.raises(ValidationError, match="cfg file"):
        YoloParams(train_args={"cfg": "settings.yaml"})
    with pytest.raises(ValidationError, match="'model'"):
        YoloParams(train_args={"model": "other.pt"})
    with pytest.raises(ValidationError, match="never downloads weights"):
        YoloParams(train_args={"pretrained": "yolo11n.pt"})
    with pytest.raises(ValidationError, match="true, false or a path to"):
        YoloParams(train_args={"pretrained": "weights.bin"})
    weights = tmp_path / "start.pt"
    weights.write_bytes(b"not loaded here")
    assert YoloParams(train_args={"pretrained": str(weights)}).train_args["pretrained"] == str(weights)
    assert YoloParams(train_args={"pretrained": False}).train_args == {"pretrained": False}


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """An untrained yolo11n saved as a weights file (nothing downloaded)."""
    from fewgen_yolo.training import prepare_ultralytics

    folder = tmp_path_factory.mktemp("weights")
    model = prepare_ultralytics(folder / "ultralytics").YOLO("yolo11n.yaml")
    model.save(folder / "tiny.pt")
    return folder / "tiny.pt"


def step_context(tmp_path: Path) -> StepContext:
    (tmp_path / "work").mkdir()
    (tmp_path / "scratch").mkdir()
    return StepContext(
        "detect", 0, tmp_path / "work", "cpu", logging.getLogger("test"), False, scratch_dir=tmp_path / "scratch"
    )


def with_synthetic(dataset: Dataset) -> Dataset:
    train = [s for s in dataset if s.split == "train"]
    synthetic = [s.derive(id=f"aug/{s.id}", provenance=Provenance("augment", "aug", 0, s.id)) for s in train]
    return dataset.with_samples([*dataset.samples, *synthetic])


def test_named_weights_are_recorded_before_ultralytics_loads_anything(tmp_path, monkeypatch, tiny_weights):
    from fewgen_yolo import training

    class Stop(Exception):
        pass

    def stop(config_dir):
        raise Stop

    monkeypatch.setattr(training, "prepare_ultralytics", stop)
    pretrained = tmp_path / "pretrained.pt"
    pretrained.write_bytes(b"any bytes: recorded, never loaded in this test")
    ctx = step_context(tmp_path)
    params = YoloParams(model=str(tiny_weights), train_args={"pretrained": str(pretrained)})
    with pytest.raises(Stop):
        YoloEvaluator(params).evaluate(with_synthetic(squares_dataset(tmp_path / "data")), ctx)
    assert ctx.files_read == [
        {"path": str(tiny_weights.resolve()), "role": "yolo weights", "sha256": sha256(tiny_weights)},
        {"path": str(pretrained.resolve()), "role": "yolo pretrained weights", "sha256": sha256(pretrained)},
    ]


def test_an_ultralytics_model_name_is_no_file_to_record(tmp_path, monkeypatch):
    from fewgen_yolo.training import named_files

    monkeypatch.chdir(tmp_path)
    assert named_files("yolo11n.yaml", {}) == []
    (tmp_path / "mine.yaml").write_text("nc: 1\n")
    assert named_files("mine.yaml", {"pretrained": True}) == [(Path("mine.yaml"), "yolo model definition")]


@pytest.mark.slow
def test_fine_tuning_from_a_pt_records_its_sha256(tmp_path, monkeypatch, tiny_weights):
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics"))
    ctx = step_context(tmp_path)
    params = YoloParams(model=str(tiny_weights), epochs=1, imgsz=64, batch=4, bootstrap=100, report_images=0)
    metrics = YoloEvaluator(params).evaluate(with_synthetic(squares_dataset(tmp_path / "data")), ctx)
    assert metrics["settings"]["model"] == str(tiny_weights)
    assert ctx.files_read == [
        {"path": str(tiny_weights.resolve()), "role": "yolo weights", "sha256": sha256(tiny_weights)}
    ]


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
    assert all(not s.is_synthetic for s in found["test"]) and found["variants"] == {"augmented": [synthetic]}


def test_variants_take_the_samples_of_the_steps_they_name(tmp_path):
    dataset = squares_dataset(tmp_path / "data")
    last = dataset.samples[-1]
    flipped = [last.derive(id=f"flip/{i}", provenance=Provenance("augment", "flip", 0, last.id)) for i in range(3)]
    pasted = [last.derive(id=f"paste/{i}", provenance=Provenance("copy_paste", "paste", 0, last.id)) for i in range(2)]
    # Interleaved in the dataset: each variant keeps dataset order, whatever order it names its steps in.
    mixed = dataset.with_samples([*dataset.samples, pasted[0], *flipped, pasted[1]])
    params = YoloParams(variants={"flip": ["flip"], "paste": ["paste"], "all": ["paste", "flip"]})
    found = _splits(mixed, params)
    assert found["variants"] == {"flip": flipped, "paste": pasted, "all": [pasted[0], *flipped, pasted[1]]}
    default = _splits(mixed, YoloParams())
    assert default["variant_steps"] == {"augmented": ["flip", "paste"]}
    with pytest.raises(UsageError, match="variant 'x': step 'other' made no synthetic samples"):
        _splits(mixed, YoloParams(variants={"x": ["other"]}))


def test_real_labels_keep_templates_out_of_the_detectors_data(tmp_path):
    dataset = squares_dataset(tmp_path / "data")
    labelled = [s.derive(label="defective") for s in dataset]
    templates = [s.derive(id=f"{s.id}_temp", label="good", boxes=()) for s in dataset]
    last = labelled[-1]
    synthetic = last.derive(id="paste/0", provenance=Provenance("copy_paste", "paste", 0, templates[-1].id))
    mixed = dataset.with_samples([*labelled, *templates, synthetic])
    found = _splits(mixed, YoloParams(real_labels=["defective"]))
    assert all(s.label == "defective" for part in ("train", "val", "test") for s in found[part])
    assert len(found["train"]) == 8 and found["variants"] == {"augmented": [synthetic]}
    assert len(_splits(mixed, YoloParams())["train"]) == 16


@pytest.mark.parametrize(
    "variants",
    [{"baseline": ["flip"]}, {"x": []}, {"x": ["flip", "flip"]}, {"1x": ["flip"]}, {"a/b": ["flip"]}, {}],
)
def test_bad_variants_are_refused(variants):
    with pytest.raises(ValidationError):
        YoloParams(variants=variants)


def test_defaults_are_equal_steps_and_three_seeds():
    params = YoloParams()
    assert params.schedule == "same_steps" and params.seeds == [0, 1, 2]
    with pytest.raises(ValidationError, match="seeds must differ"):
        YoloParams(seeds=[0, 0])


def test_classes_keep_and_renumber_the_chosen_boxes(tmp_path):
    from fewgen_yolo.evaluator import only_classes

    image = tmp_path / "x.png"
    sample = Sample("a", image, 64, 64, boxes=(Box(0, 1, 1, 5, 5), Box(2, 2, 2, 9, 9), Box(1, 3, 3, 7, 7)))
    dataset = Dataset([sample], ["car", "person", "bike"], "d")
    chosen = only_classes(dataset, ["bike", "person"])
    assert chosen.classes == ["bike", "person"]
    assert chosen.samples[0].boxes == (Box(0, 2, 2, 9, 9), Box(1, 3, 3, 7, 7))
    with pytest.raises(UsageError, match="class 'dog' is not a class of the dataset"):
        only_classes(dataset, ["dog"])


def test_same_steps_arithmetic():
    # 20 real images, + 60 rotated, + 20 pasted, batch 8: 3, 10 and 5 batches an epoch.
    sizes = {"baseline": 20, "rot90": 80, "paste": 40}
    assert schedule_epochs(sizes, 60, 8, "same_epochs") == {"baseline": 60, "rot90": 60, "paste": 60}
    epochs = schedule_epochs(sizes, 60, 8, "same_steps")
    assert epochs == {"baseline": 200, "rot90": 60, "paste": 120}
    steps = {model: epochs[model] * -(-sizes[model] // 8) for model in sizes}
    assert steps == {"baseline": 600, "rot90": 600, "paste": 600}
    # Batches that do not divide evenly: the nearest whole number of epochs, never fewer than asked.
    odd = schedule_epochs({"baseline": 7, "big": 23}, 10, 4, "same_steps")
    assert odd == {"baseline": 30, "big": 10}  # 2 and 6 batches an epoch
    assert schedule_epochs({"baseline": 9, "big": 10}, 5, 4, "same_steps") == {"baseline": 5, "big": 5}


def test_recipe_variants_naming_unknown_steps_are_one_line_errors(tmp_path):
    from fewgen.plugins import load_registry
    from fewgen.recipe import load_recipe

    squares_dataset(tmp_path / "data")
    registry = load_registry()
    template = """
name: variants
dataset: {{format: fewgen, root: data}}
steps:
  - name: flip
    generator: augment
    params: {{preset: flip}}
  - name: stats
    evaluator: dataset_stats
  - name: detect
    evaluator: yolo
    params:
      variants:
        {variant}
output: {{format: fewgen}}
"""
    for variant, message in (
        ("flipped: [flop]", "names step 'flop', which is not a generator step before this one (did you mean 'flip'?)"),
        ("counted: [stats]", "names step 'stats', which is not a generator step before this one"),
        ("fine: [flip, detect]", "names step 'detect', which is not a generator step before this one"),
    ):
        (tmp_path / "recipe.yaml").write_text(template.format(variant=variant))
        with pytest.raises(UsageError) as caught:
            load_recipe(tmp_path / "recipe.yaml", registry)
        text = str(caught.value)
        assert "\n" not in text and message in text and "recipe.yaml:1" in text
    (tmp_path / "recipe.yaml").write_text(template.format(variant="flipped: [flip]"))
    assert load_recipe(tmp_path / "recipe.yaml", registry).step_params[2].variants == {"flipped": ["flip"]}


@pytest.mark.slow
def test_recipe_with_yolo_step_writes_metrics_and_report(tmp_path, monkeypatch, capfd):

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
    params: {model: yolov8n.yaml, epochs: 1, imgsz: 64, batch: 4, bootstrap: 100, seeds: [0],
             report_images: 2}
output: {format: fewgen}
"""
    )
    result = run_recipe(tmp_path, (tmp_path / "recipe.yaml").read_text())
    # stdout belongs to results (`fewgen bench` prints JSON there): ultralytics' logs go to stderr.
    assert capfd.readouterr().out == ""
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())["detect"]
    assert set(metrics) == {"settings", "baseline", "variants", "bootstrap", "crosscheck", "pairwise"}
    assert metrics["settings"]["train_images"] == {"real": 8, "synthetic": 8}
    assert metrics["settings"]["test_images"] == 4
    # same_steps (the default): 8 real images train 2 epochs, as many batches as 16 images for 1 epoch.
    assert metrics["settings"]["model_epochs"] == {"baseline": 2, "augmented": 1}
    assert metrics["settings"]["optimizer_steps"] == {"baseline": 4, "augmented": 4}
    assert "one training seed" in metrics["settings"]["uncertainty"]
    for model, figures in (("baseline", metrics["baseline"]), ("augmented", metrics["variants"]["augmented"])):
        assert 0.0 <= figures["mAP50"]["mean"] <= 1.0
        assert set(metrics["crosscheck"][model]) >= {"ultralytics", "coco_map50", "map50"}
        # Our mAP and pycocotools' agree on the same predictions.
        assert metrics["crosscheck"][model]["abs_diff_map50"] < 1e-6
    delta = metrics["variants"]["augmented"]["delta"]["map50"]
    low, high = delta["delta_ci"]
    assert low <= delta["delta"] <= high
    assert metrics["variants"]["augmented"]["verdict"]["verdict"] in ("helps", "hurts", "no measurable effect")
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
