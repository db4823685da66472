from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from fewgen.errors import UsageError
from fewgen.formats.yolo import YoloFormat, YoloOptions


def _layout(root: Path, make_image, make_mask) -> None:
    """images/{train,val}, labels mirroring them, one image without a label file, one mask."""
    make_image(root / "images/train/a.jpg", 40, 30, seed=1)
    (root / "labels/train").mkdir(parents=True)
    (root / "labels/train/a.txt").write_text("0 0.5 0.5 0.5 0.4\n1 0.25 0.25 0.1 0.2\n")
    make_image(root / "images/train/sub/b.png", 20, 20, seed=2)
    (root / "labels/train/sub").mkdir()
    (root / "labels/train/sub/b.txt").write_text("\n1 0.5 0.5 1 1\n")
    make_image(root / "images/val/c.png", 16, 8, seed=3)
    make_mask(root / "masks/val/c.png", 16, 8, seed=3)


def test_read_folders_splits_boxes_and_masks(tmp_path, make_image, make_mask):
    _layout(tmp_path, make_image, make_mask)
    result = YoloFormat().read(tmp_path, YoloOptions(names=["cat", "dog"]))
    dataset = result.dataset
    assert result.issues == []
    assert dataset.classes == ["cat", "dog"]
    assert [s.id for s in dataset] == ["images/train/a", "images/train/sub/b", "images/val/c"]
    assert [s.split for s in dataset] == ["train", "train", "val"]
    a, b, c = dataset.samples
    assert (a.width, a.height) == (40, 30)
    assert a.boxes[0].cls == 0
    assert (a.boxes[0].x1, a.boxes[0].y1, a.boxes[0].x2, a.boxes[0].y2) == pytest.approx((10, 9, 30, 21))
    assert (b.boxes[0].x1, b.boxes[0].x2) == pytest.approx((0, 20))
    assert c.boxes == () and c.mask == tmp_path / "masks/val/c.png"


def test_round_trip_through_data_yaml(tmp_path, make_image, make_mask, assert_same_samples, tree_bytes):
    _layout(tmp_path / "src", make_image, make_mask)
    original = YoloFormat().read(tmp_path / "src", YoloOptions(names=["cat", "dog"])).dataset
    written = YoloFormat().write(original, tmp_path / "out", YoloOptions())

    assert all(s.image.is_file() and s.image.is_relative_to(tmp_path / "out") for s in written)
    data = yaml.safe_load((tmp_path / "out/data.yaml").read_text())
    assert data == {"train": "images/train", "val": "images/val", "names": {0: "cat", 1: "dog"}}
    assert (tmp_path / "out/labels/train/images__train__a.txt").read_text().splitlines() == [
        "0 0.500000 0.500000 0.500000 0.400000",
        "1 0.250000 0.250000 0.100000 0.200000",
    ]
    again = YoloFormat().read(tmp_path / "out", YoloOptions(data="data.yaml"))
    assert again.issues == []
    assert_same_samples(original, again.dataset)
    assert_same_samples(original, YoloFormat().read(tmp_path / "out", YoloOptions(names="data.yaml")).dataset)

    YoloFormat().write(original, tmp_path / "out2", YoloOptions())
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "out2")


def test_names_file_flat_layout_and_fixed_split(tmp_path, make_image):
    make_image(tmp_path / "imgs/x.jpg", seed=1)
    (tmp_path / "lbl").mkdir()
    (tmp_path / "lbl/x.txt").write_text("2 0.5 0.5 0.2 0.2\n")
    (tmp_path / "names.yaml").write_text("names:\n  0: a\n  2: c\n")
    options = YoloOptions(images="imgs", labels="lbl", names="names.yaml", split="test")
    dataset = YoloFormat().read(tmp_path, options).dataset
    assert dataset.classes == ["a", "1", "c"]
    assert [(s.id, s.split, s.boxes[0].cls) for s in dataset] == [("imgs/x", "test", 2)]


def test_classes_named_by_id_without_names(tmp_path, make_image):
    make_image(tmp_path / "images/x.jpg")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels/x.txt").write_text("3 0.5 0.5 0.2 0.2\n")
    assert YoloFormat().read(tmp_path, YoloOptions()).dataset.classes == ["0", "1", "2", "3"]


def test_data_yaml_with_image_lists_and_relative_path(tmp_path, make_image):
    base = tmp_path / "set"
    make_image(base / "images/a.jpg", seed=1)
    make_image(base / "images/b.jpg", seed=2)
    (base / "labels").mkdir()
    (base / "labels/a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (base / "train.txt").write_text("./images/a.jpg\n\n")
    (base / "val.txt").write_text("images/b.jpg\n")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg/data.yaml").write_text("path: ../set\ntrain: train.txt\nval: [val.txt]\nnames: [thing]\n")
    dataset = YoloFormat().read(tmp_path, YoloOptions(data="cfg/data.yaml")).dataset
    assert [(s.id, s.split, len(s.boxes)) for s in dataset] == [("images/a", "train", 1), ("images/b", "val", 0)]
    assert dataset.classes == ["thing"]


def test_bad_samples_are_skipped_and_reported(tmp_path, make_image, make_corrupt):
    make_image(tmp_path / "images/good.jpg", seed=1)
    make_corrupt(tmp_path / "images/corrupt.jpg")
    for name, line in {
        "unparsable": "0 0.5 zero 0.1 0.1",
        "short": "0 0.5 0.5 0.1",
        "class": "7 0.5 0.5 0.1 0.1",
        "outside": "0 1.2 0.5 0.2 0.2",
        "empty": "0 0.5 0.5 0 0.1",
    }.items():
        make_image(tmp_path / f"images/{name}.jpg", seed=len(name))
        (tmp_path / "labels").mkdir(exist_ok=True)
        (tmp_path / f"labels/{name}.txt").write_text(f"0 0.5 0.5 0.1 0.1\n{line}\n")
    # Within the 1e-3 tolerance: clipped, not reported.
    (tmp_path / "labels/good.txt").write_text("0 0.5 0.5 1.0009 0.5\n")

    result = YoloFormat().read(tmp_path, YoloOptions(names=["a", "b"]))
    assert [s.id for s in result.dataset] == ["images/good"]
    assert result.dataset.samples[0].boxes[0].x1 == 0 and result.dataset.samples[0].boxes[0].x2 == 32
    reasons = {Path(issue.path).stem: issue.reason for issue in result.issues}
    assert set(reasons) == {"corrupt", "unparsable", "short", "class", "outside", "empty"}
    assert "decode" in reasons["corrupt"]
    assert reasons["unparsable"].startswith("line 2:")
    assert "out of range" in reasons["class"]
    assert "outside" in reasons["outside"]


def test_same_stem_with_two_suffixes_keeps_one(tmp_path, make_image):
    make_image(tmp_path / "images/x.jpg", seed=1)
    make_image(tmp_path / "images/x.png", seed=2)
    (tmp_path / "labels").mkdir()
    result = YoloFormat().read(tmp_path, YoloOptions())
    assert [s.image.name for s in result.dataset] == ["x.jpg"]
    assert len(result.issues) == 1 and "same id" in result.issues[0].reason


def test_layout_problems_raise_usage_errors(tmp_path, make_image):
    with pytest.raises(UsageError, match="dataset root not found"):
        YoloFormat().read(tmp_path / "missing", YoloOptions())
    with pytest.raises(UsageError, match="image folder not found"):
        YoloFormat().read(tmp_path, YoloOptions())
    (tmp_path / "images").mkdir()
    with pytest.raises(UsageError, match="label folder not found"):
        YoloFormat().read(tmp_path, YoloOptions())
    (tmp_path / "labels").mkdir()
    with pytest.raises(UsageError, match="no images found"):
        YoloFormat().read(tmp_path, YoloOptions())
    with pytest.raises(UsageError, match="data YAML not found"):
        YoloFormat().read(tmp_path, YoloOptions(data="data.yaml"))
    (tmp_path / "data.yaml").write_text("train: [unclosed\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        YoloFormat().read(tmp_path, YoloOptions(data="data.yaml"))
    (tmp_path / "data.yaml").write_text("train: nowhere\n")
    with pytest.raises(UsageError, match=r"train images of .* not found"):
        YoloFormat().read(tmp_path, YoloOptions(data="data.yaml"))
    with pytest.raises(ValidationError, match="cannot be combined"):
        YoloOptions(data="data.yaml", images="imgs")
    with pytest.raises(ValidationError, match="split must be one of"):
        YoloOptions(split="holdout")
