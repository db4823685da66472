"""The ``augment`` generator: augmented copies of a share of the images, labels moved with the pixels.

A detector trained only on clear daylight fails at night or in fog; a few augmented
copies of the real images in those conditions are the cheapest first remedy, and the
evaluators then measure whether they helped. Presets (:mod:`fewgen_augment.presets`)
name tested pipelines; ``transforms`` adds any albumentations transform. Boxes and masks
go through the same pipeline as the image, so flips and shifts keep them aligned.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fewgen.api import Generator, Params, StepContext, choose_fraction, file_stem
from fewgen.dataset import Box, Dataset, Sample
from fewgen.errors import UsageError, did_you_mean
from fewgen.imageio import load_sample_pixels, save_image
from fewgen_augment.presets import PRESETS, TransformStep, build_pipeline, preset_domain

if TYPE_CHECKING:
    pass


class TransformSpec(BaseModel):
    """An albumentations transform by class name, its keyword arguments beside it: ``{name: RandomFog, p: 1.0}``."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, description="Class name of an albumentations transform, e.g. MotionBlur.")

    def step(self) -> TransformStep:
        return TransformStep(self.name, dict(self.model_extra or {}))


class AugmentParams(Params):
    preset: list[str] = Field(
        default_factory=list,
        description=f"One preset name or a list applied in order: {', '.join(PRESETS)}.",
    )
    transforms: list[TransformSpec] = Field(
        default_factory=list, description="Albumentations transforms applied after the presets, in order."
    )
    copies: int = Field(1, ge=1, le=100, description="Augmented copies made of each chosen image.")
    fraction: float = Field(1.0, ge=0.0, le=1.0, description="Share of the input samples chosen for copies.")
    domain: str | None = Field(
        None, min_length=1, description="Domain of the copies; by default the presets' (e.g. night), else the parent's."
    )
    image_format: Literal["jpg", "png"] = Field("jpg", description="File format of the new images.")
    min_visibility: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="A box keeping less than this share of its area inside the image after a shift or crop is dropped.",
    )

    @field_validator("preset", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("preset")
    @classmethod
    def _known_presets(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in PRESETS:
                raise ValueError(
                    f"unknown preset {name!r}{did_you_mean(name, PRESETS)} (available: {', '.join(PRESETS)})"
                )
        return names

    @model_validator(mode="after")
    def _has_a_pipeline(self) -> AugmentParams:
        if not self.preset and not self.transforms:
            raise ValueError("give a 'preset', a list of 'transforms', or both")
        if self.transforms:
            # Building the pipeline checks every name and argument before the recipe runs.
            build_pipeline([t.step() for t in self.transforms], self.min_visibility)
        return self

    def steps(self) -> list[TransformStep]:
        preset_steps = [step for name in self.preset for step in PRESETS[name].steps]
        return preset_steps + [t.step() for t in self.transforms]


class AugmentGenerator(Generator):
    name = "augment"
    description = (
        "Augmented copies (night, fog, rain, snow, dusk, flip, colour, geometry or any albumentations transform)."
    )
    Params = AugmentParams

    def generate(self, dataset: Dataset, ctx: StepContext) -> Iterator[Sample]:
        import numpy as np  # imported on use so registering the plugin stays cheap

        params: AugmentParams = self.params  # type: ignore[assignment]
        pipeline = build_pipeline(params.steps(), params.min_visibility)
        domain = params.domain or preset_domain(params.preset)
        chosen = choose_fraction(dataset.samples, params.fraction, ctx.rng())
        for index, parent in ctx.progress(chosen, total=len(chosen), desc=f"{ctx.step}: augment"):
            pixels = load_sample_pixels(parent.image, parent.mask, ctx.skip)
            if pixels is None:
                continue
            image, mask = pixels
            stem = file_stem(index, parent.id)
            corners = np.array([[b.x1, b.y1, b.x2, b.y2] for b in parent.boxes], dtype=np.float64).reshape(-1, 4)
            for copy in range(params.copies):
                # One seed per (input position, copy): a copy does not change when the fraction picks others.
                pipeline.set_random_seed(int(ctx.rng(index, copy).integers(2**32)))
                targets: dict[str, Any] = {"image": image, "bboxes": corners, "box_index": list(range(len(corners)))}
                if mask is not None:
                    targets["mask"] = mask
                try:
                    result = pipeline(**targets)
                except ValueError as exc:  # e.g. a custom crop larger than this image
                    ctx.skip(parent.image, f"augmentation failed: {exc}")
                    break
                except MemoryError:  # one huge image (within the pixel limit) must not end the step
                    ctx.skip(parent.image, f"augmentation ran out of memory ({image.shape[1]}x{image.shape[0]})")
                    break
                pixels = result["image"]
                if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
                    raise UsageError(
                        f"step {ctx.step!r}: the augment pipeline must produce 8-bit RGB images, got {pixels.dtype} "
                        f"of shape {pixels.shape} (drop transforms such as Normalize or ToGray with one channel)"
                    )
                name = f"{stem}_{copy}"
                image_path = save_image(pixels, ctx.work_dir / "images" / f"{name}.{params.image_format}")
                mask_path = None
                if mask is not None:
                    mask_path = save_image(result["mask"], ctx.work_dir / "masks" / f"{name}.png")
                boxes = tuple(
                    Box(parent.boxes[int(i)].cls, float(x1), float(y1), float(x2), float(y2))
                    for (x1, y1, x2, y2), i in zip(result["bboxes"], result["box_index"], strict=True)
                )
                height, width = pixels.shape[:2]
                yield parent.derive(
                    id=f"{ctx.step}/{parent.id}/{copy}",
                    image=image_path,
                    width=width,
                    height=height,
                    boxes=boxes,
                    mask=mask_path,
                    domain=domain or parent.domain,
                    provenance=self.provenance(ctx, parent),
                    # Scores and predictions earlier steps stored on the parent do not describe the copy.
                    attributes={},
                )
