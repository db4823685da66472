"""The ``yolo`` evaluator: the same detector trained without and with the synthetic samples.

Both models share the model definition, settings, epochs and seeds; only the training
images differ (real, or real + synthetic). Both are tested on the same real held-out
split, and the difference in mAP gets a paired bootstrap confidence interval over test
images, so a user can tell a real gain from the noise of a small test set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from fewgen.api import Evaluator, Params, StepContext
from fewgen.dataset import Dataset, Sample
from fewgen.errors import UsageError

VARIANTS = ("baseline", "augmented")


class YoloParams(Params):
    model: str = Field(
        "yolo11n.yaml",
        description="Model YAML to train from scratch (an ultralytics name such as yolov8n.yaml, or a path), "
        "or a path to .pt weights to fine-tune. Weights are never downloaded.",
    )
    epochs: int = Field(30, ge=1, description="Training epochs (of the augmented model, under same_steps).")
    schedule: Literal["same_epochs", "same_steps"] = Field(
        "same_epochs",
        description="same_epochs: both models train for `epochs`. same_steps: the baseline trains for proportionally "
        "more epochs, so both take about the same number of optimiser steps; this separates the effect of the "
        "synthetic images from the effect of simply training longer.",
    )
    imgsz: int = Field(320, ge=32, description="Training and test image size (pixels, longest side).")
    batch: int = Field(
        8,
        ge=1,
        description="Training batch size. Unless train_args sets nbs, every batch is an optimiser step (nbs = batch).",
    )
    seeds: list[int] = Field(
        default_factory=lambda: [0],
        min_length=1,
        description="Training seeds; with several, each model is trained once per seed and results are mean ± std.",
    )
    train_split: str = Field("train", description="Split the models train on (synthetic samples join it).")
    val_split: str | None = Field(
        "val", description="Real split ultralytics validates on while training (picks best.pt); null to use last.pt."
    )
    test_split: str = Field("test", description="Real held-out split both models are tested on.")
    conf: float = Field(0.001, gt=0, lt=1, description="Confidence threshold of test predictions (low, as for mAP).")
    iou: float = Field(0.7, gt=0, lt=1, description="NMS IoU threshold of test predictions.")
    max_det: int = Field(300, ge=1, description="Most detections kept per test image.")
    bootstrap: int = Field(1000, ge=100, description="Bootstrap resamples of the test images for the CIs.")
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
        "Trains a YOLO detector on the real training split alone and on real + synthetic samples, and compares "
        "both on a real held-out split: mAP50, mAP50-95, per-class AP, delta with a bootstrap CI."
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
        epochs = {"baseline": params.epochs, "augmented": params.epochs}
        if params.schedule == "same_steps":
            augmented_images = len(splits["train"]) + len(splits["synthetic"])
            epochs["baseline"] = max(1, round(params.epochs * augmented_images / len(splits["train"])))
        assert ctx.scratch_dir is not None  # the engine always gives one
        # ultralytics' own split names, whatever the dataset calls them. Its data YAML must name a
        # val split; without one, training runs with val=False (last.pt is kept) and the entry
        # points at the test images only to satisfy the format: they never steer training.
        layouts = {
            variant: training.write_layout(
                {
                    "train": splits["train"] + (splits["synthetic"] if variant == "augmented" else []),
                    "val": splits["val"] or splits["test"],
                    "test": splits["test"],
                },
                dataset.classes,
                ctx.scratch_dir / "layouts" / variant,
            )
            for variant in VARIANTS
        }
        test_images = [s.image for s in splits["test"]]
        truths = [
            metrics.GroundTruth(s.id, [[b.x1, b.y1, b.x2, b.y2] for b in s.boxes], [b.cls for b in s.boxes])
            for s in splits["test"]
        ]
        runs = [(variant, seed) for seed in params.seeds for variant in VARIANTS]
        matches: dict[str, list[list[Any]]] = {variant: [] for variant in VARIANTS}
        per_seed: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
        predictions: dict[str, list[training.Prediction]] = {}
        crosscheck: dict[str, Any] = {}
        for run_index, (variant, seed) in enumerate(runs, start=1):
            images = len(splits["train"]) + (len(splits["synthetic"]) if variant == "augmented" else 0)
            ctx.note(
                f"training the {variant} model, seed {seed} ({run_index} of {len(runs)}):"
                f" {images} images, {epochs[variant]} epochs"
            )
            run_name = f"{variant}-seed{seed}"
            started = time.perf_counter()
            weights = training.train(
                ultralytics,
                layouts[variant],
                dataclasses.replace(settings, epochs=epochs[variant]),
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
            matches[variant].append(image_matches)
            ap = metrics.average_precision(image_matches, len(dataset.classes))
            per_seed[variant].append({"seed": seed, "train_seconds": train_seconds, **_ap_summary(ap, dataset.classes)})
            if seed == params.seeds[0]:
                predictions[variant] = found
                crosscheck[variant] = {
                    "ultralytics": training.ultralytics_test_metrics(
                        ultralytics, weights, layouts[variant], "test", settings, params.conf, params.iou
                    ),
                    **metrics.coco_crosscheck(truths, detections, dataset.classes),
                }
        delta = metrics.bootstrap_delta(
            matches["baseline"],
            matches["augmented"],
            len(dataset.classes),
            resamples=params.bootstrap,
            seed=ctx.seed,
            confidence=params.confidence,
        )
        result = {
            "settings": {
                "model": params.model,
                "epochs": params.epochs,
                "schedule": params.schedule,
                "baseline_epochs": epochs["baseline"],
                "imgsz": params.imgsz,
                "seeds": params.seeds,
                "train_split": params.train_split,
                "test_split": params.test_split,
                "device": ctx.device,
                "train_images": {"real": len(splits["train"]), "synthetic": len(splits["synthetic"])},
                "val_images": len(splits["val"]),
                "test_images": len(splits["test"]),
                "test_boxes": sum(len(s.boxes) for s in splits["test"]),
            },
            "baseline": _combine(per_seed["baseline"]),
            "augmented": _combine(per_seed["augmented"]),
            "delta": delta,
            "crosscheck": crosscheck,
        }
        report.write_report(
            ctx.work_dir,
            result,
            dataset=dataset,
            test_samples=splits["test"],
            predictions=predictions,
            ap_results={
                variant: metrics.average_precision(matches[variant][0], len(dataset.classes)) for variant in VARIANTS
            },
            images_shown=params.report_images,
        )
        return result


def _splits(dataset: Dataset, params: YoloParams) -> dict[str, list[Sample]]:
    """Real training, synthetic training, real validation and real test samples."""
    real = [s for s in dataset if not s.is_synthetic]
    found = {
        "train": [s for s in real if s.split == params.train_split],
        "synthetic": [s for s in dataset if s.is_synthetic and s.split == params.train_split],
        "val": [s for s in real if params.val_split and s.split == params.val_split],
        "test": [s for s in real if s.split == params.test_split],
    }
    if not found["train"]:
        raise UsageError(f"yolo: no real samples in the training split {params.train_split!r}")
    if not found["test"]:
        raise UsageError(f"yolo: no real samples in the test split {params.test_split!r} to evaluate on")
    if not found["synthetic"]:
        raise UsageError(
            f"yolo: no synthetic samples in the {params.train_split!r} split, so there is nothing to compare;"
            " put a generator step before this evaluator"
        )
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
