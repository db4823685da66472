from __future__ import annotations

import json
from pathlib import Path

import pytest

from fewgen.api import NoParams
from fewgen.dataset import Box, Dataset, Provenance, Sample
from fewgen.errors import UsageError
from fewgen.formats.native import FewgenFormat


def _dataset(tmp_path: Path, make_image, make_mask) -> Dataset:
    samples = [
        Sample(
            "real/a",
            make_image(tmp_path / "src/a.jpg", 20, 10, seed=1),
            20,
            10,
            "val",
            (Box(1, 1.123456789, 2, 19, 10),),
            make_mask(tmp_path / "src/a_mask.png", 20, 10, seed=1),
            label="scratch",
            domain="night",
            attributes={"score": 0.5},
        ),
        Sample(
            "synthetic/b",
            make_image(tmp_path / "src/b.png", 8, 8, seed=2),
            8,
            8,
            provenance=Provenance("copy-paste", "augment", 3, parent="real/a"),
        ),
    ]
    return Dataset(samples, ["dent", "scratch"], "tiny")


def test_round_trip_keeps_everything(tmp_path, make_image, make_mask, assert_same_samples, tree_bytes):
    original = _dataset(tmp_path, make_image, make_mask)
    written = FewgenFormat().write(original, tmp_path / "out", NoParams())
    assert [s.image.relative_to(tmp_path / "out").as_posix() for s in written] == [
        "images/real__a.jpg",
        "images/synthetic__b.png",
    ]
    result = FewgenFormat().read(tmp_path / "out", NoParams())
    assert result.issues == []
    assert result.dataset.name == "tiny" and result.dataset.classes == ["dent", "scratch"]
    assert [s.id for s in result.dataset] == ["real/a", "synthetic/b"]
    assert result.dataset.samples[0].attributes == {"score": 0.5}
    assert result.dataset.samples[1].provenance == original.samples[1].provenance
    assert_same_samples(original, result.dataset)
    FewgenFormat().write(original, tmp_path / "out2", NoParams())
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "out2")


def test_bad_records_are_skipped_and_reported(tmp_path, make_image, make_mask, make_corrupt):
    dataset = _dataset(tmp_path, make_image, make_mask)
    dataset.samples += [
        Sample("corrupt", make_corrupt(tmp_path / "src/corrupt.jpg"), 64, 64),
        Sample("missing", tmp_path / "src/missing.png", 8, 8),
        Sample("wrong_size", make_image(tmp_path / "src/w.png", 8, 8, seed=3), 9, 8),
        Sample("class", make_image(tmp_path / "src/c.png", 8, 8, seed=4), 8, 8, boxes=(Box(5, 0, 0, 1, 1),)),
        Sample("no_mask", make_image(tmp_path / "src/m.png", 8, 8, seed=5), 8, 8, mask=tmp_path / "src/none.png"),
    ]
    dataset.save(tmp_path / "set")
    with open(tmp_path / "set/samples.jsonl", "a") as f:
        f.write('{"id": "no image"}\n')
        f.write("{broken\n")
        f.write(json.dumps(dataset.samples[0].to_record(tmp_path / "set")) + "\n")
    result = FewgenFormat().read(tmp_path / "set", NoParams())
    assert [s.id for s in result.dataset] == ["real/a", "synthetic/b"]
    assert len(result.issues) == 8
    reasons = " | ".join(issue.reason for issue in result.issues)
    for expected in ("cannot decode", "9x8", "class 5 out of range", "mask file missing", "duplicate id 'real/a'"):
        assert expected in reasons


def test_layout_problems_raise_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="dataset root not found"):
        FewgenFormat().read(tmp_path / "missing", NoParams())
    with pytest.raises(UsageError, match=r"dataset\.json missing"):
        FewgenFormat().read(tmp_path, NoParams())
    (tmp_path / "dataset.json").write_text("[1, 2]")
    (tmp_path / "samples.jsonl").write_text("")
    with pytest.raises(UsageError, match="not a fewgen dataset description"):
        FewgenFormat().read(tmp_path, NoParams())
    (tmp_path / "dataset.json").write_text("{}")
    with pytest.raises(UsageError, match="no samples"):
        FewgenFormat().read(tmp_path, NoParams())
