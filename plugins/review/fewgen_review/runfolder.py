"""What a finished fewgen run folder holds for a review, read without FiftyOne.

A run folder (written by ``fewgen run``) has ``manifest.json``, ``metrics.json``,
``dataset/samples.jsonl`` and, for evaluators that wrote files, ``reports/<step>/``. Two report
layouts carry per-sample predictions, and both are read here as their evaluators write them:

- detections (the ``yolo`` evaluator): ``reports/<step>/predictions/<model>-seed<N>.json``, a list
  of ``{"sample", "image", "boxes" (pixel x1 y1 x2 y2), "scores", "classes"}``, one file per
  trained model (``baseline``, ``augmented``) and training seed;
- anomaly maps (the ``anomaly`` evaluator): ``reports/<step>/predictions.json``,
  ``{"threshold", "map_size", "samples": {id: {"score", "label", "anomalous"?, "map"?}}}`` with
  map paths relative to the report folder.

Reports are recognised by layout, not by the evaluator's name, so another evaluator that writes
the same files is reviewed the same way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fewgen.dataset import Dataset
from fewgen.errors import UsageError

PREDICTION_FILE = re.compile(r"^(?P<model>.+)-seed(?P<seed>-?\d+)\.json$")


@dataclass(frozen=True)
class Detection:
    """One predicted box in pixels, with its confidence and class id."""

    box: tuple[float, float, float, float]
    score: float
    cls: int


@dataclass
class DetectionPredictions:
    """One model's test predictions from a detection evaluator step, by sample id."""

    step: str
    model: str
    seed: int
    path: Path
    by_sample: dict[str, list[Detection]]


@dataclass(frozen=True)
class AnomalyPrediction:
    score: float
    label: str | None
    anomalous: bool | None
    map_path: Path | None


@dataclass
class AnomalyPredictions:
    """An anomaly evaluator step's scores, verdicts and maps, by sample id."""

    step: str
    path: Path
    threshold: float | None
    by_sample: dict[str, AnomalyPrediction]


@dataclass
class RunFolder:
    path: Path
    manifest: dict[str, Any]
    metrics: dict[str, Any]
    dataset: Dataset
    detections: list[DetectionPredictions] = field(default_factory=list)
    anomalies: list[AnomalyPredictions] = field(default_factory=list)

    @property
    def recipe_name(self) -> str:
        return str(self.manifest.get("recipe", {}).get("resolved", {}).get("name", ""))


def default_dataset_name(run_dir: Path) -> str:
    """The FiftyOne dataset a run is exported to unless a name is given: the run folder's name."""
    return Path(run_dir).resolve().name


def read_run(run_dir: Path) -> RunFolder:
    """Read ``run_dir``; a missing folder or one that is no finished fewgen run is a ``UsageError``."""
    path = Path(run_dir).resolve()
    if not path.exists():
        raise UsageError(f"run folder not found: {run_dir}")
    if not path.is_dir():
        raise UsageError(f"not a folder: {run_dir}")
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file() or not (path / "dataset" / "samples.jsonl").is_file():
        raise UsageError(
            f"{run_dir} is not a fewgen run folder (it needs manifest.json and dataset/samples.jsonl,"
            " which `fewgen run` writes when a run finishes)"
        )
    manifest = _read_json(manifest_path)
    metrics_path = path / "metrics.json"
    metrics = _read_json(metrics_path) if metrics_path.is_file() else {}
    run = RunFolder(path, manifest, metrics, Dataset.load(path / "dataset"))
    for step in manifest.get("steps", []):
        if step.get("kind") != "evaluator":
            continue
        report = path / "reports" / step["name"]
        run.detections.extend(read_detection_predictions(report, step["name"], metrics.get(step["name"], {})))
        anomaly = read_anomaly_predictions(report, step["name"])
        if anomaly is not None:
            run.anomalies.append(anomaly)
    return run


def read_detection_predictions(report: Path, step: str, metrics: dict[str, Any]) -> list[DetectionPredictions]:
    """Each model's predictions of the first training seed (the one the evaluator's own report shows)."""
    folder = report / "predictions"
    if not folder.is_dir():
        return []
    files: dict[str, dict[int, Path]] = {}
    for path in sorted(folder.glob("*.json")):
        match = PREDICTION_FILE.match(path.name)
        if match:
            files.setdefault(match["model"], {})[int(match["seed"])] = path
    seeds = metrics.get("settings", {}).get("seeds") or []
    found = []
    for model, by_seed in sorted(files.items()):
        seed = seeds[0] if seeds and seeds[0] in by_seed else min(by_seed)
        records = _read_json(by_seed[seed])
        if not isinstance(records, list):
            raise UsageError(f"{by_seed[seed]}: expected a list of per-sample predictions")
        by_sample = {
            record["sample"]: [
                Detection((float(b[0]), float(b[1]), float(b[2]), float(b[3])), float(score), int(cls))
                for b, score, cls in zip(record["boxes"], record["scores"], record["classes"], strict=True)
            ]
            for record in records
        }
        found.append(DetectionPredictions(step, model, seed, by_seed[seed], by_sample))
    return found


def read_anomaly_predictions(report: Path, step: str) -> AnomalyPredictions | None:
    path = report / "predictions.json"
    if not path.is_file():
        return None
    payload = _read_json(path)
    if not isinstance(payload, dict) or not isinstance(payload.get("samples"), dict):
        return None
    by_sample = {
        sample_id: AnomalyPrediction(
            score=float(record["score"]),
            label=record.get("label"),
            anomalous=record.get("anomalous"),
            map_path=(report / record["map"]) if record.get("map") else None,
        )
        for sample_id, record in payload["samples"].items()
    }
    return AnomalyPredictions(step, path, payload.get("threshold"), by_sample)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
