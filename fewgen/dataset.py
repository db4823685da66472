"""The one representation of a dataset that every step, format and evaluator shares.

A :class:`Sample` is one image with everything fewgen knows about it: size, boxes,
an optional pixel mask, an image-level label, a domain, a split and, for samples a
generator made, where it came from. Paths are absolute in memory; on disk
(``samples.jsonl``) they are written relative to the file's folder so a dataset can
be moved as a whole.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

SPLITS = ("train", "val", "test")
# Control characters, NUL and newline among them, have no place in names that become file names.
UNSAFE_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates (x1, y1) top-left, (x2, y2) bottom-right."""

    cls: int
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    def clipped(self, width: int, height: int) -> Box:
        return Box(
            self.cls,
            min(max(self.x1, 0.0), width),
            min(max(self.y1, 0.0), height),
            min(max(self.x2, 0.0), width),
            min(max(self.y2, 0.0), height),
        )


@dataclass(frozen=True)
class Provenance:
    """Where a synthetic sample came from; real samples have none."""

    generator: str
    step: str
    seed: int
    parent: str | None = None


@dataclass(frozen=True)
class Sample:
    """One image and its labels."""

    id: str
    image: Path
    width: int
    height: int
    split: str = "train"
    boxes: tuple[Box, ...] = ()
    mask: Path | None = None
    label: str | None = None
    domain: str | None = None
    provenance: Provenance | None = None
    # Per-sample values written by steps (predictions, scores, flags), JSON-serialisable.
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def is_synthetic(self) -> bool:
        return self.provenance is not None

    def derive(self, **changes: Any) -> Sample:
        return replace(self, **changes)

    def to_record(self, base: Path) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "image": _relative(self.image, base),
            "width": self.width,
            "height": self.height,
            "split": self.split,
            "boxes": [[b.cls, _round(b.x1), _round(b.y1), _round(b.x2), _round(b.y2)] for b in self.boxes],
        }
        if self.mask is not None:
            record["mask"] = _relative(self.mask, base)
        for key in ("label", "domain"):
            if getattr(self, key) is not None:
                record[key] = getattr(self, key)
        if self.provenance is not None:
            record["provenance"] = asdict(self.provenance)
        if self.attributes:
            record["attributes"] = self.attributes
        return record

    @classmethod
    def from_record(cls, record: Any, base: Path) -> Sample:
        """The sample a ``samples.jsonl`` record describes; ValueError names a missing key or a wrong JSON type."""
        if not isinstance(record, dict):
            raise ValueError(f"a record must be a JSON object, not {_json_type(record)}")
        provenance = _typed(record, "provenance", dict)
        try:
            return cls(
                id=_typed(record, "id", str, required=True),
                image=_absolute(_typed(record, "image", str, required=True), base),
                width=_whole(record, "width"),
                height=_whole(record, "height"),
                split=_typed(record, "split", str) or "train",
                boxes=tuple(
                    Box(int(c), float(a), float(b), float(d), float(e))
                    for c, a, b, d, e in _typed(record, "boxes", list) or []
                ),
                mask=_absolute(mask, base) if (mask := _typed(record, "mask", str)) else None,
                label=_typed(record, "label", str),
                domain=_typed(record, "domain", str),
                provenance=Provenance(**provenance) if provenance else None,
                attributes=dict(_typed(record, "attributes", dict) or {}),
            )
        except (TypeError, OverflowError) as exc:  # a box that is not five numbers, a provenance with other keys
            raise ValueError(str(exc)) from None


@dataclass
class Dataset:
    """An ordered collection of samples and the class names their boxes refer to."""

    samples: list[Sample]
    classes: list[str] = field(default_factory=list)
    name: str = "dataset"

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]

    def with_samples(self, samples: Iterable[Sample]) -> Dataset:
        return Dataset(list(samples), list(self.classes), self.name)

    def summary(self) -> dict[str, Any]:
        """Counts a person checks first: samples per split, domain and origin, boxes per class."""
        boxes = Counter(b.cls for s in self.samples for b in s.boxes)
        return {
            "samples": len(self.samples),
            "splits": dict(sorted(Counter(s.split for s in self.samples).items())),
            "domains": dict(sorted(Counter(s.domain or "" for s in self.samples).items())),
            "synthetic": sum(s.is_synthetic for s in self.samples),
            "boxes": {self.class_name(c): n for c, n in sorted(boxes.items())},
        }

    def class_name(self, cls: int) -> str:
        return self.classes[cls] if 0 <= cls < len(self.classes) else str(cls)

    def save(self, folder: Path) -> None:
        """Write ``dataset.json`` (classes, name) and ``samples.jsonl`` into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "dataset.json").write_text(
            json.dumps({"name": self.name, "classes": self.classes}, indent=2) + "\n", encoding="utf-8"
        )
        with open(folder / "samples.jsonl", "w", encoding="utf-8") as f:
            for sample in self.samples:
                f.write(json.dumps(sample.to_record(folder), sort_keys=True) + "\n")

    @classmethod
    def load(cls, folder: Path) -> Dataset:
        meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
        with open(folder / "samples.jsonl", encoding="utf-8") as f:
            samples = [Sample.from_record(json.loads(line), folder) for line in f if line.strip()]
        return cls(samples, list(meta.get("classes", [])), meta.get("name", "dataset"))


def name_problem(text: str) -> str | None:
    """Why ``text`` from a dataset (an id, a label, a class name, a relative path) is unsafe, or None.

    Such text ends up in file names and log lines, so control characters (NUL, newline, ...),
    absolute paths and ``..`` segments, which could lead a written file out of its folder, are refused.
    """
    if UNSAFE_CHARACTERS.search(text):
        return "contains a control character (NUL, newline, ...)"
    if text.startswith(("/", "\\")):
        return "is an absolute path"
    if ".." in re.split(r"[/\\]", text):
        return "contains a '..' segment"
    return None


def sample_problem(sample: Sample) -> str | None:
    """Why a sample read from a dataset cannot be used, or None: an unknown split, an unsafe id, label or domain,
    or a file path with control characters."""
    if sample.split not in SPLITS:
        return f"split {sample.split!r} is not one of {', '.join(SPLITS)}"
    if not sample.id:
        return "empty id"
    for key in ("id", "label", "domain"):
        value = getattr(sample, key)
        problem = name_problem(value) if value is not None else None
        if problem:
            return f"{key} {value!r} {problem}"
    for key in ("image", "mask"):
        path = getattr(sample, key)
        if path is not None and UNSAFE_CHARACTERS.search(str(path)):
            return f"{key} path {str(path)!r} contains a control character (NUL, newline, ...)"
    return None


def _typed(record: dict[str, Any], key: str, kind: Any, required: bool = False) -> Any:
    """``record[key]`` if it has the JSON type ``kind`` (None when absent or null and not required)."""
    value = record.get(key)
    if value is None:
        if required:
            raise ValueError(f"missing {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, kind):  # JSON true is no number
        raise ValueError(f"{key!r} must be {_JSON_TYPES[kind]}, not {_json_type(value)}")
    return value


def _whole(record: dict[str, Any], key: str) -> int:
    value = _typed(record, key, int | float, required=True)
    if not float(value).is_integer() or value <= 0:
        raise ValueError(f"{key!r} must be a positive whole number, not {value!r}")
    return int(value)


_JSON_TYPES: dict[Any, str] = {str: "a string", int | float: "a number", list: "a list", dict: "an object"}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return next((name for kind, name in _JSON_TYPES.items() if isinstance(value, kind)), type(value).__name__)


def _round(value: float) -> float:
    # Six decimals of a pixel is far below any labelling precision and keeps files stable.
    return round(float(value), 6)


def _relative(path: Path, base: Path) -> str:
    # Files inside the dataset folder move with it; files elsewhere (the real images of
    # a source dataset) stay where they are, so they keep their absolute path.
    try:
        return Path(path).relative_to(base).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _absolute(text: str, base: Path) -> Path:
    path = Path(text)
    return path if path.is_absolute() else Path(os.path.normpath(base / path))
