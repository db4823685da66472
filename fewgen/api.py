"""What a plugin implements: generators, evaluators and dataset formats.

A plugin registers *classes* through the hooks in :mod:`fewgen.hookspecs`. Each class
names itself (``name``), declares its parameters as a pydantic model (``Params``) so
recipes are validated before anything runs, and does its work given a
:class:`StepContext`. Heavy libraries belong inside the methods, not at the top of
the plugin's hook module, so that ``fewgen plugins`` and a cached rerun stay fast.
"""

from __future__ import annotations

import logging
import math
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from fewgen.dataset import Dataset, Provenance, Sample

# Parameter types for files and folders (resolved like dataset.root, contents in the cache key).
from fewgen.paths import InputFile as InputFile
from fewgen.paths import InputFolder as InputFolder
from fewgen.paths import InputPath as InputPath

if TYPE_CHECKING:
    import numpy as np

T = TypeVar("T")
# Characters of a sample id kept in file names; the rest become "_", so no id can lead a file
# out of the step's work folder.
UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]+")


class Params(BaseModel):
    """Base for plugin parameters: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid")

    def step_references(self) -> dict[tuple[str, ...], list[str]]:
        """Names of earlier generator steps these parameters refer to, by the parameter's key path.

        An evaluator that treats samples by the step that made them (the ``yolo`` evaluator's
        ``variants``) returns them here; the recipe loader checks that each names a generator
        step before this one, so a typo is a one-line recipe error, not a failure after hours
        of generation.
        """
        return {}


class NoParams(Params):
    """For components without settings."""


@dataclass
class SampleIssue:
    """A sample that could not be used, and why (reported in the manifest, never fatal)."""

    path: str
    reason: str


@dataclass
class ReadResult:
    dataset: Dataset
    issues: list[SampleIssue] = field(default_factory=list)


@dataclass
class StepContext:
    """Everything a step may use: its seed, a work folder, the device, progress display."""

    step: str
    seed: int
    work_dir: Path
    device: str
    log: logging.Logger
    show_progress: bool = True
    # Survives an interrupted run (unlike work_dir): checkpoints go here so training resumes.
    scratch_dir: Path | None = None
    issues: list[SampleIssue] = field(default_factory=list)
    # Per-sample values for samples the step was given (see annotate), by sample id.
    annotations: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Torch threads the engine set for this step (the thread policy's choice, in the manifest).
    threads: int = 1
    # Files outside the dataset that the step read and that decide its result (see record_file).
    files_read: list[dict[str, Any]] = field(default_factory=list)

    def rng(self, *salt: int) -> np.random.Generator:
        """A random generator derived from the step seed; salts give independent streams."""
        import numpy as np  # imported on use: a cached rerun never needs it

        return np.random.default_rng([self.seed, *salt])

    def seed_torch(self) -> None:
        """Seed torch (CPU and CUDA) from the step seed; call it before building models or sampling."""
        import torch

        torch.manual_seed(self.seed)

    def progress(self, items: Iterable[T], total: int | None = None, desc: str | None = None) -> Iterator[T]:
        from tqdm.auto import tqdm

        return iter(tqdm(items, total=total, desc=desc or self.step, disable=not self.show_progress, leave=False))

    def note(self, message: str) -> None:
        """Tell the user what a long step is doing now (stderr, unless progress display is off)."""
        if self.show_progress:
            from tqdm.auto import tqdm

            tqdm.write(f"{self.step}: {message}", file=sys.stderr)
        else:
            self.log.info(message)

    def annotate(self, sample_id: str, values: dict[str, Any]) -> None:
        """Attach JSON values (a prediction, a score, a flag) to a sample of the step's input dataset.

        After the step the engine stores them in that sample's ``attributes`` under the step's
        name (``attributes[step] = values``), so later steps, the exported dataset and a
        reviewer see them; calling it again for the same sample adds to the values. This is how
        an evaluator or a labelling step writes per-sample predictions into the dataset without
        making new samples.
        """
        self.annotations.setdefault(sample_id, {}).update(values)

    def record_file(self, path: str | Path, role: str) -> str:
        """Note a file the recipe named that the step reads (weights, a style image); returns its SHA-256.

        The manifest lists each with its hash, so a result can be traced to the exact file,
        and a ``.pt`` that ultralytics unpickles (which can run code) is on record.
        """
        import hashlib

        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        sha256 = digest.hexdigest()
        self.files_read.append({"path": str(Path(path).resolve()), "role": role, "sha256": sha256})
        return sha256

    def skip(self, path: str | Path, reason: str) -> None:
        """Record a sample that could not be processed; the step goes on without it."""
        self.issues.append(SampleIssue(str(path), reason))
        self.log.warning("skipped %s: %s", path, reason)


class Component(ABC):
    """Shared by generators and evaluators: a registered name, parameters, a description."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]] = NoParams
    description: ClassVar[str] = ""

    def __init__(self, params: Params) -> None:
        self.params = params


class Generator(Component):
    """Makes new samples from a dataset. Learning generators override :meth:`fit`."""

    learns: ClassVar[bool] = False

    def fit(self, dataset: Dataset, ctx: StepContext) -> None:
        """Learn from ``dataset`` before :meth:`generate`; checkpoints go to ``ctx.scratch_dir``."""

    @abstractmethod
    def generate(self, dataset: Dataset, ctx: StepContext) -> Iterable[Sample]:
        """Yield new samples; their files must be written under ``ctx.work_dir``."""

    def provenance(self, ctx: StepContext, parent: Sample | None) -> Provenance:
        return Provenance(generator=self.name, step=ctx.step, seed=ctx.seed, parent=parent.id if parent else None)


class Evaluator(Component):
    """Measures a dataset (or models trained on it) and returns JSON-serialisable metrics."""

    @abstractmethod
    def evaluate(self, dataset: Dataset, ctx: StepContext) -> dict[str, Any]:
        """Return metrics; figures, reports or models may be written under ``ctx.work_dir``."""


class DatasetFormat(ABC):
    """Reads and writes one on-disk dataset layout."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[Params]] = NoParams
    # Options of write() when they differ from read()'s (a reader may need paths a writer does not).
    WriteOptions: ClassVar[type[Params] | None] = None

    @classmethod
    def write_options(cls) -> type[Params]:
        return cls.WriteOptions or cls.Options

    @abstractmethod
    def read(self, root: Path, options: Params) -> ReadResult:
        """Read the dataset under ``root``; unusable samples go to ``ReadResult.issues``."""

    def write(self, dataset: Dataset, dest: Path, options: Params) -> Dataset:
        """Write ``dataset`` under ``dest`` (an empty folder); return it with paths pointing there."""
        raise NotImplementedError(f"the {self.name!r} format can only be read")

    @property
    def writable(self) -> bool:
        return type(self).write is not DatasetFormat.write


def choose_fraction(samples: list[Sample], fraction: float, rng: np.random.Generator) -> list[tuple[int, Sample]]:
    """``fraction`` of the samples (rounded half up), drawn at random, with their input positions, in input order.

    Generators pass ``ctx.rng()``, so the choice is fixed by the step seed.
    """
    count = math.floor(fraction * len(samples) + 0.5)
    positions = sorted(int(i) for i in rng.choice(len(samples), size=count, replace=False))
    return [(i, samples[i]) for i in positions]


def file_stem(index: int, sample_id: str) -> str:
    """A file name unique within a step (the input position) that a person can trace to its parent (the id).

    Ids may hold ``/`` or be absolute paths; neither may lead a file out of the work folder.
    """
    readable = UNSAFE_NAME_CHARACTERS.sub("_", sample_id).strip("_")[:80]
    return f"{index:06d}_{readable}" if readable else f"{index:06d}"
