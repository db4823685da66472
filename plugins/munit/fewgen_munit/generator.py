"""The ``munit`` generator: learn day -> night (or any A -> B) from unpaired images, then translate.

The step trains MUNIT on the input's source-domain images and on target-domain images (a
folder, or the input's samples of that domain), then translates a share of the source-domain
samples into the target domain, K random styles each or the style of one reference image.
Translation runs at the training scale and is resized back to each image's own size, so
boxes and masks carry over unchanged. An independent detector checks that labelled
pedestrians are still there (:mod:`fewgen_munit.drift`); copies whose objects vanished are
flagged, or dropped when asked. Training resumes from the step's checkpoint after an
interruption; torch is imported only when the step runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from fewgen.api import Generator, InputFile, InputFolder, Params, StepContext, choose_fraction, file_stem
from fewgen.dataset import Dataset, Sample
from fewgen.errors import UsageError
from fewgen.imageio import CorruptImage, copy_file, load_rgb, save_image

if TYPE_CHECKING:
    import torch

    from fewgen_munit.training import MunitTrainer

CHECKPOINT_EVERY = 250
# fewgen_munit.losses.CYCLE_WEIGHT, written out: importing that module would import torch before the step runs.
CYCLE_WEIGHT = 10.0


class MunitParams(Params):
    target_domain: str = Field("night", min_length=1, description="Domain the copies are translated into.")
    target_images: InputFolder | None = Field(
        None,
        description="Folder of target-domain images (searched recursively), relative to the recipe's folder (with "
        "--set: to the current folder); its files are part of the step's cache key. Without it the target images "
        "are the step's input samples whose domain is target_domain.",
    )
    source_domain: str | None = Field(
        None,
        description="Domain of the samples learnt from and translated; default: every sample whose domain is not "
        "target_domain.",
    )
    preset: Literal["tiny", "small", "paper"] = Field("tiny", description="Network sizes (see the plugin README).")
    size: int = Field(128, ge=32, description="Short side of the training scale; training crops are size x size.")
    iterations: int = Field(2000, ge=0, description="Training iterations (one discriminator + one generator update).")
    minutes: float | None = Field(
        None,
        gt=0,
        description="Stop training after this many minutes in all, counted over every resume of the step's "
        "checkpoint, even if iterations remain (not reproducible).",
    )
    batch_size: int = Field(1, ge=1, le=64, description="Images of each domain per iteration (the paper's is 1).")
    cycle_weight: float = Field(
        CYCLE_WEIGHT,
        ge=0.0,
        description="Weight of the explicit cycle loss x -> translated -> back (official recon_x_cyc_w): 10 in the "
        "official street and landscape configs (synthia2cityscape, summer2winter), 0 in the edges2* ones and off.",
    )
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="bf16: training's forward passes and losses under bf16 autocast (faster on CPUs with native "
        "bf16 and on GPUs; other numbers); translation stays fp32.",
    )
    fraction: float = Field(1.0, ge=0.0, le=1.0, description="Share of the source-domain samples translated.")
    styles: int = Field(1, ge=1, le=32, description="Copies per chosen sample, each with its own random style.")
    style_image: InputFile | None = Field(
        None,
        description="Translate with the style of this target-domain image instead of random styles (relative to the "
        "recipe's folder).",
    )
    drift_check: bool = Field(True, description="Look for the labelled objects before and after translation.")
    drift_detector: Literal["hog"] | InputFile = Field(
        "hog",
        description="'hog' (OpenCV's people detector) or the path of YOLO weights (.pt, e.g. a model the yolo "
        "evaluator trained) that know drift_class, relative to the recipe's folder.",
    )
    drift_class: str = Field("person", min_length=1, description="Class whose boxes the drift check looks for.")
    drop_vanished: bool = Field(
        False, description="Leave out copies in which a pedestrian found in the source vanished."
    )
    keep_detail: bool = Field(
        False,
        description="Add the source's fine detail (lost by translating at the training scale) back to the "
        "full-size output, scaled by how much translation darkened or brightened each region.",
    )
    image_format: Literal["jpg", "png"] = Field("jpg", description="File format of the translated images.")

    @field_validator("size")
    @classmethod
    def _multiple_of_four(cls, value: int) -> int:
        if value % 4:
            raise ValueError(f"size must be a multiple of 4 (MUNIT downsamples twice), got {value}")
        return value

    @field_validator("drift_detector", mode="before")
    @classmethod
    def _hog_or_weights(cls, value: str | Path) -> str | Path:
        if value != "hog" and Path(value).suffix != ".pt":
            raise ValueError(f"drift_detector must be 'hog' or a YOLO weights file (.pt), got {str(value)!r}")
        return value

    @model_validator(mode="after")
    def _one_style_source(self) -> MunitParams:
        if self.style_image is not None and self.styles != 1:
            raise ValueError("with style_image every copy has that one style: leave styles at 1")
        if self.source_domain is not None and self.source_domain == self.target_domain:
            raise ValueError("source_domain and target_domain must differ")
        return self


class MunitGenerator(Generator):
    name = "munit"
    description = "MUNIT unpaired translation (day -> night, clear -> rain ...) with K styles per image; labels kept."
    Params = MunitParams
    learns = True

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.trainer: MunitTrainer | None = None

    @property
    def settings(self) -> MunitParams:
        return self.params  # type: ignore[return-value]

    def is_source(self, sample: Sample) -> bool:
        p = self.settings
        return sample.domain == p.source_domain if p.source_domain is not None else sample.domain != p.target_domain

    # --- training ----------------------------------------------------------------------

    def fit(self, dataset: Dataset, ctx: StepContext) -> None:
        import torch

        from fewgen_munit.model import PRESETS, min_side
        from fewgen_munit.training import WEIGHTS, MunitTrainer

        p = self.settings
        if p.size < min_side(PRESETS[p.preset]):
            raise UsageError(f"step {ctx.step!r}: size must be at least {min_side(PRESETS[p.preset])} for {p.preset}")
        ctx.seed_torch()
        sources = self.load_images([s.image for s in dataset if self.is_source(s)], ctx, "source")
        targets = self.load_images(self.target_files(dataset, ctx), ctx, "target")
        ctx.note(f"training MUNIT ({p.preset}) on {len(sources)} source and {len(targets)} {p.target_domain} images")
        weights = replace(WEIGHTS, recon_x_cyc=p.cycle_weight)
        self.trainer = MunitTrainer(p.preset, device=ctx.device, seed=ctx.seed, weights=weights, precision=p.precision)
        summary = self.train(self.trainer, sources, targets, ctx)
        if summary["resumed_from"]:
            ctx.note(f"resumed training from iteration {summary['resumed_from']}")
        self.trainer.model.eval()
        # The generators alone (no discriminators or optimiser state): what translating needs.
        torch.save(
            {
                "preset": p.preset,
                "gen_a": self.trainer.model.gen_a.state_dict(),
                "gen_b": self.trainer.model.gen_b.state_dict(),
            },
            ctx.work_dir / "munit_generators.pt",
        )
        (ctx.work_dir / "training.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    def target_files(self, dataset: Dataset, ctx: StepContext) -> list[Path]:
        from fewgen_munit.data import image_files

        p = self.settings
        if p.target_images is None:
            files = [s.image for s in dataset if s.domain == p.target_domain]
            if not files:
                raise UsageError(
                    f"step {ctx.step!r}: no input sample has domain {p.target_domain!r}; set target_images to a folder "
                    f"of {p.target_domain} images"
                )
            return files
        folder = p.target_images  # an InputFolder: absolute, and it existed when the recipe was loaded
        files = image_files(folder)
        if not files:
            raise UsageError(f"step {ctx.step!r}: no images in target_images folder {folder}")
        return files

    def load_images(self, paths: list[Path], ctx: StepContext, role: str) -> list[torch.Tensor]:
        """The images at the training scale, (3, h, w) uint8; unreadable ones are skipped."""
        from fewgen_munit.data import at_working_scale

        loaded = []
        for path in ctx.progress(paths, total=len(paths), desc=f"{ctx.step}: load {role} images"):
            try:
                loaded.append(at_working_scale(load_rgb(path), self.settings.size))
            except CorruptImage as exc:
                ctx.skip(path, str(exc))
        if not loaded:
            what = "source-domain samples" if role == "source" else f"{self.settings.target_domain} images"
            raise UsageError(f"step {ctx.step!r}: no readable {what} to learn from")
        return loaded

    def train(
        self, trainer: MunitTrainer, sources: list[torch.Tensor], targets: list[torch.Tensor], ctx: StepContext
    ) -> dict[str, Any]:
        from tqdm.auto import tqdm

        from fewgen.training import CheckpointMismatch
        from fewgen_munit.data import random_crops

        p = self.settings
        bar = tqdm(total=p.iterations, desc=f"{ctx.step}: train", disable=not ctx.show_progress, leave=False)

        def on_step(done: int, losses: dict[str, float]) -> None:
            bar.update(done - bar.n)
            if done % 25 == 0:
                bar.set_postfix(recon=f"{losses['recon_x_a']:.3f}", gen=f"{losses['gen_total']:.2f}")

        try:
            summary = trainer.fit(
                lambda g: (
                    random_crops(sources, p.batch_size, g, p.size),
                    random_crops(targets, p.batch_size, g, p.size),
                ),
                iterations=p.iterations,
                minutes=p.minutes,
                checkpoint=ctx.scratch_dir / "munit.pt" if ctx.scratch_dir is not None else None,
                checkpoint_every=CHECKPOINT_EVERY,
                on_step=on_step,
            )
        except CheckpointMismatch as exc:  # made with other settings or by an earlier version
            raise UsageError(f"step {ctx.step!r}: {exc}") from None
        finally:
            bar.close()
        return summary.to_dict()

    # --- translation -------------------------------------------------------------------

    def generate(self, dataset: Dataset, ctx: StepContext) -> Iterator[Sample]:
        import torch

        from fewgen_munit.drift import check_drift

        p = self.settings
        if self.trainer is None:
            raise RuntimeError("munit: generate() needs fit() first")
        style_codes = self.style_reference(ctx)
        detector, drift_class = self.drift_detector(dataset, ctx)
        chosen = choose_fraction([s for s in dataset if self.is_source(s)], p.fraction, ctx.rng())
        tally = {
            "translated": 0,
            "checked_objects": 0,
            "found_source": 0,
            "kept": 0,
            "vanished_images": 0,
            "dropped": 0,
        }
        for index, parent in ctx.progress(chosen, total=len(chosen), desc=f"{ctx.step}: translate"):
            try:
                image = load_rgb(parent.image)
            except CorruptImage as exc:
                ctx.skip(parent.image, str(exc))
                continue
            seed = int(ctx.rng(index).integers(2**63))
            styles = style_codes if style_codes is not None else p.styles
            outputs = self.translate(image, styles, torch.Generator().manual_seed(seed))
            stem = file_stem(index, parent.id)
            checked = [b for b in parent.boxes if b.cls == drift_class]
            for copy, pixels in enumerate(outputs):
                details: dict[str, Any] = (
                    {"style": copy, "style_seed": seed} if style_codes is None else {"style_image": str(p.style_image)}
                )
                if detector is not None:
                    drift = check_drift(detector, image, pixels, checked)
                    details["label_drift"] = drift.to_json()
                    tally["checked_objects"] += drift.objects
                    tally["found_source"] += drift.found_source
                    tally["kept"] += drift.kept
                    tally["vanished_images"] += drift.vanished
                    if drift.vanished and p.drop_vanished:
                        tally["dropped"] += 1
                        continue
                name = f"{stem}_{copy}"
                image_path = save_image(pixels, ctx.work_dir / "images" / f"{name}.{p.image_format}")
                mask_path = None
                if parent.mask is not None:
                    mask_path = ctx.work_dir / "masks" / f"{name}{parent.mask.suffix}"
                    copy_file(parent.mask, mask_path)  # translation moves no pixel: the mask stays valid
                tally["translated"] += 1
                yield parent.derive(
                    id=f"{ctx.step}/{parent.id}/{copy}",
                    image=image_path,
                    mask=mask_path,
                    domain=p.target_domain,
                    provenance=self.provenance(ctx, parent),
                    # The parent's scores and predictions do not describe the copy; the copy's own details do.
                    attributes={ctx.step: details},
                )
        if detector is not None:
            ctx.note(
                f"label drift ({p.drift_detector}, {p.drift_class}): {tally['kept']} of {tally['found_source']} "
                f"objects found in the sources are found after translation; {tally['vanished_images']} copies lost one"
                + (f" ({tally['dropped']} dropped)" if p.drop_vanished else "")
            )
        (ctx.work_dir / "label_drift.json").write_text(json.dumps(tally, indent=2) + "\n", encoding="utf-8")

    def drift_detector(self, dataset: Dataset, ctx: StepContext) -> tuple[Any, int | None]:
        """The detector of the label-drift check and the class index it checks, or (None, None)."""
        from fewgen.cache import default_cache_dir
        from fewgen_munit.drift import HogPeopleDetector, YoloDetector

        p = self.settings
        if not p.drift_check:
            return None, None
        if p.drift_class not in dataset.classes:
            ctx.log.info("no drift check: the dataset has no class %r", p.drift_class)
            return None, None
        drift_class = dataset.classes.index(p.drift_class)
        if p.drift_detector == "hog":
            return HogPeopleDetector(), drift_class
        weights = Path(p.drift_detector)  # an InputFile: absolute, and it existed when the recipe was loaded
        try:
            # The same ultralytics settings folder as the yolo evaluator's, so its font is fetched once.
            return YoloDetector(weights, p.drift_class, default_cache_dir() / "ultralytics", ctx=ctx), drift_class
        except ValueError as exc:
            raise UsageError(f"step {ctx.step!r}: {exc}") from None

    def style_reference(self, ctx: StepContext) -> torch.Tensor | None:
        """The reference image as a (1, 3, h, w) tensor in [-1, 1] at the training scale, or None."""
        from fewgen_munit.data import at_working_scale

        p = self.settings
        if p.style_image is None:
            return None
        path = p.style_image.expanduser()
        try:
            image = load_rgb(path)
        except (CorruptImage, FileNotFoundError, OSError) as exc:
            raise UsageError(f"step {ctx.step!r}: style_image {path}: {exc}") from None
        return at_working_scale(image, p.size)[None].float() / 127.5 - 1

    def translate(self, image: Any, styles: int | torch.Tensor, generator: torch.Generator) -> list[Any]:
        """K translations of ``image`` (H, W, 3) uint8, each (H, W, 3) uint8 of the same size."""
        from fewgen_munit.data import resize, restore_detail, to_uint8, to_unit, working_size

        assert self.trainer is not None
        height, width = image.shape[:2]
        source = to_unit(image)
        pixels = resize(source, working_size(height, width, self.settings.size))
        outputs = self.trainer.translate(pixels * 2 - 1, "a2b", styles=styles, generator=generator)
        full = resize((outputs[:, 0] + 1) / 2, (height, width))
        if self.settings.keep_detail:
            full = restore_detail(full, source, resize(pixels, (height, width)))
        return [to_uint8(frame) for frame in full]
