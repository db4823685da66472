"""The ``psgan`` recipe step: parameters, the step through fewgen's engine, and clean errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fewgen_psgan.generator import PsganGenerator, PsganParams
from pydantic import ValidationError

from fewgen.dataset import Box, Dataset, Sample
from fewgen.errors import UsageError
from fewgen.imageio import load_rgb, save_image
from fewgen.placement import intersects
from fewgen.testing import make_context, run_recipe

Street = Callable[..., Dataset]

RECIPE = """\
name: psgan_tiny
seed: 3
device: cpu
dataset:
  format: fewgen
  root: data
steps:
  - name: paint
    generator: psgan
    params: {PARAMS}
output:
  format: fewgen
"""
FAST = "class: person, preset: tiny, iterations: 2, minutes: null, min_height: 10, min_pairs: 4, per_image: 2"


@pytest.fixture(autouse=True)
def only_needed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    # Importing every installed plugin (detectors, review tools) costs seconds and tests nothing here.
    monkeypatch.setenv("FEWGEN_LOAD_PLUGINS", "psgan,fewgen.formats")


def run_psgan(tmp_path: Path, params: str, out: str = "out"):
    """The recipe with these step parameters, with a cache of its own per output folder (fewgen.testing)."""
    return run_recipe(tmp_path, RECIPE.replace("PARAMS", params), out=out)


def test_the_step_adds_painted_copies_with_new_boxes_and_provenance(tmp_path: Path, make_street: Street) -> None:
    source = make_street(tmp_path / "data", count=6)
    result = run_psgan(tmp_path, FAST)
    real = {s.id: s for s in source}
    synthetic = [s for s in result.dataset if s.is_synthetic]
    assert len(synthetic) == 5  # every training image (the sixth is val)
    for sample in synthetic:
        parent = real[sample.provenance.parent]
        assert sample.id == f"paint/{parent.id}" and sample.split == parent.split == "train"
        assert (sample.provenance.generator, sample.provenance.step) == ("psgan", "paint")
        assert sample.boxes[: len(parent.boxes)] == parent.boxes  # old boxes unchanged
        new = sample.boxes[len(parent.boxes) :]
        assert 1 <= len(new) <= 2 and all(box.cls == 0 for box in new)
        assert all(not intersects(a, b) for a in new for b in parent.boxes)
        assert sample.attributes["paint"]["inserted"] == [
            [0, *(round(v, 2) for v in (b.x1, b.y1, b.x2, b.y2))] for b in new
        ]
        painted, original = load_rgb(sample.image), load_rgb(parent.image)
        for box in parent.boxes:  # existing objects keep their pixels
            x1, y1, x2, y2 = (round(v) for v in (box.x1, box.y1, box.x2, box.y2))
            assert (painted[y1:y2, x1:x2] == original[y1:y2, x1:x2]).all()
        assert (painted != original).any()
    step = result.manifest["steps"][0]
    assert step["new_samples"] == 5 and step["params"]["class_"] == "person"
    model = next((tmp_path / "cache-out").rglob("training.json"))
    assert json.loads(model.read_text())["training"]["iterations"] == 2


def test_the_same_seed_paints_the_same_images(tmp_path: Path, make_street: Street) -> None:
    make_street(tmp_path / "data", count=3)
    first = run_psgan(tmp_path, FAST, "first")
    second = run_psgan(tmp_path, FAST, "second")
    assert not second.manifest["steps"][0]["timing"]["cached"]
    pairs = zip(sorted(first.dataset, key=lambda s: s.id), sorted(second.dataset, key=lambda s: s.id), strict=True)
    for a, b in pairs:
        assert a.boxes == b.boxes and a.image.read_bytes() == b.image.read_bytes()


def test_class_by_id_or_name_and_the_class_keyword() -> None:
    assert PsganParams.model_validate({"class": 1}).class_ == 1
    assert PsganParams.model_validate({"class_": "car"}).class_ == "car"  # as the manifest records it
    with pytest.raises(ValidationError, match="unknown preset 'huge'"):
        PsganParams.model_validate({"preset": "huge"})
    with pytest.raises(ValidationError, match="needs an end"):
        PsganParams.model_validate({"iterations": None})
    with pytest.raises(ValidationError, match="Extra inputs"):
        PsganParams.model_validate({"clas": 0})


def fit(dataset: Dataset, tmp_path: Path, **params: object) -> Path:
    """The step's training record, after fitting on ``dataset``."""
    generator = PsganGenerator(PsganParams.model_validate({"preset": "tiny", "iterations": 1, **params}))
    ctx = make_context(tmp_path)
    generator.fit(dataset, ctx)
    return ctx.work_dir / "model" / "training.json"


@pytest.mark.parametrize("gan_loss", ["bce", "lsgan"])
def test_the_image_gan_loss_reaches_the_trainer(tmp_path: Path, make_street: Street, gan_loss: str) -> None:
    assert PsganParams().gan_loss == "bce"  # the official --no_lsgan
    dataset = make_street(tmp_path / "data", count=4)
    record = fit(dataset, tmp_path, min_height=10, min_pairs=4, gan_loss=gan_loss)
    assert json.loads(record.read_text())["gan_loss"] == gan_loss
    with pytest.raises(ValidationError, match="'bce' or 'lsgan'"):
        PsganParams.model_validate({"gan_loss": "hinge"})


def test_a_class_without_boxes_is_a_clean_error(tmp_path: Path, make_street: Street) -> None:
    dataset = make_street(tmp_path / "data", count=2)
    dataset.classes.append("bicycle")
    with pytest.raises(UsageError, match=r"no real sample .* box of class 'bicycle'"):
        fit(dataset, tmp_path, **{"class": "bicycle"})
    with pytest.raises(UsageError, match=r"no real sample .* class '7'"):
        fit(dataset, tmp_path, **{"class": 7})
    with pytest.raises(UsageError, match="'truck' is not a class of the dataset"):
        fit(dataset, tmp_path, **{"class": "truck"})


def test_too_few_boxes_to_train_is_a_clean_error(tmp_path: Path, make_street: Street) -> None:
    dataset = make_street(tmp_path / "data", count=2)
    with pytest.raises(UsageError, match=r"2 usable boxes of class 'person' to train on, fewer than min_pairs 8"):
        fit(dataset, tmp_path, min_height=20)


def test_defects_are_painted_into_defect_free_templates_only(tmp_path: Path) -> None:
    """The DeepPCB use: defect boxes on 'defective' boards teach the model; 'good' templates get the new defects."""
    rng = np.random.default_rng(0)
    samples = []
    for index in range(6):
        board = np.full((64, 64, 3), 20, np.uint8)
        board[:, 8::16] = 230  # copper traces
        boxes: tuple[Box, ...] = ()
        label = "good"
        if index % 2:
            x, y = int(rng.integers(4, 40)), int(rng.integers(4, 40))
            board[y : y + 12, x : x + 12] = 120
            boxes, label = (Box(1, float(x), float(y), x + 12.0, y + 12.0),), "defective"
        path = save_image(board, tmp_path / "boards" / f"b{index}.png")
        samples.append(Sample(f"b{index}", path, 64, 64, boxes=boxes, label=label))
    dataset = Dataset(samples, ["open", "short"], "pcb")
    params = {"class": "short", "preset": "tiny", "iterations": 1, "min_height": 8, "min_pairs": 3}
    generator = PsganGenerator(PsganParams.model_validate({**params, "into_labels": ["good"]}))
    ctx = make_context(tmp_path)
    generator.fit(dataset, ctx)
    new = list(generator.generate(dataset, ctx))
    assert sorted(s.provenance.parent for s in new) == ["b0", "b2", "b4"]
    assert all(s.label == "good" and [b.cls for b in s.boxes] == [1] for s in new)
    assert all(8 <= s.boxes[0].height <= 12.5 for s in new)  # sizes as the real defects'
