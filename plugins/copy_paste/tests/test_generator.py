"""The ``copy_paste`` step on tiny boards drawn in tmp_path: exact labels and masks, choices, seeds, the engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fewgen_copy_paste.generator import CopyPasteGenerator, CopyPasteParams
from pydantic import ValidationError

from fewgen.dataset import Box, Dataset, Sample
from fewgen.errors import UsageError
from fewgen.imageio import load_mask, load_rgb, save_image
from fewgen.placement import intersects
from fewgen.plugins import load_registry
from fewgen.testing import make_context, run_recipe

WIDTH, HEIGHT = 64, 48


@pytest.fixture(autouse=True)
def only_needed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    # Importing every installed plugin (detectors, GANs) costs seconds and tests nothing here.
    monkeypatch.setenv("FEWGEN_LOAD_PLUGINS", "copy_paste,fewgen.formats")


def make_boards(folder: Path, count: int = 6, masks: bool = False, unlabelled: int = 0) -> Dataset:
    """Flat boards of distinct greys; the even ones 'defective' with a class-0 and a class-1 object (each
    coloured by its board, an ellipse inside its box in the mask when ``masks``), the odd ones 'good' and
    empty; ``unlabelled`` more empty boards without a label."""
    samples = []
    for index in range(count + unlabelled):
        image = np.full((HEIGHT, WIDTH, 3), 40 + 8 * index, np.uint8)
        mask = np.zeros((HEIGHT, WIDTH), np.uint8)
        boxes: tuple[Box, ...] = ()
        label = None if index >= count else ("defective", "good")[index % 2]
        if label == "defective":
            x, y = 4 + 3 * index, 5 + index
            boxes = (Box(0, float(x), float(y), x + 12.0, y + 8.0), Box(1, x + 24.0, y + 14.0, x + 32.0, y + 30.0))
            for box, colour in zip(boxes, ((220, 30 + 10 * index, 30), (30, 220, 30 + 10 * index)), strict=True):
                x1, y1, x2, y2 = (int(v) for v in (box.x1, box.y1, box.x2, box.y2))
                image[y1:y2, x1:x2] = colour
                rows, columns = np.mgrid[y1:y2, x1:x2]
                centre_y, centre_x = (y1 + y2 - 1) / 2, (x1 + x2 - 1) / 2
                inside = ((rows - centre_y) / ((y2 - y1) / 2)) ** 2 + ((columns - centre_x) / ((x2 - x1) / 2)) ** 2 <= 1
                mask[y1:y2, x1:x2][inside] = 255
        path = save_image(image, folder / "images" / f"b{index}.png")
        mask_path = save_image(mask, folder / "masks" / f"b{index}.png") if masks and index % 3 != 1 else None
        samples.append(Sample(f"b{index}", path, WIDTH, HEIGHT, boxes=boxes, mask=mask_path, label=label))
    dataset = Dataset(samples, ["open", "short"], "boards")
    dataset.save(folder)
    return dataset


def paste(dataset: Dataset, tmp_path: Path, seed: int = 0, **params: Any) -> list[Sample]:
    generator = CopyPasteGenerator(CopyPasteParams.model_validate(params))
    ctx = make_context(tmp_path, seed=seed, step=f"cp{len(list(tmp_path.iterdir()))}")
    new = list(generator.generate(dataset, ctx))
    assert ctx.issues == []
    return new


def pasted(sample: Sample) -> list[dict[str, Any]]:
    return sample.attributes[next(iter(sample.attributes))]["pasted"]


def as_box(record: list[float]) -> Box:
    return Box(int(record[0]), *map(float, record[1:]))


def expected_boxes(target: Sample, records: list[dict[str, Any]], min_visible: float) -> list[Box]:
    """The labels recomputed on whole-image pixel masks: the target's boxes and the pastes in order, each
    hidden by every later paste (box crops: the whole pasted rectangle is the object)."""

    def region(box: Box) -> np.ndarray:
        pixels = np.zeros((HEIGHT, WIDTH), bool)
        x1, y1, x2, y2 = (
            min(max(round(v), 0), limit)
            for v, limit in zip((box.x1, box.y1, box.x2, box.y2), (WIDTH, HEIGHT, WIDTH, HEIGHT), strict=True)
        )
        pixels[y1:y2, x1:x2] = True
        return pixels

    layers = [(box, region(box), int(region(box).sum())) for box in target.boxes]
    layers += [
        (as_box(r["box"]), region(as_box(r["box"])), int(as_box(r["box"]).width * as_box(r["box"]).height))
        for r in records
    ]
    boxes = []
    for position, (box, pixels, area) in enumerate(layers):
        seen = pixels.copy()
        for _, later, _ in layers[position + 1 :]:
            seen &= ~later
        if seen.sum() == area:
            boxes.append(box)
            continue
        if seen.sum() == 0 or seen.sum() < min_visible * area:
            continue
        rows, columns = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
        shrunk = Box(
            box.cls,
            max(box.x1, columns[0]),
            max(box.y1, rows[0]),
            min(box.x2, columns[-1] + 1.0),
            min(box.y2, rows[-1] + 1.0),
        )
        if shrunk.width >= 2 and shrunk.height >= 2:
            boxes.append(shrunk)
    return boxes


def test_boxes_are_exact_after_clipping_and_occlusion(tmp_path: Path) -> None:
    dataset = make_boards(tmp_path / "data", count=8)
    by_id = {s.id: s for s in dataset}
    seen = {"clipped": 0, "shrunk": 0, "removed": 0}
    for seed in range(12):
        for sample in paste(dataset, tmp_path, seed=seed, per_image=[3, 6], scale=[1.5, 3.0]):
            target = by_id[sample.provenance.parent]
            records = pasted(sample)
            assert sample.boxes == tuple(expected_boxes(target, records, 0.5))
            assert all(0 <= b.x1 < b.x2 <= WIDTH and 0 <= b.y1 < b.y2 <= HEIGHT for b in sample.boxes)
            summary = sample.attributes[next(iter(sample.attributes))]
            seen["shrunk"] += summary["shrunk"]
            seen["removed"] += summary["removed"]
            seen["clipped"] += sum(r["box"] != r["label"] for r in records)
    assert all(count > 5 for count in seen.values()), seen  # every case happened, many times


def test_pasted_pixels_are_the_source_crop_and_nothing_else_changes(tmp_path: Path) -> None:
    dataset = make_boards(tmp_path / "data", count=4)
    by_id = {s.id: s for s in dataset}
    for sample in paste(dataset, tmp_path, scale=[1.0, 1.0], flip=False):
        (record,) = pasted(sample)
        target, source = load_rgb(by_id[sample.provenance.parent].image), load_rgb(by_id[record["source"]].image)
        _, sx1, sy1, sx2, sy2 = (int(v) for v in record["source_box"])
        _, x1, y1, x2, y2 = (int(v) for v in record["box"])
        crop = np.zeros((y2 - y1, x2 - x1, 3), np.uint8)
        crop[:] = source[sy1:sy2, sx1:sx2]
        expected = target.copy()
        visible = (slice(max(y1, 0), min(y2, HEIGHT)), slice(max(x1, 0), min(x2, WIDTH)))
        expected[visible] = crop[max(-y1, 0) : crop.shape[0] - max(y2 - HEIGHT, 0),
                                 max(-x1, 0) : crop.shape[1] - max(x2 - WIDTH, 0)]  # fmt: skip
        assert np.array_equal(load_rgb(sample.image), expected)
        assert record["source"] != sample.provenance.parent


def test_masks_are_the_target_mask_or_the_pasted_shapes(tmp_path: Path) -> None:
    dataset = make_boards(tmp_path / "data", count=6, masks=True)
    by_id = {s.id: s for s in dataset}
    new = paste(dataset, tmp_path, per_image=[1, 3], scale=[1.0, 1.0], flip=False)
    assert {s.mask is None for s in new} == {False}  # written also for targets without one (b1, b4)
    cutouts = set()
    for sample in new:
        target = by_id[sample.provenance.parent]
        expected = load_mask(target.mask) > 0 if target.mask else np.zeros((HEIGHT, WIDTH), bool)
        for record in pasted(sample):
            source = by_id[record["source"]]
            _, sx1, sy1, sx2, sy2 = (int(v) for v in record["source_box"])
            if source.mask is not None:
                shape = load_mask(source.mask)[sy1:sy2, sx1:sx2] > 0
            else:  # b4 has boxes but no mask: its instances are whole box crops
                shape = np.ones((sy2 - sy1, sx2 - sx1), bool)
            assert record["cutout"] == ("mask" if source.mask is not None else "box")
            cutouts.add(record["cutout"])
            _, x1, y1, _, _ = (int(v) for v in record["box"])
            canvas = np.zeros((HEIGHT + 2 * 40, WIDTH + 2 * 40), bool)
            canvas[40 + y1 : 40 + y1 + shape.shape[0], 40 + x1 : 40 + x1 + shape.shape[1]] = shape
            expected |= canvas[40:-40, 40:-40]
        written = load_mask(sample.mask)
        assert set(np.unique(written)) <= {0, 255}
        assert np.array_equal(written > 0, expected)
    assert cutouts == {"mask", "box"}


def test_learned_placement_never_overlaps_and_keeps_the_targets_boxes(tmp_path: Path) -> None:
    dataset = make_boards(tmp_path / "data", count=8)
    by_id = {s.id: s for s in dataset}
    new = []
    for seed in range(4):
        new += paste(dataset, tmp_path, seed=seed, placement="learned", per_image=4)
    assert sum(len(pasted(s)) for s in new) > 30
    for sample in new:
        target = by_id[sample.provenance.parent]
        assert sample.boxes[: len(target.boxes)] == target.boxes
        added = sample.boxes[len(target.boxes) :]
        assert [as_box(r["box"]) for r in pasted(sample)] == list(added)
        for index, box in enumerate(added):
            assert 0 <= box.x1 < box.x2 <= WIDTH and 0 <= box.y1 < box.y2 <= HEIGHT
            assert not any(intersects(box, other) for other in (*target.boxes, *added[index + 1 :]))


def test_the_same_seed_gives_the_same_files_and_another_seed_others(tmp_path: Path) -> None:
    dataset = make_boards(tmp_path / "data")

    def files(seed: int) -> list[bytes]:
        return [s.image.read_bytes() for s in paste(dataset, tmp_path, seed=seed, per_image=[1, 3], blend="feather")]

    assert files(3) == files(3)
    assert files(3) != files(4)


def test_labels_choose_targets_and_sources(tmp_path: Path) -> None:
    dataset = make_boards(tmp_path / "data", count=6, unlabelled=2)
    labels = {s.id: s.label for s in dataset}
    new = paste(dataset, tmp_path, per_image=3, into_labels=["good"], from_labels=["defective"], label="defective")
    assert sorted(s.provenance.parent for s in new) == ["b1", "b3", "b5"]
    assert {labels[r["source"]] for s in new for r in pasted(s)} == {"defective"}
    assert {s.label for s in new} == {"defective"}
    unlabelled = paste(dataset, tmp_path, into_labels=[None])
    assert sorted(s.provenance.parent for s in unlabelled) == ["b6", "b7"]
    assert {s.label for s in unlabelled} == {None}
    with pytest.raises(
        UsageError, match=r"no instance of any class to paste in the 3 real samples labelled \['good'\]"
    ):
        paste(dataset, tmp_path, from_labels=["good"])


def test_no_image_receives_its_own_instances_unless_asked(tmp_path: Path) -> None:
    dataset = make_boards(tmp_path / "data", count=8)
    for sample in paste(dataset, tmp_path, per_image=5):
        assert sample.provenance.parent not in {r["source"] for r in pasted(sample)}
    alone = dataset.with_samples(dataset.samples[:1])
    assert paste(alone, tmp_path) == []
    (itself,) = paste(alone, tmp_path, same_image=True)
    assert {r["source"] for r in pasted(itself)} == {"b0"}


def test_synthetic_samples_never_serve_as_sources(tmp_path: Path) -> None:
    dataset = make_boards(tmp_path / "data", count=4)
    first = paste(dataset, tmp_path, per_image=2)
    both = dataset.with_samples([*dataset.samples, *first])
    for sample in paste(both, tmp_path, per_image=4):
        assert {r["source"] for r in pasted(sample)} <= {"b0", "b2"}


def test_classes_by_name_or_id_and_an_unknown_name_is_a_usage_error(tmp_path: Path) -> None:
    dataset = make_boards(tmp_path / "data", count=4)
    by_name = paste(dataset, tmp_path, classes=["short"], per_image=3)
    assert {r["source_box"][0] for s in by_name for r in pasted(s)} == {1}
    assert {r["source_box"][0] for s in paste(dataset, tmp_path, classes=[0], per_image=3) for r in pasted(s)} == {0}
    with pytest.raises(UsageError, match=r"class 'shrot' is not a class of the dataset \(did you mean 'short'\?\)"):
        paste(dataset, tmp_path, classes=["shrot"])
    with pytest.raises(UsageError, match="no instance of 5 to paste"):
        paste(dataset, tmp_path, classes=[5])


def test_poisson_blending_runs_and_falls_back_near_the_border(tmp_path: Path) -> None:
    dataset = make_boards(tmp_path / "data", count=8)
    new = paste(dataset, tmp_path, blend="poisson", per_image=[2, 5], placement="random")
    records = [r for s in new for r in pasted(s)]
    assert {r["blend"] for r in records} == {"poisson", "feather"}
    assert all(("note" in r) == (r["blend"] == "feather") for r in records)
    assert all("border" in r["note"] for r in records if "note" in r)


def test_a_corrupt_target_is_skipped_and_recorded(tmp_path: Path) -> None:
    dataset = make_boards(tmp_path / "data", count=4)
    dataset.samples[1].image.write_bytes(b"not a png")
    generator = CopyPasteGenerator(CopyPasteParams())
    ctx = make_context(tmp_path)
    new = list(generator.generate(dataset, ctx))
    assert [issue.path for issue in ctx.issues] == [str(dataset.samples[1].image)]
    assert sorted(s.provenance.parent for s in new) == ["b0", "b2", "b3"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"per_image": [3, 1]}, "per_image must be"),
        ({"per_image": 0}, "per_image must be"),
        ({"scale": [0.0, 1.0]}, "scale must be"),
        ({"blend": "gaussian"}, "'none', 'feather' or 'poisson'"),
        ({"placment": "random"}, "Extra inputs"),
    ],
)
def test_bad_params_are_refused(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CopyPasteParams.model_validate(params)


RECIPE = """\
name: copy_paste_tiny
seed: 5
device: cpu
dataset:
  format: fewgen
  root: data
steps:
  - name: paste
    generator: copy_paste
    params: {per_image: [1, 2], into_labels: [good], from_labels: [defective], blend: poisson, label: defective}
output:
  format: fewgen
"""


def test_a_recipe_through_the_engine(tmp_path: Path) -> None:
    make_boards(tmp_path / "data", count=6)
    result = run_recipe(tmp_path, RECIPE)
    (step,) = result.manifest["steps"]
    assert step["new_samples"] == 3
    records = [json.loads(line) for line in (tmp_path / "out" / "dataset" / "samples.jsonl").read_text().splitlines()]
    made = [r for r in records if r.get("provenance")]
    assert sorted(r["provenance"]["parent"] for r in made) == ["b1", "b3", "b5"]
    assert all(r["label"] == "defective" and r["boxes"] and r["attributes"]["paste"]["pasted"] for r in made)


def test_the_entry_point_registers_the_generator_without_importing_opencv() -> None:
    registry = load_registry()
    (info,) = [info for info in registry.describe() if "copy_paste" in info.generators]
    assert (info.name, info.distribution, info.version) == ("copy_paste", "fewgen-copy-paste", "0.1.0")
    code = "import sys, fewgen_copy_paste.hooks; sys.exit('cv2' in sys.modules or 'numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
