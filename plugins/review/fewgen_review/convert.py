"""A finished run folder becomes a persistent FiftyOne dataset.

Every sample of the run (real and synthetic) becomes one FiftyOne sample with:

- tags ``real`` or ``synthetic`` plus the generator's name;
- fields ``fewgen_id``, ``split``, ``domain``, ``image_label`` and, for synthetic samples, the
  provenance fields ``generator``, ``step``, ``seed`` and ``parent`` (the parent's ``fewgen_id``);
- ``attributes``: the values steps attached with ``ctx.annotate``, by step name;
- ``ground_truth`` (``fo.Detections``, FiftyOne's relative ``[x, y, w, h]`` boxes) and
  ``ground_truth_mask`` (``fo.Segmentation`` by path);
- ``<step>_<model>`` detections of each trained model (``detect_baseline``,
  ``detect_augmented``), evaluated against the ground truth under the eval key
  ``eval_<step>_<model>``;
- ``<step>_map`` (``fo.Heatmap`` by path), ``<step>_score`` and ``<step>_anomalous`` of an anomaly
  evaluator.

Masks and maps are referenced by path, never copied into the database, and samples are added in
batches, so a run of tens of thousands of images exports in one pass. A new export is built under
a temporary name and swapped in when complete: a failed export leaves the previous one intact.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import operator
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fewgen.dataset import Sample
from fewgen.errors import UsageError
from fewgen_review.runfolder import DetectionPredictions, RunFolder, default_dataset_name

if TYPE_CHECKING:
    import fiftyone as fo

GT_FIELD = "ground_truth"
MASK_FIELD = "ground_truth_mask"
# ultralytics' own default prediction threshold. The yolo evaluator keeps boxes down to 0.001 for
# mAP; shown and matched at that level, every ground-truth box would count as found.
DEFAULT_MIN_CONFIDENCE = 0.25
DEFAULT_BATCH_SIZE = 1000
SYNTHETIC_VIEW = "synthetic only"
REAL_VIEW = "real only"
VANISHED_VIEW = "translated images whose objects vanished"
# MongoDB field names may hold neither dots (they are paths) nor a leading "$".
UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_]")


@dataclass
class ExportSummary:
    name: str
    samples: int
    boxes: int
    eval_keys: list[str]
    views: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)


def field_key(*parts: str) -> str:
    """A FiftyOne field name from step and model names (which may hold '-' and '.')."""
    return "_".join(UNSAFE_KEY.sub("_", part) for part in parts)


def safe_keys(value: Any) -> Any:
    """``value`` with every dict key usable as a MongoDB field name (a step name such as ``a.b``)."""
    if isinstance(value, dict):
        return {UNSAFE_KEY.sub("_", str(key)) if _unsafe(key) else key: safe_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [safe_keys(item) for item in value]
    return value


def _unsafe(key: Any) -> bool:
    return not isinstance(key, str) or "." in key or key.startswith("$")


def relative_box(x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> list[float]:
    """Pixel corners to FiftyOne's ``[top-left x, top-left y, width, height]`` in [0, 1]."""
    return [x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height]


def prediction_field(predictions: DetectionPredictions) -> str:
    return field_key(predictions.step, predictions.model)


def eval_key(predictions: DetectionPredictions) -> str:
    return f"eval_{prediction_field(predictions)}"


def vanished_steps(run: RunFolder) -> list[str]:
    """Attribute keys (step names) under which some sample carries a ``label_drift.vanished`` flag."""
    found: set[str] = set()
    for sample in run.dataset:
        for step, values in sample.attributes.items():
            drift = values.get("label_drift") if isinstance(values, dict) else None
            if isinstance(drift, dict) and "vanished" in drift:
                found.add(step)
    return sorted(found)


def build_sample(
    sample: Sample,
    run: RunFolder,
    min_confidence: float,
) -> fo.Sample:
    """One FiftyOne sample with the labels, provenance and predictions of one run sample."""
    import fiftyone as fo

    classes = run.dataset.classes
    w, h = sample.width, sample.height
    tags = ["synthetic", sample.provenance.generator] if sample.provenance else ["real"]
    fields: dict[str, Any] = {
        "tags": tags,
        "metadata": fo.ImageMetadata(width=w, height=h),
        "fewgen_id": sample.id,
        "split": sample.split,
        GT_FIELD: fo.Detections(
            detections=[
                fo.Detection(
                    label=run.dataset.class_name(box.cls),
                    bounding_box=relative_box(box.x1, box.y1, box.x2, box.y2, w, h),
                )
                for box in sample.boxes
            ]
        ),
    }
    if sample.domain is not None:
        fields["domain"] = sample.domain
    if sample.label is not None:
        fields["image_label"] = fo.Classification(label=sample.label)
    if sample.mask is not None:
        fields[MASK_FIELD] = fo.Segmentation(mask_path=str(sample.mask))
    if sample.provenance is not None:
        fields.update(
            generator=sample.provenance.generator,
            step=sample.provenance.step,
            seed=sample.provenance.seed,
            parent=sample.provenance.parent,
        )
    if sample.attributes:
        fields["attributes"] = safe_keys(sample.attributes)
    for predictions in run.detections:
        found = predictions.by_sample.get(sample.id)
        if found is None:
            continue
        fields[prediction_field(predictions)] = fo.Detections(
            detections=[
                fo.Detection(
                    label=classes[d.cls] if 0 <= d.cls < len(classes) else str(d.cls),
                    bounding_box=relative_box(*d.box, w, h),
                    confidence=d.score,
                )
                for d in found
                if d.score >= min_confidence
            ]
        )
    for anomaly in run.anomalies:
        verdict = anomaly.by_sample.get(sample.id)
        if verdict is None:
            continue
        base = field_key(anomaly.step)
        fields[f"{base}_score"] = verdict.score
        if verdict.anomalous is not None:
            fields[f"{base}_anomalous"] = bool(verdict.anomalous)
        if verdict.map_path is not None:
            # The evaluator writes 8-bit maps: 0 is normal, 255 the most anomalous.
            fields[f"{base}_map"] = fo.Heatmap(map_path=str(verdict.map_path), range=[0, 255])
    return fo.Sample(filepath=str(sample.image), **fields)


def batches(run: RunFolder, min_confidence: float, batch_size: int) -> Iterator[list[fo.Sample]]:
    batch: list[fo.Sample] = []
    for sample in run.dataset:
        batch.append(build_sample(sample, run, min_confidence))
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_info(run: RunFolder, min_confidence: float) -> dict[str, Any]:
    """What the dataset came from, stored in ``dataset.info``: the run, its steps, the versions."""
    import fiftyone as fo

    manifest = run.manifest
    return {
        "fewgen_run": {
            "path": str(run.path),
            "recipe": run.recipe_name,
            "seed": manifest.get("seed"),
            "started": manifest.get("timing", {}).get("started"),
            "fewgen": manifest.get("fewgen"),
        },
        "steps": [
            {key: step.get(key) for key in ("name", "kind", "component", "plugin", "version", "seed", "params")}
            for step in manifest.get("steps", [])
        ],
        "predictions": {
            prediction_field(p): {
                "step": p.step,
                "model": p.model,
                "training_seed": p.seed,
                "file": str(p.path),
                "eval_key": eval_key(p),
            }
            for p in run.detections
        },
        "anomaly_maps": {field_key(a.step): {"file": str(a.path), "threshold": a.threshold} for a in run.anomalies},
        "min_confidence": min_confidence,
        "fiftyone": fo.__version__,
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def export_run(
    run: RunFolder,
    name: str | None = None,
    overwrite: bool = False,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> ExportSummary:
    """Create (or replace) the persistent FiftyOne dataset of ``run`` and return what it holds.

    A dataset of that name exported from the same run folder is replaced; one from another run
    folder (or not from fewgen) is replaced only with ``overwrite``.
    """
    name = name or default_dataset_name(run.path)
    with _quiet_fiftyone():
        _check_replaceable(name, run, overwrite)
        return _export(run, name, min_confidence, batch_size, progress)


@contextlib.contextmanager
def _quiet_fiftyone() -> Iterator[None]:
    """FiftyOne logs progress ("Evaluating detections...") to stdout, where fewgen keeps results."""
    import fiftyone  # noqa: F401 - its import sets the level that is lowered here

    logger = logging.getLogger("fiftyone")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _export(run: RunFolder, name: str, min_confidence: float, batch_size: int, progress: bool) -> ExportSummary:
    import fiftyone as fo
    from tqdm.auto import tqdm

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    building = f"{name}.partial-{os.getpid()}"
    if fo.dataset_exists(building):
        fo.delete_dataset(building)
    dataset = fo.Dataset(building)
    try:
        dataset.persistent = True
        dataset.default_classes = list(run.dataset.classes)
        dataset.info = run_info(run, min_confidence)
        with tqdm(
            total=len(run.dataset),
            desc=f"exporting to FiftyOne {name!r}",
            unit="sample",
            disable=not progress,
            file=sys.stderr,
            leave=False,
        ) as bar:
            for batch in batches(run, min_confidence, batch_size):
                dataset.add_samples(batch, progress=False)
                bar.update(len(batch))
        seconds["add_samples"] = time.perf_counter() - started
        mark = time.perf_counter()
        keys = evaluate(dataset, run.detections)
        seconds["evaluate"] = time.perf_counter() - mark
        mark = time.perf_counter()
        views = save_views(dataset, run)
        seconds["views"] = time.perf_counter() - mark
        dataset.save()
        if fo.dataset_exists(name):
            fo.delete_dataset(name)
        dataset.name = name
    except BaseException:
        dataset.delete()
        raise
    seconds["total"] = time.perf_counter() - started
    return ExportSummary(
        name=name,
        samples=len(dataset),
        boxes=dataset.count(f"{GT_FIELD}.detections"),
        eval_keys=keys,
        views=views,
        seconds={key: round(value, 3) for key, value in seconds.items()},
    )


def _check_replaceable(name: str, run: RunFolder, overwrite: bool) -> None:
    import fiftyone as fo

    if overwrite or not fo.dataset_exists(name):
        return
    source = fo.load_dataset(name).info.get("fewgen_run", {}).get("path")
    if source != str(run.path):
        origin = f"the run {source}" if source else "no fewgen run"
        raise UsageError(f"FiftyOne dataset {name!r} already holds {origin}; choose another name or overwrite it")


def evaluate(dataset: fo.Dataset, detections: list[DetectionPredictions]) -> list[str]:
    """Match each model's predictions to the ground truth on the samples it predicted on (its test split)."""
    from fiftyone import ViewField as F

    keys = []
    for predictions in detections:
        field_name = prediction_field(predictions)
        view = dataset.match(F(field_name).exists())
        view.evaluate_detections(field_name, gt_field=GT_FIELD, eval_key=eval_key(predictions), progress=False)
        keys.append(eval_key(predictions))
    return keys


def save_views(dataset: fo.Dataset, run: RunFolder) -> dict[str, int]:
    """The saved views a reviewer opens first, with the number of samples each holds."""
    from fiftyone import ViewField as F

    views: dict[str, Any] = {
        SYNTHETIC_VIEW: dataset.match_tags("synthetic"),
        REAL_VIEW: dataset.match_tags("real"),
    }
    by_step: dict[str, dict[str, DetectionPredictions]] = {}
    for predictions in run.detections:
        by_step.setdefault(predictions.step, {})[predictions.model] = predictions
    for step, models in sorted(by_step.items()):
        if "baseline" not in models:
            continue
        missed = eval_key(models["baseline"])
        for model in sorted(models):
            if model == "baseline":
                continue
            found = eval_key(models[model])
            # Only the ground-truth boxes in question are kept, so the App shows exactly those.
            views[missed_view_name(step, model)] = dataset.filter_labels(
                GT_FIELD, (F(missed) == "fn") & (F(found) == "tp")
            )
    steps = vanished_steps(run)
    if steps:
        flags = [F(f"attributes.{field_key(step)}.label_drift.vanished") == True for step in steps]  # noqa: E712
        views[VANISHED_VIEW] = dataset.match(functools.reduce(operator.or_, flags))
    for anomaly in run.anomalies:
        if any(v.anomalous is not None for v in anomaly.by_sample.values()):
            views[f"{anomaly.step}: predicted anomalous"] = dataset.match(F(f"{field_key(anomaly.step)}_anomalous"))
    for view_name, view in views.items():
        dataset.save_view(view_name, view, overwrite=True)
    return {view_name: len(view) for view_name, view in views.items()}


def missed_view_name(step: str, model: str = "augmented") -> str:
    return f"{step}: baseline misses the {model} model found"


def list_run_datasets() -> list[dict[str, Any]]:
    """The FiftyOne datasets exported from fewgen runs: name, sample count, run folder, export time."""
    import fiftyone as fo

    found = []
    for name in fo.list_datasets():
        if ".partial-" in name:  # an export in progress, or one whose process died
            continue
        dataset = fo.load_dataset(name)
        run = dataset.info.get("fewgen_run")
        if run is None:
            continue
        found.append(
            {"name": name, "samples": len(dataset), "run": run.get("path"), "exported": dataset.info.get("exported")}
        )
    return found
