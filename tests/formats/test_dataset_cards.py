"""The shipped dataset cards: each is valid, and reads its real dataset where a copy exists."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
import yaml

from fewgen.cards import DatasetCard, assign_splits
from fewgen.dataset import Dataset
from fewgen.formats import FORMATS

CARDS = Path(__file__).resolve().parents[2] / "datasets" / "cards"
DATA = Path(os.environ.get("FEWGEN_SHARED_DATA", "/work/shared/data"))
FORMAT_BY_NAME = {format_class.name: format_class for format_class in FORMATS}


def _card(name: str) -> DatasetCard:
    return DatasetCard.model_validate(yaml.safe_load((CARDS / f"{name}.yaml").read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", sorted(CARDS.glob("*.yaml")), ids=lambda p: p.stem)
def test_card_is_valid(path):
    card = _card(path.stem)
    if card.format not in FORMAT_BY_NAME:
        pytest.skip(f"format {card.format!r} comes from another plugin")
    FORMAT_BY_NAME[card.format].Options.model_validate(card.options)


@pytest.mark.parametrize("name", ["coco128", "day_night", "deeppcb", "magnetic_tile", "mvtec_ad", "omniglot"])
def test_card_says_what_the_data_is(name):
    card = _card(name)
    assert card.name == name
    assert card.description and card.homepage and card.license


def _read(card_name: str, folder: str) -> Dataset:
    root = DATA / folder
    if not root.is_dir():
        pytest.skip(f"real data not available: {root}")
    card = _card(card_name)
    format_class = FORMAT_BY_NAME[card.format]
    result = format_class().read(root, format_class.Options.model_validate(card.options))
    assert result.issues == []
    dataset = assign_splits(result.dataset, card.splits or [])
    assert len({s.id for s in dataset}) == len(dataset)
    return dataset


def _splits(dataset: Dataset, **where: str) -> Counter:
    return Counter(s.split for s in dataset if all(getattr(s, k) == v for k, v in where.items()))


def test_coco128():
    dataset = _read("coco128", "coco128_train")
    assert len(dataset) == 128 and len(dataset.classes) == 80 and dataset.classes[0] == "person"
    with_person = [s for s in dataset if any(b.cls == 0 for b in s.boxes)]
    # The README counts 62 images / 261 persons from label files; two of those have no image.
    assert len(with_person) == 61 and sum(b.cls == 0 for s in with_person for b in s.boxes) == 254
    assert _splits(dataset) == {"train": 90, "val": 19, "test": 19}


def test_deeppcb():
    dataset = _read("deeppcb", "deeppcb")
    assert Counter(s.label for s in dataset) == {"defective": 500, "good": 500}
    assert all(s.boxes for s in dataset if s.label == "defective")
    assert not any(s.boxes for s in dataset if s.label == "good")
    assert set(dataset.summary()["boxes"]) == {"open", "short", "mousebite", "spur", "copper", "pin-hole"}
    assert all((s.width, s.height) == (640, 640) for s in dataset)


def test_magnetic_tile():
    dataset = _read("magnetic_tile", "magnetic_tile")
    assert len(dataset) == 1344
    labels = Counter(s.label for s in dataset)
    assert labels == {"good": 952, "Blowhole": 115, "Break": 85, "Crack": 57, "Fray": 32, "Uneven": 103}
    assert all(s.mask is not None for s in dataset)
    assert _splits(dataset, label="good") == {"train": 762, "test": 190}
    assert Counter(s.split for s in dataset if s.label != "good") == {"test": 392}


def test_day_night():
    dataset = _read("day_night", "day_night")
    assert Counter(s.domain for s in dataset) == {"day": 120, "night": 120}
    assert _splits(dataset, domain="night") == {"train": 96, "test": 24}


@pytest.mark.parametrize(
    ("folder", "characters"), [("images_background_small1", 136), ("images_background_small2", 156)]
)
def test_omniglot(folder, characters):
    dataset = _read("omniglot", f"omniglot/{folder}")
    labels = Counter(s.label for s in dataset)
    assert len(labels) == characters and set(labels.values()) == {20}
    assert all((s.width, s.height) == (105, 105) for s in dataset)


def test_mvtec_ad():
    candidates = sorted(p for p in (DATA / "mvtec_ad").glob("*") if (p / "train/good").is_dir())
    if not candidates:
        pytest.skip(f"real data not available: no category folder under {DATA / 'mvtec_ad'}")
    dataset = _read("mvtec_ad", f"mvtec_ad/{candidates[0].name}")
    assert all(s.mask is not None for s in dataset if s.label != "good")
    assert {s.split for s in dataset if s.label != "good"} == {"test"}
