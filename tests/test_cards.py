from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from fewgen.cards import SplitRule, assign_splits, available_cards, load_card
from fewgen.dataset import Dataset, Sample
from fewgen.errors import UsageError


def dataset_of(labels: list[str]) -> Dataset:
    return Dataset([Sample(f"s{i}", Path(f"/x/{i}.png"), 1, 1, label=label) for i, label in enumerate(labels)])


def test_split_rules_give_exact_counts_and_first_match_wins():
    dataset = dataset_of(["good"] * 20 + ["crack"] * 5)
    rules = [
        SplitRule(where={"label": "good"}, fractions={"train": 0.8, "test": 0.2}),
        SplitRule(fractions={"test": 1}),
    ]
    result = assign_splits(dataset, rules, seed=0)
    good = [s.split for s in result if s.label == "good"]
    assert good.count("train") == 16 and good.count("test") == 4
    assert all(s.split == "test" for s in result if s.label == "crack")


def test_split_assignment_is_deterministic_and_seeded():
    dataset = dataset_of(["a"] * 50)
    rules = [SplitRule(fractions={"train": 0.5, "val": 0.25, "test": 0.25})]
    first = [s.split for s in assign_splits(dataset, rules, seed=1)]
    assert first == [s.split for s in assign_splits(dataset, rules, seed=1)]
    assert first != [s.split for s in assign_splits(dataset, rules, seed=2)]
    # Adding samples does not move the ones already assigned more than the quota shift requires.
    assert first.count("train") == 25


def test_unmatched_samples_keep_their_split():
    dataset = dataset_of(["a", "b"])
    result = assign_splits(dataset, [SplitRule(where={"label": "a"}, fractions={"test": 1.0})])
    assert [s.split for s in result] == ["test", "train"]


@pytest.mark.parametrize(
    "fractions, where",
    [({"train": 0.5}, {}), ({"training": 1.0}, {}), ({"train": 1.0}, {"colour": "red"})],
)
def test_bad_split_rules_are_rejected(fractions, where):
    with pytest.raises(ValidationError):
        SplitRule(where=where, fractions=fractions)


def test_every_shipped_card_is_valid_and_names_a_registered_format(registry):
    cards = available_cards(registry)
    assert "street_sample" in cards
    for name in cards:
        card = load_card(name, registry)
        assert card.name == name
        registry.dataset_format(card.format)


def test_unknown_card_suggests_closest(registry):
    with pytest.raises(UsageError, match="did you mean 'street_sample'"):
        load_card("street_sampel", registry)


def test_card_file_errors_name_the_file(tmp_path, registry):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nformat: yolo\nopts: {}\n")
    with pytest.raises(UsageError, match=r"mine.yaml:3: unknown key 'opts'"):
        load_card(str(path), registry)


def test_grouped_samples_share_a_split():
    ids = [f"board{i}_{kind}" for i in range(30) for kind in ("test", "temp")]
    dataset = Dataset([Sample(i, Path(f"/x/{i}.jpg"), 1, 1) for i in ids])
    rule = SplitRule(fractions={"train": 0.7, "test": 0.3}, group=r"^(.*)_(?:test|temp)$")
    splits = {s.id: s.split for s in assign_splits(dataset, [rule])}
    assert all(splits[f"board{i}_test"] == splits[f"board{i}_temp"] for i in range(30))
    assert list(splits.values()).count("test") == 18  # 9 of 30 boards


def test_group_needs_a_capture_group():
    with pytest.raises(ValidationError, match="capture group"):
        SplitRule(fractions={"train": 1.0}, group="_test$")
