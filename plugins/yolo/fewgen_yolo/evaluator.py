"""The ``yolo`` evaluator: the same detector trained without and with each set of synthetic samples.

A baseline trains on the real training split alone; each *variant* trains on the real split
plus the synthetic samples of the generator steps it names (``variants: {rot90: [rotate_flip],
paste: [paste]}``; by default one variant, ``augmented``, with every step's samples). All
models share the model definition, settings and training seeds; only the training images
differ. By default they also take the same number of optimiser steps (``schedule:
same_steps``): a larger training set otherwise brings more steps per epoch, and a gain from
training longer would be credited to the synthetic images. Every model is tested on the same
real held-out split; each variant's difference in mAP gets a two-level bootstrap interval
(test images and training seeds, :mod:`fewgen.verdicts`) and a verdict: helps, hurts, or no
measurable effect.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from fewgen.api import Evaluator, Params, StepContext
from fewgen.dataset import Dataset, Sample
from fewgen.errors import UsageError

BASELINE = "baseline"
DEFAULT_VARIANT = "augmented"
# Variant names become file names (predictions/<name>-seed<N>.json) and FiftyOne field names.
VARIANT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


class YoloParams(Params):
    model: str = Field(
        "yolo11n.yaml",
        description="Model YAML to train from scratch (an ultralytics name such as yolov8n.yaml, or a path), "
        "or a path to .pt weights to fine-tune. Weights are never downloaded.",
    )
    epochs: int = Field(
        30, ge=1, description="Training epochs of the model with the largest training set (every model, same_epochs)."
    )
    schedule: Literal["same_epochs", "same_steps"] = Field(
        "same_steps",
        description="same_steps (default): every model takes the optimiser steps of `epochs` epochs over the largest "
        "training set, so smaller sets train for proportionally more epochs; this separates the effect of the "
        "synthetic images from the effect of simply training longer. same_epochs: every model trains `epochs` "
        "epochs, so a variant with more images also takes more steps (its gain is partly training length).",
    )
    variants: dict[str, list[str]] | None = Field(
        None,
        description="Augmented models to compare with the baseline: name -> the generator steps whose synthetic "
        "samples it trains on, beside the real ones (e.g. {rot90: [rotate_flip], all: [rotate_flip, paste]}). "
        "Default: one variant, 'augmented', with every synthetic sample of the training split.",
    )
    imgsz: int = Field(320, ge=32, description="Training and test image size (pixels, longest side).")
    batch: int = Field(
        8,
        ge=1,
        description="Training batch size. Unless train_args sets nbs, every batch is an optimiser step (nbs = batch).",
    )
    seeds: list[int] = Field(
        default_factory=lambda: [0, 1, 2],
        min_length=1,
        description="Training seeds: every model is trained once per seed; figures are mean ± std and the delta "
        "intervals cover seed-to-seed variation. Fewer seeds are cheaper; the report then says the intervals "
        "miss what the seeds left out.",
    )
    classes: list[str] | None = Field(
        None,
        description="Class names the detectors learn and are scored on (boxes of other classes are dropped); "
        "default: every class of the dataset. [person] on COCO scores a person detector.",
    )
    real_labels: list[str | None] | None = Field(
        None,
        description="Image-level labels of the real samples the models train, validate and test on (null in the "
        "list: unlabelled samples); default: every real sample. [defective] leaves defect-free templates, which "
        "generators paint into, out of the detectors' data.",
    )
    train_split: str = Field("train", description="Split the models train on (synthetic samples join it).")
    val_split: str | None = Field(
        "val", description="Real split ultralytics validates on while training (picks best.pt); null to use last.pt."
    )
    test_split: str = Field("test", description="Real held-out split both models are tested on.")
    conf: float = Field(0.001, gt=0, lt=1, description="Confidence threshold of test predictions (low, as for mAP).")
    iou: float = Field(0.7, gt=0, lt=1, description="NMS IoU threshold of test predictions.")
    max_det: int = Field(300, ge=1, description="Most detections kept per test image.")
    bootstrap: int = Field(1000, ge=100, description="Bootstrap replicates (test images and seeds) for the CIs.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence level of the intervals.")
    train_args: dict[str, Any] = Field(
        default_factory=dict, description="Further ultralytics training arguments, the same for both models."
    )
    report_images: int = Field(12, ge=0, description="Test images shown with both models' predictions in the report.")

    @field_validator("model")
    @classmethod
    def _model_is_local(cls, model: str) -> str:
        from fewgen_yolo.training import check_model

        check_model(model)
        return model

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds must differ from each other; a repeated seed trains the same model twice")
        return seeds

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, variants: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if variants is None:
            return None
        if not variants:
            raise ValueError("variants must name at least one variant (or leave it out for one, 'augmented')")
        for name, steps in variants.items():
            if name == BASELINE:
                raise ValueError("'baseline' is the model without synthetic data; give the variant another name")
            if not VARIANT_NAME.match(name):
                raise ValueError(
                    f"variant name {name!r} must start with a letter and hold only letters, digits and _ (at most 40)"
                )
            if not steps:
                raise ValueError(f"variant {name!r} names no generator step")
            if len(set(steps)) != len(steps):
                raise ValueError(f"variant {name!r} names a step twice")
        return variants

    def step_references(self) -> dict[tuple[str, ...], list[str]]:
        return {("variants", name): steps for name, steps in (self.variants or {}).items()}

    @model_validator(mode="after")
    def _distinct_splits(self) -> YoloParams:
        if self.test_split in (self.train_split, self.val_split):
            raise ValueError("test_split must differ from train_split and val_split")
        reserved = {"data", "epochs", "imgsz", "batch", "device", "seed", "project", "name", "resume", "model"}
        clash = sorted(reserved & set(self.train_args))
        if clash:
            raise ValueError(f"set {clash[0]!r} with this evaluator's own parameter, not in train_args")
        if "cfg" in self.train_args:
            # A cfg file's arguments, weights among them, would reach ultralytics without these checks.
            raise ValueError("train_args may not name a cfg file; give its arguments in train_args")
        pretrained = self.train_args.get("pretrained")
        if not isinstance(pretrained, bool | None):
            if not str(pretrained).endswith(".pt"):
                raise ValueError(
                    f"train_args.pretrained must be true, false or a path to .pt weights, got {pretrained!r}"
                )
            from fewgen_yolo.training import check_model

            check_model(str(pretrained))
        return self


class YoloEvaluator(Evaluator):
    name = "yolo"
    description = (
        "Trains a YOLO detector on the real training split alone and on real + each variant's synthetic samples "
        "(equal optimiser steps, several seeds), and compares them on a real held-out split: mAP50, mAP50-95, "
        "per-class AP, delta with a two-level bootstrap CI and a verdict per variant."
    )
    Params = YoloParams

    def evaluate(self, dataset: Dataset, ctx: StepContext) -> dict[str, Any]:
        # ultralytics' progress bars write to stdout, which fewgen keeps for results
        # (`fewgen bench` prints JSON there); the user still sees them, on stderr.
        with contextlib.redirect_stdout(sys.stderr):
            return self._train_and_compare(dataset, ctx)

    def _train_and_compare(self, dataset: Dataset, ctx: StepContext) -> dict[str, Any]:
        from fewgen.cache import default_cache_dir
        from fewgen_yolo import metrics, report, training

        params: YoloParams = self.params  # type: ignore[assignment]
        ctx.seed_torch()
        if params.classes is not None:
            dataset = only_classes(dataset, params.classes)
        splits = _splits(dataset, params)
        if not dataset.classes:
            raise UsageError("yolo: the dataset names no classes; a detector needs boxes with classes")
        # Before ultralytics loads them: a .pt is unpickled, which can run code.
        for path, role in training.named_files(params.model, params.train_args):
            ctx.record_file(path, role)
        ultralytics = training.prepare_ultralytics(default_cache_dir() / "ultralytics")
        # ultralytics accumulates gradients up to a nominal batch of 64 images: on a few dozen
        # training images that is less than one optimiser step per epoch, and a detector trained
        # from scratch never leaves mAP 0. Stepping on every batch is what small data needs.
        extra = {"nbs": params.batch, **params.train_args}
        settings = training.TrainSettings(params.model, params.epochs, params.imgsz, params.batch, ctx.device, extra)
        train_sets = {BASELINE: splits["train"]}
        for name, synthetic in splits["variants"].items():
            train_sets[name] = splits["train"] + synthetic
        models = list(train_sets)
        sizes = {model: len(images) for model, images in train_sets.items()}
        epochs = schedule_epochs(sizes, params.epochs, params.batch, params.schedule)
        assert ctx.scratch_dir is not None  # the engine always gives one
        # ultralytics' own split names, whatever the dataset calls them. Its data YAML must name a
        # val split; without one, training runs with val=False (last.pt is kept) and the entry
        # points at the test images only to satisfy the format: they never steer training.
        layouts = {
            model: training.write_layout(
                {"train": train_sets[model], "val": splits["val"] or splits["test"], "test": splits["test"]},
                dataset.classes,
                ctx.scratch_dir / "layouts" / model,
            )
            for model in models
        }
        test_images = [s.image for s in splits["test"]]
        truths = [
            metrics.GroundTruth(s.id, [[b.x1, b.y1, b.x2, b.y2] for b in s.boxes], [b.cls for b in s.boxes])
            for s in splits["test"]
        ]
        runs = [(model, seed) for seed in params.seeds for model in models]
        matches: dict[str, list[list[Any]]] = {model: [] for model in models}
        per_seed: dict[str, list[dict[str, Any]]] = {model: [] for model in models}
        predictions: dict[str, list[training.Prediction]] = {}
        crosscheck: dict[str, Any] = {}
        for run_index, (model, seed) in enumerate(runs, start=1):
            ctx.note(
                f"training the {model} model, seed {seed} ({run_index} of {len(runs)}):"
                f" {sizes[model]} images, {epochs[model]} epochs"
            )
            run_name = f"{model}-seed{seed}"
            started = time.perf_counter()
            weights = training.train(
                ultralytics,
                layouts[model],
                dataclasses.replace(settings, epochs=epochs[model]),
                seed,
                ctx.scratch_dir / "runs" / run_name,
                validate_during_training=bool(splits["val"]),
            )
            train_seconds = round(time.perf_counter() - started, 1)
            kept = ctx.work_dir / "models" / f"{run_name}.pt"
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_bytes(weights.read_bytes())
            found = training.predict(
                ultralytics,
                weights,
                test_images,
                settings,
                params.conf,
                params.iou,
                params.max_det,
                lambda items, desc=f"{ctx.step}: {run_name} predictions": ctx.progress(
                    items, total=len(test_images), desc=desc
                ),
            )
            _save_predictions(ctx.work_dir / "predictions" / f"{run_name}.json", splits["test"], found)
            detections = [metrics.Detections(p.boxes, p.scores, p.classes) for p in found]
            image_matches = [metrics.match_image(t, d) for t, d in zip(truths, detections, strict=True)]
            matches[model].append(image_matches)
            ap = metrics.average_precision(image_matches, len(dataset.classes))
            per_seed[model].append({"seed": seed, "train_seconds": train_seconds, **_ap_summary(ap, dataset.classes)})
            if seed == params.seeds[0]:
                predictions[model] = found
                crosscheck[model] = {
                    "ultralytics": training.ultralytics_test_metrics(
                        ultralytics, weights, layouts[model], "test", settings, params.conf, params.iou
                    ),
                    **metrics.coco_crosscheck(truths, detections, dataset.classes),
                }
        comparison = metrics.bootstrap_deltas(
            matches[BASELINE],
            {name: matches[name] for name in splits["variants"]},
            len(dataset.classes),
            resamples=params.bootstrap,
            seed=ctx.seed,
            confidence=params.confidence,
        )
        steps_per_epoch = {model: math.ceil(size / params.batch) for model, size in sizes.items()}
        run_settings = {
            "model": params.model,
            "epochs": params.epochs,
            "schedule": params.schedule,
            "model_epochs": epochs,
            "optimizer_steps": {model: epochs[model] * steps_per_epoch[model] for model in models},
            "imgsz": params.imgsz,
            "batch": params.batch,
            "seeds": params.seeds,
            "train_split": params.train_split,
            "test_split": params.test_split,
            "device": ctx.device,
            "train_images": {"real": len(splits["train"]), "synthetic": splits["synthetic_count"]},
            "variant_steps": splits["variant_steps"],
            "variant_images": {name: len(images) for name, images in splits["variants"].items()},
            "val_images": len(splits["val"]),
            "test_images": len(splits["test"]),
            "test_boxes": sum(len(s.boxes) for s in splits["test"]),
            "uncertainty": uncertainty_note(params.seeds),
        }
        result = summarise(run_settings, per_seed, comparison, crosscheck)
        report.write_report(
            ctx.work_dir,
            result,
            dataset=dataset,
            test_samples=splits["test"],
            predictions=predictions,
            ap_results={model: metrics.average_precision(matches[model][0], len(dataset.classes)) for model in models},
            images_shown=params.report_images,
        )
        return result


def summarise(
    settings: dict[str, Any],
    per_seed: dict[str, list[dict[str, Any]]],
    comparison: dict[str, Any],
    crosscheck: dict[str, Any],
) -> dict[str, Any]:
    """The evaluator's result: settings, the baseline's figures, each variant's figures, delta and verdict."""
    return {
        "settings": settings,
        BASELINE: _combine(per_seed[BASELINE]),
        "variants": {
            name: {
                **_combine(per_seed[name]),
                "delta": deltas,
                "verdict": deltas["map50"]["verdict"],
            }
            for name, deltas in comparison["variants"].items()
        },
        "pairwise": comparison["pairwise"],
        "bootstrap": {
            key: comparison[key] for key in ("num_images", "num_seeds", "resamples", "seed", "confidence", "method")
        },
        "crosscheck": crosscheck,
    }


def only_classes(dataset: Dataset, names: list[str]) -> Dataset:
    """The dataset with boxes of ``names`` only, renumbered in that order (the detectors' classes)."""
    unknown = [name for name in names if name not in dataset.classes]
    if unknown:
        raise UsageError(f"yolo: class {unknown[0]!r} is not a class of the dataset ({', '.join(dataset.classes)})")
    new_id = {dataset.classes.index(name): index for index, name in enumerate(names)}
    samples = [
        s.derive(boxes=tuple(dataclasses.replace(b, cls=new_id[b.cls]) for b in s.boxes if b.cls in new_id))
        for s in dataset
    ]
    return Dataset(samples, list(names), dataset.name)


def schedule_epochs(train_images: dict[str, int], epochs: int, batch: int, schedule: str) -> dict[str, int]:
    """Epochs per model: all ``epochs`` (same_epochs), or matched optimiser steps (same_steps).

    Under same_steps the model with the largest training set trains ``epochs`` epochs; every
    other model trains for the number of epochs that brings it closest to the same number of
    optimiser steps (one step per batch and ``ceil(images / batch)`` batches an epoch, as
    ultralytics' loader keeps the last, partial batch), and never fewer than ``epochs``.
    """
    if schedule == "same_epochs":
        return {model: epochs for model in train_images}
    steps = {model: math.ceil(images / batch) for model, images in train_images.items()}
    target = epochs * max(steps.values())
    return {model: max(epochs, round(target / per_epoch)) for model, per_epoch in steps.items()}


def uncertainty_note(seeds: list[int]) -> str:
    """What the intervals cover, said plainly, so a report with one seed does not read as more than it is."""
    if len(seeds) == 1:
        return (
            "one training seed: the intervals cover the sampling of test images only, not the run-to-run "
            "variation of training, which on small data can be as large as the effect; use seeds: [0, 1, 2]"
        )
    if len(seeds) < 3:
        return (
            f"{len(seeds)} training seeds: the seed level of the bootstrap is coarse and tends to give intervals "
            "narrower than the truth; 3 or more seeds are the default"
        )
    return f"{len(seeds)} training seeds and the test images, both resampled (two-level bootstrap)"


def _splits(dataset: Dataset, params: YoloParams) -> dict[str, Any]:
    """Real training, validation and test samples, and each variant's synthetic training samples."""
    real = [s for s in dataset if not s.is_synthetic]
    if params.real_labels is not None:
        real = [s for s in real if s.label in params.real_labels]
    synthetic = [s for s in dataset if s.is_synthetic and s.split == params.train_split]
    made_by = sorted({s.provenance.step for s in synthetic if s.provenance is not None})
    found: dict[str, Any] = {
        "train": [s for s in real if s.split == params.train_split],
        "val": [s for s in real if params.val_split and s.split == params.val_split],
        "test": [s for s in real if s.split == params.test_split],
        "synthetic_count": len(synthetic),
    }
    if not found["train"]:
        raise UsageError(f"yolo: no real samples in the training split {params.train_split!r}")
    if not found["test"]:
        raise UsageError(f"yolo: no real samples in the test split {params.test_split!r} to evaluate on")
    if not synthetic:
        raise UsageError(
            f"yolo: no synthetic samples in the {params.train_split!r} split, so there is nothing to compare;"
            " put a generator step before this evaluator"
        )
    found["variant_steps"] = params.variants or {DEFAULT_VARIANT: made_by}
    found["variants"] = {}
    for name, steps in found["variant_steps"].items():
        empty = [step for step in steps if step not in made_by]
        if empty:
            raise UsageError(
                f"yolo: variant {name!r}: step {empty[0]!r} made no synthetic samples in the"
                f" {params.train_split!r} split (steps that did: {', '.join(made_by)})"
            )
        # In dataset order, so the training layout does not depend on the order the variant lists its steps.
        chosen = set(steps)
        found["variants"][name] = [s for s in synthetic if s.provenance and s.provenance.step in chosen]
    return found


def _ap_summary(result: Any, classes: list[str]) -> dict[str, Any]:
    return {
        "mAP50": result.map50,
        "mAP50-95": result.map50_95,
        "per_class": {
            name: {"AP50": ap50, "AP50-95": ap}
            for name, ap50, ap in zip(classes, result.ap50, result.ap50_95, strict=True)
            if ap50 is not None
        },
    }


def _combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean (and, with several seeds, std) of each figure over training seeds."""

    def mean_std(values: list[float]) -> dict[str, float]:
        entry = {"mean": round(statistics.fmean(values), 6)}
        if len(values) > 1:
            entry["std"] = round(statistics.stdev(values), 6)
        return entry

    combined: dict[str, Any] = {
        "mAP50": mean_std([r["mAP50"] for r in runs]),
        "mAP50-95": mean_std([r["mAP50-95"] for r in runs]),
        "per_class": {
            name: {metric: mean_std([r["per_class"][name][metric] for r in runs]) for metric in ("AP50", "AP50-95")}
            for name in runs[0]["per_class"]
        },
        "seeds": runs,
    }
    return combined


def _save_predictions(path: Path, samples: list[Sample], found: list[Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [
        {"sample": s.id, "image": str(s.image), "boxes": p.boxes, "scores": p.scores, "classes": p.classes}
        for s, p in zip(samples, found, strict=True)
    ]
    path.write_text(json.dumps(records, sort_keys=True) + "\n", encoding="utf-8")
