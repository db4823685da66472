"""The ``anomaly`` evaluator: fit DRAEM on the good training images, score the test split.

The detector sees only defect-free images (and the anomalies it simulates into them), as a
factory would train it; the test split's real defects and their masks say how well it
finds and localises them: image AUROC / AP / best F1, pixel AUROC / AP / best F1 and AUPRO
up to a 30 % false-positive rate, overall and per defect type. Every test image's
anomaly map is written as a PNG (the review shows them), with its score, beside the
trained weights and an HTML report with ROC curves and heat-map overlays.

Beside DRAEM the same test images are scored by a baseline without learning
(:mod:`fewgen_draem.statistical`: per-pixel Gaussian z-scores fitted on the same good images),
with the same metrics, and the AUROC deltas get a paired bootstrap interval over test images
and a verdict (:mod:`fewgen_draem.comparison`), so DRAEM's figures are read against what a
one-liner gives.

Images are resized to a square ``size`` (a multiple of 32) for training and testing, and
masks with nearest-neighbour resampling to the same size: pixel metrics are measured there.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from fewgen.api import Evaluator, InputFolder, Params, StepContext, file_stem
from fewgen.dataset import Dataset, Sample
from fewgen.errors import UsageError
from fewgen.imageio import CorruptImage, load_mask, load_rgb, save_image

if TYPE_CHECKING:
    import numpy as np
    import torch

CHECKPOINT_NAME = "draem-checkpoint.pt"


class AnomalyParams(Params):
    preset: Literal["paper", "medium", "small", "tiny"] = Field(
        "small",
        description="Network widths: paper = the paper's (reconstructive 128, discriminative 64); medium, small and "
        "tiny divide them by 2, 4 and 8-16 so a CPU can train them.",
    )
    size: int = Field(256, ge=32, description="Square side images are resized to; a multiple of 32.")
    epochs: int | None = Field(20, ge=1, description="Training epochs over the good images (null: budget only).")
    minutes: float | None = Field(
        None, gt=0, description="Wall-clock training budget; training ends at whichever of epochs and minutes first."
    )
    batch_size: int = Field(8, ge=1, le=256, description="Training batch size (the paper: 8).")
    lr: float = Field(1e-4, gt=0, description="Adam learning rate of both networks (the paper: 1e-4).")
    textures: InputFolder | None = Field(
        None,
        description="Folder of anomaly source images (any images; DTD in the paper); relative to the recipe's folder "
        "(with --set: to the current folder); its files are part of the step's cache key. Without it the sources "
        "are colourised Perlin noise.",
    )
    max_textures: int = Field(256, ge=1, description="At most this many texture images are loaded (seeded choice).")
    normal_share: float = Field(0.5, ge=0, le=1, description="Share of training images left without an anomaly.")
    beta_max: float = Field(0.8, ge=0, le=1, description="Anomaly opacity beta is uniform in [0, beta_max).")
    rotate_normal: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Probability of turning a good training image by -90..90 degrees first (the official 0.3).",
    )
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="bf16: the networks' forward passes in training run under bf16 autocast (faster on CPUs with "
        "native bf16 and on GPUs; other numbers); scoring stays fp32.",
    )
    train_split: str = Field("train", description="Split whose good images train the detector.")
    test_split: str = Field("test", description="Split the detector is tested on (good and defective images).")
    good_label: str = Field("good", description="Image label of defect-free images; unlabelled train images count.")
    synthetic: Literal["exclude", "test"] = Field(
        "exclude",
        description="Synthetic samples (from earlier steps) are left out (exclude), or tested beside the real "
        "ones (test); they never train the detector, which makes its own anomalies.",
    )
    baseline: Literal["aligned", "texture"] = Field(
        "aligned",
        description="The statistical baseline's feature model: aligned = per-pixel colour statistics (good images "
        "show the part in the same place); texture = local contrast pooled over positions (unaligned textures).",
    )
    resamples: int = Field(
        1000, ge=100, le=100_000, description="Bootstrap resamples of the test images for the DRAEM-baseline deltas."
    )
    save_maps: bool = Field(True, description="Write every test image's anomaly map as a PNG.")
    report_images: int = Field(12, ge=0, description="Test images shown as heat-map overlays in the report.")

    @field_validator("size")
    @classmethod
    def _multiple_of_32(cls, size: int) -> int:
        if size % 32:
            raise ValueError(f"size must be a multiple of 32 (DRAEM pools five times), got {size}")
        return size

    @model_validator(mode="after")
    def _has_an_end(self) -> AnomalyParams:
        if self.epochs is None and self.minutes is None:
            raise ValueError("set epochs, minutes or both: training needs an end")
        if self.train_split == self.test_split:
            raise ValueError("test_split must differ from train_split")
        return self


class AnomalyEvaluator(Evaluator):
    name = "anomaly"
    description = (
        "Fits a DRAEM detector on the good training images and scores the test split: image and pixel AUROC, AP, "
        "F1, AUPRO, per defect type, against a per-pixel statistical baseline with a verdict; anomaly maps and an "
        "HTML report."
    )
    Params = AnomalyParams

    def evaluate(self, dataset: Dataset, ctx: StepContext) -> dict[str, Any]:
        import numpy as np

        from fewgen.training import CheckpointMismatch
        from fewgen_draem import comparison, metrics, report
        from fewgen_draem.statistical import StatisticalBaseline
        from fewgen_draem.training import DraemTrainer, TrainingConfig, save_model

        params: AnomalyParams = self.params  # type: ignore[assignment]
        train, test = self.select(dataset)
        # Masks first: a test split without any pixel ground truth is an error before, not after, training.
        masks, has_truth = load_masks(test, params.size, params.good_label, ctx)
        require_pixel_truth(has_truth)
        ctx.seed_torch()
        ctx.note(f"loading {len(train)} good training images at {params.size}x{params.size}")
        train_images, train_kept = load_images(train, params.size, ctx)
        if len(train_kept) < 2:
            raise UsageError(
                f"anomaly: {len(train_kept)} of the {len(train)} training images could be read; DRAEM needs at least 2"
            )
        textures = self.load_textures(ctx) if params.textures is not None else None
        config = TrainingConfig(
            preset=params.preset,
            size=params.size,
            batch_size=params.batch_size,
            epochs=params.epochs,
            minutes=params.minutes,
            lr=params.lr,
            normal_share=params.normal_share,
            beta_max=params.beta_max,
            rotate_normal=params.rotate_normal,
            precision=params.precision,
        )
        trainer = DraemTrainer(config, ctx.device, ctx.seed)
        assert ctx.scratch_dir is not None  # the engine always gives one
        checkpoint = ctx.scratch_dir / CHECKPOINT_NAME
        if checkpoint.is_file():
            ctx.note(f"resuming training from {checkpoint}")
        ends = [f"{params.epochs} epochs" if params.epochs else "", f"{params.minutes} min" if params.minutes else ""]
        ctx.note(
            f"training DRAEM ({params.preset}) on {len(train_kept)} images for {' or '.join(e for e in ends if e)}"
        )
        with TrainingBar(ctx) as bar:
            try:
                summary = trainer.fit(train_images, textures, checkpoint, on_step=bar.update)
            except CheckpointMismatch as exc:
                raise UsageError(f"anomaly: {exc}") from None
        save_model(trainer.model, ctx.work_dir / "model.pt", config)
        baseline = StatisticalBaseline(params.baseline).fit(train_images)
        del train_images

        ctx.note(f"scoring {len(test)} test images")
        test_images, test_kept = load_images(test, params.size, ctx)
        if not test_kept:
            raise UsageError(f"anomaly: none of the {len(test)} test images could be read")
        readable = {id(sample) for sample in test_kept}
        rows = [index for index, sample in enumerate(test) if id(sample) in readable]
        masks, has_truth = masks[rows], has_truth[rows]
        require_pixel_truth(has_truth)
        maps, scores = trainer.predict(test_images)
        baseline_maps, baseline_scores = baseline.predict(test_images, trainer.model.score_pool)
        labels = [sample.label or params.good_label for sample in test_kept]
        result = self.measure(scores.numpy(), maps.numpy(), masks, has_truth, labels)
        baseline_result = {
            **baseline.describe(),
            **self.measure(baseline_scores.numpy(), baseline_maps.numpy(), masks, has_truth, labels),
        }
        ctx.note(f"bootstrapping DRAEM - baseline over {len(test_kept)} test images ({params.resamples} resamples)")
        versus = comparison.compare(
            result,
            baseline_result,
            {
                "anomalous": np.array([label != params.good_label for label in labels]),
                "has_truth": has_truth,
                "masks": masks,
                "draem_scores": scores.numpy(),
                "baseline_scores": baseline_scores.numpy(),
                "draem_maps": maps.numpy(),
                "baseline_maps": baseline_maps.numpy(),
            },
            params.resamples,
            ctx.rng(2),
        )
        threshold = result["image_f1_threshold"]
        predictions = self.save_predictions(
            test_kept, maps, scores, baseline_scores, labels, threshold, baseline_result["image_f1_threshold"], ctx
        )
        scored = report.ScoredImages(
            samples=test_kept,
            labels=labels,
            images=test_images.permute(0, 2, 3, 1).numpy(),
            maps=maps.numpy(),
            masks=masks,
            has_truth=has_truth,
            scores=scores.numpy(),
            baseline_maps=baseline_maps.numpy(),
            baseline_scores=baseline_scores.numpy(),
        )
        report.write_report(
            ctx.work_dir / "report.html",
            result,
            baseline_result,
            versus,
            summary.to_dict(),
            params.model_dump(mode="json"),
            scored,
            params.good_label,
            params.report_images,
            metrics.roc_points,
        )
        return {
            **result,
            "baseline": baseline_result,
            "comparison": versus,
            "train_images": len(train_kept),
            "test_images": len(test_kept),
            "training": summary.to_dict(),
            "predictions": predictions,
        }

    def select(self, dataset: Dataset) -> tuple[list[Sample], list[Sample]]:
        params: AnomalyParams = self.params  # type: ignore[assignment]
        train = [
            s
            for s in dataset
            if s.split == params.train_split and not s.is_synthetic and s.label in (params.good_label, None)
        ]
        if not train:
            splits = sorted({s.split for s in dataset})
            raise UsageError(
                f"anomaly: no real good images in split {params.train_split!r} (label {params.good_label!r} or none) "
                f"to train on; the dataset has splits {splits}"
            )
        test = [
            s for s in dataset if s.split == params.test_split and (params.synthetic == "test" or not s.is_synthetic)
        ]
        if not test:
            raise UsageError(f"anomaly: split {params.test_split!r} has no images to test on")
        return train, test

    def load_textures(self, ctx: StepContext) -> torch.Tensor:
        from fewgen_draem.generator import texture_files
        from fewgen_draem.training import stack_images

        params: AnomalyParams = self.params  # type: ignore[assignment]
        folder = params.textures  # an InputFolder: absolute, and it existed when the recipe was loaded
        assert folder is not None
        files = texture_files(folder)
        if len(files) > params.max_textures:
            picked = ctx.rng(1).choice(len(files), size=params.max_textures, replace=False)
            files = [files[i] for i in sorted(picked)]
        arrays = []
        for path in ctx.progress(files, total=len(files), desc=f"{ctx.step}: textures"):
            try:
                arrays.append(load_rgb(path))
            except CorruptImage as exc:
                ctx.skip(path, str(exc))
        if not arrays:
            raise UsageError(f"anomaly: no readable image in textures folder {folder}")
        return stack_images(arrays, params.size)

    def measure(
        self,
        scores: np.ndarray,
        maps: np.ndarray,
        masks: np.ndarray,
        has_truth: np.ndarray,
        labels: list[str],
    ) -> dict[str, Any]:
        """Image metrics over every test image; pixel metrics over those with ground truth (good or masked)."""
        from fewgen_draem.metrics import anomaly_metrics

        params: AnomalyParams = self.params  # type: ignore[assignment]
        result = anomaly_metrics(scores, None, None, labels, params.good_label)
        with_truth = has_truth.nonzero()[0]
        pixel = anomaly_metrics(
            scores[with_truth], maps[with_truth], masks[with_truth], [labels[i] for i in with_truth], params.good_label
        )
        pixel_keys = [key for key in pixel if key.startswith("pixel_") or key == "aupro"]
        for key in pixel_keys:
            result[key] = pixel[key]
        for name, values in result.get("per_type", {}).items():
            for key in pixel_keys:
                values[key] = pixel.get("per_type", {}).get(name, {}).get(key)
        result["pixel_images"] = len(with_truth)
        result["anomalous_without_mask"] = int(len(labels) - len(with_truth))
        return result

    def save_predictions(
        self,
        samples: list[Sample],
        maps: torch.Tensor,
        scores: torch.Tensor,
        baseline_scores: torch.Tensor,
        labels: list[str],
        threshold: float | None,
        baseline_threshold: float | None,
        ctx: StepContext,
    ) -> str:
        """``predictions.json`` (sample id -> score, verdict, baseline score, map file) and, if asked, the maps as PNGs.

        The baseline's score is not in [0, 1] (a pooled squared z-score); its verdict uses its own best-F1 threshold.
        """
        import torch

        params: AnomalyParams = self.params  # type: ignore[assignment]
        pixels = (maps * 255).round().clamp(0, 255).to(torch.uint8).numpy()
        records = {}
        for index, (sample, pixel_map, score, baseline_score, label) in enumerate(
            zip(samples, pixels, scores.tolist(), baseline_scores.tolist(), labels, strict=True)
        ):
            record: dict[str, Any] = {"score": score, "baseline_score": baseline_score, "label": label}
            if threshold is not None:
                record["anomalous"] = score >= threshold
            if baseline_threshold is not None:
                record["baseline_anomalous"] = baseline_score >= baseline_threshold
            if params.save_maps:
                name = f"maps/{file_stem(index, sample.id)}.png"
                save_image(pixel_map, ctx.work_dir / name)
                record["map"] = name
            records[sample.id] = record
        path = ctx.work_dir / "predictions.json"
        payload = {
            "threshold": threshold,
            "baseline_threshold": baseline_threshold,
            "map_size": params.size,
            "samples": records,
        }
        path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return path.name


def load_images(samples: list[Sample], size: int, ctx: StepContext) -> tuple[torch.Tensor, list[Sample]]:
    """(N, 3, size, size) uint8 of the readable samples (grey images become three equal channels)."""
    import torch

    from fewgen_draem.training import stack_images

    # Each image is resized as it is read: hundreds of full-size decoded images would otherwise sit in memory.
    resized, kept = [], []
    for sample in ctx.progress(samples, total=len(samples), desc=f"{ctx.step}: images"):
        try:
            array = load_rgb(sample.image)
        except CorruptImage as exc:
            ctx.skip(sample.image, str(exc))
            continue
        except FileNotFoundError:
            ctx.skip(sample.image, "file not found")
            continue
        resized.append(stack_images([array], size))
        kept.append(sample)
    return (torch.cat(resized) if resized else torch.empty(0, 3, size, size, dtype=torch.uint8)), kept


def load_masks(samples: list[Sample], size: int, good_label: str, ctx: StepContext) -> tuple[np.ndarray, np.ndarray]:
    """(N, size, size) bool masks (empty for good images) and which samples have pixel ground truth.

    A defective image without a mask has none: it counts for image metrics only. A mask that is
    unreadable or not the size of its image is reported (the image keeps its image-level label).
    """
    import numpy as np
    from PIL import Image

    masks = np.zeros((len(samples), size, size), dtype=bool)
    has_truth = np.zeros(len(samples), dtype=bool)
    for index, sample in enumerate(samples):
        if (sample.label or good_label) == good_label:
            has_truth[index] = sample.mask is None or _good_mask_is_empty(sample, ctx)
            continue
        if sample.mask is None:
            continue
        try:
            mask = load_mask(sample.mask)
        except (CorruptImage, FileNotFoundError) as exc:
            ctx.skip(sample.mask, f"mask unusable, image scored without pixel truth: {exc}")
            continue
        if mask.shape != (sample.height, sample.width):
            ctx.skip(
                sample.mask,
                f"mask is {mask.shape[1]}x{mask.shape[0]}, image is {sample.width}x{sample.height}; "
                "image scored without pixel truth",
            )
            continue
        resized = Image.fromarray((mask > 0).astype(np.uint8) * 255).resize((size, size), Image.Resampling.NEAREST)
        masks[index] = np.asarray(resized) > 0
        has_truth[index] = True
    return masks, has_truth


def require_pixel_truth(has_truth: np.ndarray) -> None:
    """Pixel metrics need at least one test image with pixel ground truth; without one, a one-line error."""
    if not has_truth.any():
        raise UsageError(
            f"anomaly: none of the {len(has_truth)} test images has pixel ground truth (a good image without a "
            "marked mask, or a defective one with a readable mask the size of its image); the run's issues list "
            "the masks left out"
        )


def _good_mask_is_empty(sample: Sample, ctx: StepContext) -> bool:
    """Whether a good image counts for pixel metrics: its mask marks nothing (magnetic tiles ship all-zero masks).

    A mask that marks pixels is reported and keeps the image out; an unreadable one is reported and the image,
    labelled good, counts as all normal."""
    try:
        mask = load_mask(sample.mask)  # type: ignore[arg-type]
    except (CorruptImage, FileNotFoundError) as exc:
        ctx.skip(sample.mask, f"mask of a good image unusable: {exc}")  # type: ignore[arg-type]
        return True
    if mask.any():
        ctx.skip(sample.mask, "image labelled good but its mask marks pixels; pixel metrics leave it out")  # type: ignore[arg-type]
        return False
    return True


class TrainingBar:
    """A progress bar over the share of training done (epochs or budget), showing the latest losses."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.bar: Any = None
        self.shown = 0

    def __enter__(self) -> TrainingBar:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=100,
            desc=f"{self.ctx.step}: training",
            unit="%",
            disable=not self.ctx.show_progress,
            leave=False,
            file=sys.stderr,
        )
        return self

    def update(self, step: int, done: float, losses: dict[str, float]) -> None:
        percent = int(done * 100)
        if percent > self.shown:
            self.bar.update(percent - self.shown)
            self.shown = percent
        if step % 5 == 0:
            self.bar.set_postfix({key: f"{value:.4f}" for key, value in losses.items()}, refresh=False)

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
