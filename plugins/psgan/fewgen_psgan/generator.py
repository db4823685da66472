"""The ``psgan`` generator: new objects of one class painted into plausible boxes of the dataset's images.

``fit`` trains PS-GAN on windows around the real boxes of the class in the step's real
samples (the ``train`` split unless the step says otherwise; synthetic samples of earlier
steps are never trained on), and learns where such boxes stand and how big they are
(:class:`fewgen.placement.BoxPlacement`). ``generate`` then takes a ``fraction`` of
the step's samples (of those with one of ``into_labels``, when given: defect-free
templates, say), places up to ``per_image`` new boxes in each (never touching an existing
box), paints an object into each with the generator, and yields the painted image as a
new sample whose boxes are the parent's plus the new ones. The sample's
``attributes[<step>]`` lists the inserted boxes; its provenance names the parent.

Training checkpoints go to the step's scratch folder, so an interrupted run resumes; the
trained generator and a training summary are written to the step's work folder, which the
cache keeps with the images.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from fewgen.api import Generator, Params, StepContext, choose_fraction, file_stem
from fewgen.dataset import Dataset, Sample
from fewgen.errors import UsageError
from fewgen.imageio import CorruptImage, load_rgb, save_image

if TYPE_CHECKING:
    from fewgen.placement import BoxPlacement
    from fewgen_psgan.insertion import Painter

# The preset names, kept here so validating a recipe needs no torch.
PRESET_NAMES = ("paper", "small", "tiny")


class PsganParams(Params):
    # `class` is what a recipe writes; the manifest records the field as class_, which is accepted too.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    class_: int | str = Field(
        0, alias="class", description="Class of the objects to insert: its id or its name in the dataset's classes."
    )
    preset: str = Field(
        "tiny", description="Network size: paper (256 px windows, the paper's nets), small (128 px) or tiny (64 px)."
    )
    iterations: int | None = Field(1000, ge=0, description="Training iterations (with or without minutes).")
    gan_loss: Literal["bce", "lsgan"] = Field(
        "bce",
        description="Loss of the image discriminator: bce (sigmoid + binary cross-entropy, the official --no_lsgan "
        "run) or lsgan (least squares). The person discriminator is least squares either way, as officially.",
    )
    # Off by default: a clock budget trains less on a busy machine, so results would depend on the load.
    minutes: float | None = Field(
        None,
        gt=0,
        description="Also stop after this many minutes of training in all, counted over every resume of the "
        "step's checkpoint (not reproducible under load).",
    )
    per_image: int = Field(1, ge=1, le=50, description="New boxes placed and painted per chosen image (at most).")
    fraction: float = Field(1.0, ge=0.0, le=1.0, description="Share of the eligible samples that get a painted copy.")
    into_labels: list[str | None] | None = Field(
        None,
        description="Image-level labels of the samples painted into (null in the list: unlabelled samples); "
        "default: every sample of the step. [good] paints defects into defect-free templates only.",
    )
    context: float = Field(1.5, ge=1.0, le=4.0, description="Window side around a box / the box's longer side.")
    min_height: float = Field(
        24.0, ge=4.0, description="Smallest box height in pixels: for training windows and for new boxes."
    )
    min_aspect: float = Field(
        0.0, ge=0.0, description="Training boxes must be at least this tall for their width (height / width)."
    )
    min_pairs: int = Field(8, ge=2, description="Fewest usable boxes of the class needed to train.")
    feather: float = Field(2.0, ge=0.0, description="Pixels inside a box's edge over which the painting fades in.")
    attempts: int = Field(100, ge=1, description="Candidate boxes tried per image before giving up on more.")
    domain: str | None = Field(None, description="Domain of the new samples; default: the parent's.")
    image_format: Literal["png", "jpg"] = Field("png", description="File format of the new images.")

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in PRESET_NAMES:
            raise ValueError(f"unknown preset {value!r}; choose one of {', '.join(PRESET_NAMES)}")
        return value

    @model_validator(mode="after")
    def _has_an_end(self) -> PsganParams:
        if self.iterations is None and self.minutes is None:
            raise ValueError("give iterations, minutes or both: training needs an end")
        return self


class PsganGenerator(Generator):
    name = "psgan"
    description = "PS-GAN: paints new objects (pedestrians, defects) into plausible empty boxes of real images."
    Params = PsganParams
    learns = True

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.class_id: int | None = None
        self.painter: Painter | None = None
        self.placement: BoxPlacement | None = None

    def resolve_class(self, dataset: Dataset, ctx: StepContext) -> int:
        params: PsganParams = self.params  # type: ignore[assignment]
        wanted = params.class_
        if isinstance(wanted, str) and not wanted.lstrip("-").isdigit():
            if wanted not in dataset.classes:
                raise UsageError(
                    f"step {ctx.step!r}: class {wanted!r} is not a class of the dataset ({dataset.classes})"
                )
            return dataset.classes.index(wanted)
        return int(wanted)

    def fit(self, dataset: Dataset, ctx: StepContext) -> None:
        from tqdm.auto import tqdm

        from fewgen.placement import BoxPlacement
        from fewgen_psgan.insertion import Painter
        from fewgen_psgan.model import preset
        from fewgen_psgan.pairs import PairRules, build_pairs
        from fewgen_psgan.training import PsganTrainer, save_generator

        params: PsganParams = self.params  # type: ignore[assignment]
        cls = self.resolve_class(dataset, ctx)
        name = dataset.class_name(cls)
        real = [s for s in dataset if not s.is_synthetic]
        with_class = [s for s in real if any(b.cls == cls for b in s.boxes)]
        if not with_class:
            raise UsageError(
                f"step {ctx.step!r}: no real sample of the step's splits has a box of class {name!r} ({cls}); "
                "PS-GAN learns the objects it paints from them"
            )
        config = preset(params.preset)
        rules = PairRules(
            cls=cls,
            size=config.size,
            context=params.context,
            min_height=params.min_height,
            min_aspect=params.min_aspect,
        )
        pairs = build_pairs(with_class, rules)
        for path in pairs.report.unreadable:
            ctx.skip(path, "unreadable image")
        if len(pairs) < params.min_pairs:
            raise UsageError(
                f"step {ctx.step!r}: {len(pairs)} usable boxes of class {name!r} to train on, fewer than min_pairs "
                f"{params.min_pairs} (of {pairs.report.boxes} boxes: {dict(pairs.report.skipped)} skipped); "
                "lower min_height or min_pairs, or give the step more samples"
            )
        self.class_id = cls
        self.placement = BoxPlacement.fit(with_class, cls)
        ctx.seed_torch()
        trainer = PsganTrainer(config, device=ctx.device, seed=ctx.seed, gan_loss=params.gan_loss)
        budget = f"{params.iterations} iterations" if params.iterations is not None else ""
        if params.minutes is not None:
            budget += (" or " if budget else "") + f"{params.minutes:g} minutes"
        ctx.note(f"training PS-GAN ({params.preset}) on {len(pairs)} windows of {name!r} for {budget}")
        checkpoint = (ctx.scratch_dir or ctx.work_dir) / "psgan.pt"
        # Without an iteration count the bar counts iterations with no end; the note says the budget.
        with tqdm(
            total=params.iterations, desc=f"{ctx.step}: training", disable=not ctx.show_progress, leave=False
        ) as bar:

            def on_step(iteration: int, losses: dict[str, float]) -> None:
                bar.update(iteration - bar.n)
                bar.set_postfix(l1=f"{losses['l1']:.3f}", refresh=False)

            summary = trainer.fit(
                lambda generator: pairs.batch(generator, config.batch_size),
                iterations=params.iterations,
                minutes=params.minutes,
                checkpoint=checkpoint,
                on_step=on_step,
            )
        save_generator(trainer, ctx.work_dir / "model" / "psgan_generator.pt")
        record = {
            "class": cls,
            "gan_loss": trainer.gan_loss,
            "pairs": pairs.report.to_json(),
            "training": summary.to_dict(),
            "parameters": trainer.parameters(),
        }
        (ctx.work_dir / "model" / "training.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        ctx.log.info("trained %d iterations in %.0f s", summary.iterations, summary.seconds)
        self.painter = Painter(trainer.model.generator, config.size, params.context, params.feather, ctx.device)

    def generate(self, dataset: Dataset, ctx: StepContext) -> Iterator[Sample]:
        import torch

        params: PsganParams = self.params  # type: ignore[assignment]
        if self.painter is None or self.placement is None or self.class_id is None:
            raise RuntimeError("psgan: generate() called before fit()")
        eligible = [s for s in dataset if params.into_labels is None or s.label in params.into_labels]
        chosen = choose_fraction(eligible, params.fraction, ctx.rng())
        empty = 0
        for index, parent in ctx.progress(chosen, total=len(chosen), desc=f"{ctx.step}: painting"):
            try:
                image = load_rgb(parent.image)
            except CorruptImage as exc:
                ctx.skip(parent.image, str(exc))
                continue
            height, width = image.shape[:2]
            rng = ctx.rng(1, index)  # one stream per input position: a skipped image shifts no other draw
            boxes = self.placement.place(
                width, height, parent.boxes, params.per_image, rng, params.min_height, params.attempts
            )
            if not boxes:
                empty += 1
                continue
            noise = torch.Generator().manual_seed(int(rng.integers(2**63)))
            painted = self.painter.paint(image, boxes, noise)
            path = save_image(painted, ctx.work_dir / "images" / f"{file_stem(index, parent.id)}.{params.image_format}")
            yield parent.derive(
                id=f"{ctx.step}/{parent.id}",
                image=path,
                width=width,
                height=height,
                boxes=(*parent.boxes, *boxes),
                # A painted copy has no pixel mask of its own: the parent's would omit the new objects.
                mask=None,
                domain=params.domain or parent.domain,
                provenance=self.provenance(ctx, parent),
                attributes={ctx.step: {"inserted": [inserted_record(box) for box in boxes], "preset": params.preset}},
            )
        if empty:
            ctx.log.info("%d of %d chosen images had no room for a new box", empty, len(chosen))


def inserted_record(box: Any) -> list[float]:
    return [box.cls, round(box.x1, 2), round(box.y1, 2), round(box.x2, 2), round(box.y2, 2)]
