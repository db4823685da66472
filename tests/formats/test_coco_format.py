from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from fewgen.api import NoParams
from fewgen.dataset import Box, Dataset, Sample
from fewgen.errors import UsageError
from fewgen.formats.coco import CocoFormat, CocoOptions


def _dataset(tmp_path: Path, make_image, make_mask) -> Dataset:
    source = tmp_path / "source"
    samples = [
        Sample(
            "a/one",
            make_image(source / "a/one.jpg", 40, 30, seed=1),
            40,
            30,
            "train",
            (Box(0, 1.5, 2.25, 20.125, 29.0), Box(2, 10, 10, 40, 12.333333)),
            label="busy",
            domain="day",
        ),
        Sample("a__one", make_image(source / "two.png", 24, 24, seed=2), 24, 24, "train", (Box(1, 0, 0, 24, 24),)),
        Sample(
            "three",
            make_image(source / "three.png", 16, 8, seed=3),
            16,
            8,
            "val",
            (Box(1, 3, 1, 9, 7),),
            mask=make_mask(source / "three_mask.png", 16, 8, seed=3),
        ),
        Sample("four", make_image(source / "four.png", 10, 10, seed=4), 10, 10, "test"),
    ]
    return Dataset(samples, ["car", "person", "sign"], "tiny")


def _options(splits=("train", "val", "test")) -> CocoOptions:
    return CocoOptions(annotations={split: f"annotations/{split}.json" for split in splits})


def test_round_trip_and_stable_output(tmp_path, make_image, make_mask, assert_same_samples, tree_bytes):
    original = _dataset(tmp_path, make_image, make_mask)
    written = CocoFormat().write(original, tmp_path / "out", NoParams())
    assert all(s.image.is_relative_to(tmp_path / "out") for s in written)
    assert sorted(p.name for p in (tmp_path / "out/annotations").iterdir()) == ["test.json", "train.json", "val.json"]
    train = json.loads((tmp_path / "out/annotations/train.json").read_text())
    assert [c["id"] for c in train["categories"]] == [1, 2, 3]
    assert [i["id"] for i in train["images"]] == [1, 2]
    assert [a["id"] for a in train["annotations"]] == [1, 2, 3]
    assert train["annotations"][0]["bbox"] == [1.5, 2.25, 18.625, 26.75]
    assert train["annotations"][0]["area"] == pytest.approx(18.625 * 26.75)
    assert train["info"] == {} and train["licenses"] == []
    # '/' in ids becomes '__'; the clash with the id "a__one" gets a counter.
    assert [i["file_name"] for i in train["images"]] == ["train/a__one.jpg", "train/a__one_2.png"]

    result = CocoFormat().read(tmp_path / "out", _options())
    assert result.issues == []
    assert_same_samples(original, result.dataset)

    CocoFormat().write(original, tmp_path / "out2", NoParams())
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "out2")


def test_output_evaluates_with_pycocotools(tmp_path, make_image, make_mask):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    CocoFormat().write(_dataset(tmp_path, make_image, make_mask), tmp_path / "out", NoParams())
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO(str(tmp_path / "out/annotations/train.json"))
        detections = ground_truth.loadRes(
            [
                {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
                for a in ground_truth.dataset["annotations"]
            ]
        )
        evaluation = COCOeval(ground_truth, detections, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)


def _write_json(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def test_reads_sparse_category_ids_crowd_and_image_folders(tmp_path, make_image):
    make_image(tmp_path / "train2017/000001.jpg", 50, 40, seed=1)
    make_image(tmp_path / "val2017/000002.jpg", 50, 40, seed=2)
    categories = [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}]
    _write_json(
        tmp_path / "ann/train.json",
        {
            "images": [{"id": 7, "file_name": "000001.jpg", "width": 50, "height": 40}],
            "annotations": [
                {"id": 1, "image_id": 7, "category_id": 90, "bbox": [1, 2, 10, 20], "iscrowd": 0},
                {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 50, 40], "iscrowd": 1},
                {"id": 3, "image_id": 7, "category_id": 3, "bbox": [5, 5, 5, 5]},
            ],
            "categories": categories,
        },
    )
    _write_json(tmp_path / "ann/val.json", {"images": [{"id": 1, "file_name": "000002.jpg"}], "categories": categories})
    options = CocoOptions(
        annotations={"train": "ann/train.json", "val": "ann/val.json"},
        images={"train": "train2017", "val": "val2017"},
    )
    result = CocoFormat().read(tmp_path, options)
    assert result.issues == []
    dataset = result.dataset
    assert dataset.classes == ["person", "car", "toothbrush"]
    first, second = dataset.samples
    assert (first.id, first.split, second.id, second.split) == ("train2017/000001", "train", "val2017/000002", "val")
    assert first.boxes == (Box(2, 1, 2, 11, 22), Box(1, 5, 5, 10, 10))
    assert second.boxes == ()


def test_single_file_gets_the_split_option(tmp_path, make_image):
    make_image(tmp_path / "images/x.png", seed=1)
    _write_json(tmp_path / "ann.json", {"images": [{"id": 1, "file_name": "x.png"}], "categories": []})
    dataset = CocoFormat().read(tmp_path, CocoOptions(annotations="ann.json", split="test")).dataset
    assert [(s.id, s.split) for s in dataset] == [("images/x", "test")]


def test_bad_samples_are_skipped_and_reported(tmp_path, make_image, make_corrupt):
    names = ["good", "corrupt", "outside", "category", "size", "bbox"]
    for index, name in enumerate(names):
        if name == "corrupt":
            make_corrupt(tmp_path / "images/corrupt.jpg")
        else:
            make_image(tmp_path / f"images/{name}.jpg", 32, 24, seed=index)
    boxes = {"outside": [20, 0, 20, 10], "category": [0, 0, 5, 5], "bbox": [1, 2, 3]}
    document = {
        "images": [
            {"id": i + 1, "file_name": f"{name}.jpg", "width": 99 if name == "size" else 32, "height": 24}
            for i, name in enumerate(names)
        ],
        "annotations": [
            {
                "id": i + 1,
                "image_id": i + 1,
                "category_id": 5 if name == "category" else 1,
                "bbox": boxes.get(name, [0, 0, 4, 4]),
            }
            for i, name in enumerate(names)
        ]
        + [{"id": 99, "image_id": 404, "category_id": 1, "bbox": [0, 0, 1, 1]}],
        "categories": [{"id": 1, "name": "thing"}],
    }
    _write_json(tmp_path / "ann.json", document)
    result = CocoFormat().read(tmp_path, CocoOptions(annotations="ann.json"))
    assert [s.id for s in result.dataset] == ["images/good"]
    reasons = {Path(issue.path).stem: issue.reason for issue in result.issues}
    assert set(reasons) == {"corrupt", "outside", "category", "size", "bbox", "ann"}
    assert "unknown category 5" in reasons["category"]
    assert "99x24" in reasons["size"]
    assert "unknown image" in reasons["ann"]


def test_layout_problems_raise_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="dataset root not found"):
        CocoFormat().read(tmp_path / "missing", CocoOptions(annotations="a.json"))
    with pytest.raises(UsageError, match="annotation file not found"):
        CocoFormat().read(tmp_path, CocoOptions(annotations="a.json"))
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        CocoFormat().read(tmp_path, CocoOptions(annotations="a.json"))
    (tmp_path / "a.json").write_text('{"images": []}')
    with pytest.raises(UsageError, match="no images listed"):
        CocoFormat().read(tmp_path, CocoOptions(annotations="a.json"))
    with pytest.raises(ValidationError, match="unknown split"):
        CocoOptions(annotations={"holdout": "a.json"})
