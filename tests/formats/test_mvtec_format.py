from __future__ import annotations

from pathlib import Path

import pytest

from fewgen.errors import UsageError
from fewgen.formats.mvtec import MvtecFormat, MvtecOptions


def _category(root: Path, make_image, make_mask) -> None:
    make_image(root / "train/good/000.png", seed=1)
    make_image(root / "train/good/001.png", seed=2)
    make_image(root / "test/good/000.png", seed=3)
    make_image(root / "test/crack/000.png", seed=4)
    make_mask(root / "ground_truth/crack/000_mask.png", seed=4)
    make_image(root / "test/scratch/000.png", 20, 10, seed=5)
    make_mask(root / "ground_truth/scratch/000_mask.png", 20, 10, seed=5)
    (root / "license.txt").write_text("not an image folder")


def test_read_labels_splits_and_masks(tmp_path, make_image, make_mask):
    _category(tmp_path, make_image, make_mask)
    result = MvtecFormat().read(tmp_path, MvtecOptions())
    assert result.issues == []
    assert [(s.id, s.split, s.label, s.mask is not None) for s in result.dataset] == [
        ("test/crack/000", "test", "crack", True),
        ("test/good/000", "test", "good", False),
        ("test/scratch/000", "test", "scratch", True),
        ("train/good/000", "train", "good", False),
        ("train/good/001", "train", "good", False),
    ]
    assert result.dataset.samples[2].mask == tmp_path / "ground_truth/scratch/000_mask.png"


def test_round_trip(tmp_path, make_image, make_mask, assert_same_samples, tree_bytes):
    _category(tmp_path / "src", make_image, make_mask)
    original = MvtecFormat().read(tmp_path / "src", MvtecOptions()).dataset
    original.samples[0] = original.samples[0].derive(split="val")
    written = MvtecFormat().write(original, tmp_path / "out", MvtecOptions())
    assert written.samples[0].image == tmp_path / "out/validation/crack/test__crack__000.png"
    assert written.samples[0].mask == tmp_path / "out/ground_truth/crack/test__crack__000_mask.png"
    result = MvtecFormat().read(tmp_path / "out", MvtecOptions())
    assert result.issues == []
    assert_same_samples(original, result.dataset, domains=False)
    MvtecFormat().write(original, tmp_path / "out2", MvtecOptions())
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "out2")


def test_defect_without_mask_and_bad_files(tmp_path, make_image, make_mask, make_corrupt):
    make_image(tmp_path / "train/good/000.png", seed=1)
    make_image(tmp_path / "test/hole/000.png", seed=2)
    make_corrupt(tmp_path / "test/hole/001.jpg")
    make_image(tmp_path / "test/hole/002.png", seed=3)
    make_mask(tmp_path / "ground_truth/hole/002_mask.png", 8, 8)
    result = MvtecFormat().read(tmp_path, MvtecOptions())
    assert [(s.id, s.mask) for s in result.dataset] == [("test/hole/000", None), ("train/good/000", None)]
    reasons = {Path(issue.path).name: issue.reason for issue in result.issues}
    assert set(reasons) == {"001.jpg", "002_mask.png"}
    assert "8x8" in reasons["002_mask.png"]


def test_layout_problems_raise_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="dataset root not found"):
        MvtecFormat().read(tmp_path / "missing", MvtecOptions())
    (tmp_path / "bottle/train/good").mkdir(parents=True)
    with pytest.raises(UsageError, match="is root one category"):
        MvtecFormat().read(tmp_path, MvtecOptions())
