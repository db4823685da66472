from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from fewgen.dataset import Box, Dataset, Sample
from fewgen.errors import UsageError
from fewgen.formats.folders import FoldersFormat, FoldersOptions, parse_template
from fewgen.imageio import checked_size


def _options(**values) -> FoldersOptions:
    return FoldersOptions.model_validate(values)


def test_template_matching():
    template = parse_template("{group}/{board}/{name}_test.jpg")
    assert template.match("g1/b2/007_test.jpg") == {"group": "g1", "board": "b2", "name": "007"}
    assert template.match("g1/b2/x/007_test.jpg") is None
    assert template.match("g1/b2/007_temp.jpg") is None
    assert not template.any_suffix
    repeated = parse_template("group{board}/{board}_not/{name}.txt")
    assert repeated.match("group5/5_not/a.txt") == {"board": "5", "name": "a"}
    assert repeated.match("group5/6_not/a.txt") is None
    assert parse_template("{domain}/{name}").any_suffix
    assert parse_template("{name}.{ext}").match("a.b.png") == {"name": "a.b", "ext": "png"}
    with pytest.raises(ValueError, match="plain name"):
        parse_template("{name:03d}.png")


def test_class_folders_round_trip(tmp_path, make_image, assert_same_samples, tree_bytes):
    for index, path in enumerate(["Greek/character01/a.png", "Greek/character02/b.png", "Latin/character01/a.png"]):
        make_image(tmp_path / "src" / path, 12, 12, seed=index)
    options = _options(sources=[{"images": "{alphabet}/{character}/{name}.png", "label": "{alphabet}/{character}"}])
    original = FoldersFormat().read(tmp_path / "src", options).dataset
    assert [(s.id, s.label, s.split) for s in original] == [
        ("Greek/character01/a", "Greek/character01", "train"),
        ("Greek/character02/b", "Greek/character02", "train"),
        ("Latin/character01/a", "Latin/character01", "train"),
    ]
    written = FoldersFormat().write(original, tmp_path / "out", options)
    assert written.samples[0].image == tmp_path / "out/Greek/character01/Greek__character01__a.png"
    assert_same_samples(original, FoldersFormat().read(tmp_path / "out", options).dataset)
    FoldersFormat().write(original, tmp_path / "out2", options)
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "out2")


def test_domain_folders_with_any_image_suffix(tmp_path, make_image, assert_same_samples):
    make_image(tmp_path / "src/day/1.jpg", seed=1)
    make_image(tmp_path / "src/night/2.png", seed=2)
    (tmp_path / "src/night/notes.txt").write_text("not an image")
    make_image(tmp_path / "src/night/deeper/3.png", seed=3)
    options = _options(sources=[{"images": "{domain}/{name}", "split": "test"}])
    original = FoldersFormat().read(tmp_path / "src", options).dataset
    assert [(s.id, s.domain, s.split) for s in original] == [("day/1", "day", "test"), ("night/2", "night", "test")]
    written = FoldersFormat().write(original, tmp_path / "out", options)
    assert [s.image.suffix for s in written] == [".jpg", ".png"]
    assert_same_samples(original, FoldersFormat().read(tmp_path / "out", options).dataset)


def test_masks_with_label_map_round_trip(tmp_path, make_image, make_mask, assert_same_samples):
    for index, label in enumerate(["Free", "Free", "Crack"]):
        make_image(tmp_path / f"src/MT_{label}/Imgs/{index}.jpg", 20, 16, seed=index)
        make_mask(tmp_path / f"src/MT_{label}/Imgs/{index}.png", 20, 16, seed=index)
    options = _options(
        sources=[{"images": "MT_{label}/Imgs/{name}.jpg", "mask": "MT_{label}/Imgs/{name}.png"}],
        label_map={"Free": "good"},
    )
    original = FoldersFormat().read(tmp_path / "src", options).dataset
    assert [s.label for s in original] == ["Crack", "good", "good"]
    assert all(s.mask == s.image.with_suffix(".png") for s in original)
    written = FoldersFormat().write(original, tmp_path / "out", options)
    assert written.samples[1].image == tmp_path / "out/MT_Free/Imgs/MT_Free__Imgs__0.jpg"
    assert_same_samples(original, FoldersFormat().read(tmp_path / "out", options).dataset)


def test_box_files_with_class_base_and_two_sources(tmp_path, make_image):
    make_image(tmp_path / "PCB/g1/1/001_test.jpg", 64, 64, seed=1)
    make_image(tmp_path / "PCB/g1/1/001_temp.jpg", 64, 64, seed=2)
    (tmp_path / "PCB/g1/1_not").mkdir(parents=True)
    (tmp_path / "PCB/g1/1_not/001.txt").write_text("10 20 30 40 1\n0,0,64,64,3\n\n")
    options = _options(
        sources=[
            {"images": "PCB/{group}/{board}/{name}_test.jpg", "boxes": "PCB/{group}/{board}_not/{name}.txt"},
            {"images": "PCB/{group}/{board}/{name}_temp.jpg", "label": "good"},
        ],
        classes=["open", "short", "mousebite"],
        class_base=1,
    )
    dataset = FoldersFormat().read(tmp_path, options).dataset
    assert dataset.classes == ["open", "short", "mousebite"]
    assert [(s.id, s.label, s.boxes) for s in dataset] == [
        ("PCB/g1/1/001_temp", "good", ()),
        ("PCB/g1/1/001_test", None, (Box(0, 10, 20, 30, 40), Box(2, 0, 0, 64, 64))),
    ]
    with pytest.raises(UsageError, match=r"cannot fill \{group\}"):
        FoldersFormat().write(dataset, tmp_path / "out", options)


@pytest.mark.parametrize("box_format", ["xyxy_class", "yolo"])
def test_box_files_round_trip(tmp_path, make_image, assert_same_samples, tree_bytes, box_format):
    samples = [
        Sample("a", make_image(tmp_path / "a.png", 30, 20, seed=1), 30, 20, "train", (Box(1, 0.5, 1, 29.25, 20),)),
        Sample("b", make_image(tmp_path / "b.png", 30, 20, seed=2), 30, 20, "val"),
    ]
    original = Dataset(samples, ["x", "y"])
    options = _options(
        sources=[{"images": "{split}/{name}.png", "boxes": "{split}/{name}.txt", "box_format": box_format}],
        classes=["x", "y"],
        class_base=1,
    )
    FoldersFormat().write(original, tmp_path / "out", options)
    expected_line = "0.5 1 29.25 20 2" if box_format == "xyxy_class" else "2 0.495833 0.525000 0.958333 0.950000"
    assert (tmp_path / "out/train/a.txt").read_text() == expected_line + "\n"
    assert (tmp_path / "out/val/b.txt").read_text() == ""
    assert_same_samples(original, FoldersFormat().read(tmp_path / "out", options).dataset)
    FoldersFormat().write(original, tmp_path / "out2", options)
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "out2")


def test_bad_samples_are_skipped_and_reported(tmp_path, make_image, make_mask, make_corrupt):
    lines = {"good": "1 1 5 5 0", "line": "1 1 5 five 0", "class": "1 1 5 5 4", "outside": "1 1 40 5 0"}
    for index, (name, line) in enumerate(lines.items()):
        make_image(tmp_path / f"img/{name}.png", 32, 24, seed=index)
        make_mask(tmp_path / f"mask/{name}.png", 32, 24, seed=index)
        (tmp_path / "box").mkdir(exist_ok=True)
        (tmp_path / f"box/{name}.txt").write_text(line + "\n")
    make_image(tmp_path / "img/no_mask.png", seed=7)
    (tmp_path / "box/no_mask.txt").write_text("")
    make_image(tmp_path / "img/no_boxes.png", seed=8)
    make_mask(tmp_path / "mask/no_boxes.png")
    make_image(tmp_path / "img/small_mask.png", seed=9)
    make_mask(tmp_path / "mask/small_mask.png", 4, 4)
    (tmp_path / "box/small_mask.txt").write_text("")
    make_corrupt(tmp_path / "img/corrupt.jpg")
    options = _options(
        sources=[{"images": "img/{name}", "mask": "mask/{name}.png", "boxes": "box/{name}.txt"}], classes=["a", "b"]
    )
    result = FoldersFormat().read(tmp_path, options)
    assert [s.id for s in result.dataset] == ["img/good"]
    reasons = {Path(issue.path).stem: issue.reason for issue in result.issues}
    assert set(reasons) == {"line", "class", "outside", "no_mask", "no_boxes", "small_mask", "corrupt"}
    assert reasons["no_mask"] == "mask mask/no_mask.png missing"
    assert reasons["no_boxes"] == "box file box/no_boxes.txt missing"
    assert reasons["line"].startswith("line 1:")


def test_split_field_aliases_and_unknown_splits(tmp_path, make_image):
    make_image(tmp_path / "validation/a.png", seed=1)
    make_image(tmp_path / "misc/b.png", seed=2)
    result = FoldersFormat().read(tmp_path, _options(sources=[{"images": "{split}/{name}.png"}]))
    assert [(s.id, s.split) for s in result.dataset] == [("validation/a", "val")]
    assert "split 'misc'" in result.issues[0].reason


def test_first_source_wins(tmp_path, make_image):
    make_image(tmp_path / "a/x.png", seed=1)
    options = _options(sources=[{"images": "a/{name}.png", "label": "first"}, {"images": "{folder}/{name}.png"}])
    assert [s.label for s in FoldersFormat().read(tmp_path, options).dataset] == ["first"]


def test_writer_reencodes_when_the_template_asks_another_codec(tmp_path, make_image):
    sample = Sample("p", make_image(tmp_path / "p.png", 9, 7, seed=1), 9, 7, domain="day")
    options = _options(sources=[{"images": "{domain}/{name}.jpg"}])
    written = FoldersFormat().write(Dataset([sample]), tmp_path / "out", options)
    assert written.samples[0].image == tmp_path / "out/day/p.jpg"
    assert checked_size(written.samples[0].image) == (9, 7)
    assert written.samples[0].image.read_bytes()[:2] == b"\xff\xd8"


def test_writer_rejects_what_it_could_not_read_back(tmp_path, make_image):
    sample = Sample("p", make_image(tmp_path / "p.png", seed=1), 32, 24, label="a/b")
    dataset = Dataset([sample])
    with pytest.raises(UsageError, match="needs \\{name\\}"):
        FoldersFormat().write(dataset, tmp_path / "o1", _options(sources=[{"images": "{label}.png"}]))
    with pytest.raises(UsageError, match="not a path segment"):
        FoldersFormat().write(dataset, tmp_path / "o2", _options(sources=[{"images": "{label}/{name}.png"}]))
    with pytest.raises(UsageError, match="has no domain"):
        FoldersFormat().write(dataset, tmp_path / "o3", _options(sources=[{"images": "{domain}/{name}.png"}]))
    with pytest.raises(UsageError, match="does not fit 'good'"):
        FoldersFormat().write(dataset, tmp_path / "o4", _options(sources=[{"images": "{name}.png", "label": "good"}]))
    with pytest.raises(UsageError, match="has no mask"):
        options = _options(sources=[{"images": "{name}.png", "mask": "{name}_mask.png"}])
        FoldersFormat().write(dataset, tmp_path / "o5", options)


def test_option_and_layout_errors(tmp_path, make_image):
    with pytest.raises(ValidationError, match="does not capture"):
        _options(sources=[{"images": "{name}.png", "mask": "{label}/{name}.png"}])
    with pytest.raises(ValidationError, match="inside the root"):
        _options(sources=[{"images": "../{name}.png"}])
    with pytest.raises(ValidationError, match="at least 1"):
        _options(sources=[])
    options = _options(sources=[{"images": "{name}.png"}, {"images": "other/{name}.png"}])
    with pytest.raises(UsageError, match="dataset root not found"):
        FoldersFormat().read(tmp_path / "missing", options)
    make_image(tmp_path / "x.png")
    with pytest.raises(UsageError, match=r"sources\[1\]\.images 'other/\{name\}\.png' matches no image"):
        FoldersFormat().read(tmp_path, options)
