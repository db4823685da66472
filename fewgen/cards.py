"""Dataset cards: YAML files that describe a known public layout so a recipe can name it.

A card says which format reads the layout, with which options, and how to assign
splits where the publisher gave none. A recipe then needs only ``card`` and ``root``.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fewgen.dataset import SPLITS, Dataset, Sample
from fewgen.errors import UsageError, did_you_mean
from fewgen.plugins import Registry


class SplitRule(BaseModel):
    """Samples matching ``where`` are divided between splits in the given proportions."""

    model_config = ConfigDict(extra="forbid")

    where: dict[str, str] = Field(
        default_factory=dict, description="Sample fields that must match: label, domain, split."
    )
    fractions: dict[str, float] = Field(
        description="Share of matching samples per split, e.g. {train: 0.8, test: 0.2}."
    )
    group: str | None = Field(
        None,
        description="Regular expression on sample ids; samples with the same first capture group share a split "
        "(e.g. a defective image and its defect-free template).",
    )

    @model_validator(mode="after")
    def _check(self) -> SplitRule:
        unknown = set(self.fractions) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown split {sorted(unknown)[0]!r}; splits are {', '.join(SPLITS)}")
        shares = self.fractions.values()
        if not all(math.isfinite(v) and v >= 0 for v in shares) or abs(sum(shares) - 1.0) > 1e-6:
            raise ValueError("split fractions must be non-negative and add up to 1")
        bad_fields = set(self.where) - {"label", "domain", "split"}
        if bad_fields:
            raise ValueError(f"'where' can match label, domain or split, not {sorted(bad_fields)[0]!r}")
        if self.group is not None:
            try:
                if re.compile(self.group).groups < 1:
                    raise ValueError("'group' needs a capture group, e.g. '(.*)_(test|temp)$'")
            except (re.error, RecursionError, OverflowError) as exc:  # deeply nested groups overflow the parser
                raise ValueError(f"'group' is not a valid regular expression: {exc}") from None
        return self

    def group_key(self, sample_id: str) -> str:
        if self.group is None:
            return sample_id
        match = re.search(self.group, sample_id)
        return match.group(1) if match else sample_id


class DatasetCard(BaseModel):
    """What a card file holds."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    homepage: str | None = None
    license: str | None = None
    format: str = Field(description="Name of a registered dataset format.")
    options: dict[str, Any] = Field(default_factory=dict, description="Options of that format.")
    root: str | None = Field(None, description="Default root, relative to the card file.")
    domain: str | None = Field(None, description="Domain given to samples whose layout names none (e.g. 'day').")
    splits: list[SplitRule] | None = Field(None, description="Split assignment; the first matching rule wins.")
    path: Path | None = Field(None, exclude=True)

    @field_validator("root")
    @classmethod
    def _path_text(cls, value: str | None) -> str | None:
        from fewgen.recipe import check_path_text

        return check_path_text(value)


def card_folders(registry: Registry) -> list[Path]:
    return [folder for _, folder in registry.card_folders.values()]


def available_cards(registry: Registry) -> dict[str, Path]:
    cards: dict[str, Path] = {}
    for folder in card_folders(registry):
        for path in sorted(Path(folder).glob("*.yaml")):
            cards.setdefault(path.stem, path)
    return cards


def load_card(name_or_path: str, registry: Registry, base_dir: Path | None = None) -> DatasetCard:
    """A card by registered name, or by path (relative to ``base_dir``)."""
    from fewgen.recipe import load_yaml_file, probe, shown, validation_message

    candidate = Path(name_or_path)
    if base_dir is not None and not candidate.is_absolute():
        candidate = base_dir / candidate
    if name_or_path.endswith((".yaml", ".yml")) or probe(candidate, "file"):
        path = candidate
        if not probe(path, "file"):
            raise UsageError(f"dataset card not found: {path}")
    else:
        cards = available_cards(registry)
        if name_or_path not in cards:
            raise UsageError(
                f"unknown dataset card {shown(name_or_path)}{did_you_mean(name_or_path, cards)}"
                f" (available: {', '.join(sorted(cards)) or 'none'})"
            )
        path = cards[name_or_path]
    data, lines = load_yaml_file(path)
    try:
        card = DatasetCard.model_validate(data)
    except Exception as exc:
        raise UsageError(validation_message(exc, path, lines)) from None
    card.path = path
    return card


def assign_splits(dataset: Dataset, rules: list[SplitRule], seed: int = 0) -> Dataset:
    """Assign splits by rule, deterministically: the order comes from a hash of (seed, group).

    Counts are exact (rounded, in groups; a group is one sample unless the rule says
    otherwise) rather than drawn per sample, so a 20-sample class split 0.8/0.2 always
    gives 16/4, and the same sample always lands in the same split.
    """
    groups: dict[int, list[Sample]] = {}
    unmatched: list[Sample] = []
    for sample in dataset.samples:
        for index, rule in enumerate(rules):
            if all(str(getattr(sample, key)) == value for key, value in rule.where.items()):
                groups.setdefault(index, []).append(sample)
                break
        else:
            unmatched.append(sample)
    assigned: dict[str, str] = {}
    for index, members in groups.items():
        rule = rules[index]
        units: dict[str, list[Sample]] = {}
        for sample in members:
            units.setdefault(rule.group_key(sample.id), []).append(sample)
        ordered = sorted(units, key=lambda key: hashlib.sha256(f"{seed}:{key}".encode()).hexdigest())
        fractions = [(split, share) for split, share in rule.fractions.items() if share > 0]
        start, cumulative = 0, 0.0
        for position, (split, share) in enumerate(fractions):
            cumulative += share
            end = len(ordered) if position == len(fractions) - 1 else round(cumulative * len(ordered))
            for key in ordered[start:end]:
                for sample in units[key]:
                    assigned[sample.id] = split
            start = end
    return dataset.with_samples(s.derive(split=assigned.get(s.id, s.split)) for s in dataset.samples)
