"""The ``copy_paste`` generator: real objects cut from some images and pasted into others, labels kept exact.

Simple Copy-Paste (Ghiasi et al., CVPR 2021) is the baseline every insertion generator has
to beat: no model, only real objects in new places. ``generate`` collects the instances of
the chosen classes in the step's real samples (box crops, or mask cut-outs where a sample
has a mask; synthetic samples of earlier steps are never sources), takes a ``fraction`` of
the step's samples as targets, and pastes ``per_image`` instances from other images into
each: at a random place and jittered scale, or into a box :class:`fewgen.placement.BoxPlacement`
draws from the class's real boxes. The new sample's boxes are the target's, minus what
the pastes hide, plus the pastes' (see :mod:`fewgen_copy_paste.compose`); its mask, when
the dataset has masks, is the target's with the pasted objects added.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from fewgen.api import Generator, Params, StepContext, choose_fraction, file_stem
from fewgen.dataset import Box, Dataset, Sample
from fewgen.errors import UsageError, did_you_mean
from fewgen.imageio import load_sample_pixels, save_image

if TYPE_CHECKING:
    import numpy as np

    from fewgen.placement import BoxPlacement
    from fewgen_copy_paste.compose import Patch
    from fewgen_copy_paste.instances import Instance

MAX_PER_IMAGE = 50


class CopyPasteParams(Params):
    classes: list[int | str] | None = Field(
        None, description="Classes whose instances are pasted: ids or names of the dataset's classes; default all."
    )
    fraction: float = Field(1.0, ge=0.0, le=1.0, description="Share of the eligible targets that get a pasted copy.")
    into_labels: list[str | None] | None = Field(
        None,
        description="Image-level labels of the targets (null in the list: unlabelled samples); default: every "
        "sample of the step. [good] pastes defects into defect-free templates only.",
    )
    from_labels: list[str | None] | None = Field(
        None, description="Image-level labels of the real samples instances are taken from; default: every one."
    )
    same_image: bool = Field(False, description="Whether an image may receive its own instances.")
    per_image: int | tuple[int, int] = Field(
        1,
        description=f"Instances pasted per target: a count or [min, max], drawn uniformly (1 to {MAX_PER_IMAGE}).",
    )
    scale: tuple[float, float] = Field(
        (0.8, 1.25), description="Random placement: [min, max] size factor, drawn uniformly in log space."
    )
    flip: bool = Field(True, description="Mirror each instance left-right with probability 0.5.")
    placement: Literal["random", "learned"] = Field(
        "random",
        description="random: uniform position at the jittered size, overlaps and borders allowed; learned: a box drawn "
        "from the class's real boxes (size by position), overlapping no box, the instance resized to it.",
    )
    blend: Literal["none", "feather", "poisson"] = Field(
        "none", description="How pasted pixels meet the image: a hard edge, a feathered edge, or Poisson blending."
    )
    feather: float = Field(2.0, ge=0.0, le=50.0, description="Pixels inside the outline over which a paste fades in.")
    min_visible: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="A box (pasted or earlier) keeping less of its area in view, inside the image and not covered by "
        "later pastes, is dropped.",
    )
    attempts: int = Field(100, ge=1, le=10000, description="Learned placement: candidate boxes tried per instance.")
    label: str | None = Field(
        None, min_length=1, description="Image-level label of the new samples; default: the target's."
    )
    domain: str | None = Field(None, min_length=1, description="Domain of the new samples; default: the target's.")
    image_format: Literal["png", "jpg"] = Field("png", description="File format of the new images (masks are png).")

    @field_validator("per_image")
    @classmethod
    def _count_range(cls, value: int | tuple[int, int]) -> int | tuple[int, int]:
        low, high = (value, value) if isinstance(value, int) else value
        if not 1 <= low <= high <= MAX_PER_IMAGE:
            raise ValueError(f"per_image must be a count or [min, max] with 1 <= min <= max <= {MAX_PER_IMAGE}")
        return value

    @field_validator("scale")
    @classmethod
    def _scale_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 < value[0] <= value[1] <= 20.0:
            raise ValueError("scale must be [min, max] with 0 < min <= max <= 20")
        return value

    def counts(self) -> tuple[int, int]:
        return (self.per_image, self.per_image) if isinstance(self.per_image, int) else self.per_image


class CopyPasteGenerator(Generator):
    name = "copy_paste"
    description = "Simple Copy-Paste: real objects (box crops or mask cut-outs) pasted into other images, labels exact."
    Params = CopyPasteParams

    def resolve_classes(self, dataset: Dataset, ctx: StepContext) -> set[int] | None:
        params: CopyPasteParams = self.params  # type: ignore[assignment]
        if params.classes is None:
            return None
        ids = set()
        for wanted in params.classes:
            if isinstance(wanted, str) and not wanted.lstrip("-").isdigit():
                if wanted not in dataset.classes:
                    raise UsageError(
                        f"step {ctx.step!r}: class {wanted!r} is not a class of the dataset"
                        f"{did_you_mean(wanted, dataset.classes)} ({', '.join(dataset.classes)})"
                    )
                ids.add(dataset.classes.index(wanted))
            else:
                ids.add(int(wanted))
        return ids

    def generate(self, dataset: Dataset, ctx: StepContext) -> Iterator[Sample]:
        from fewgen.placement import BoxPlacement
        from fewgen_copy_paste.instances import collect_instances

        params: CopyPasteParams = self.params  # type: ignore[assignment]
        classes = self.resolve_classes(dataset, ctx)
        real = [s for s in dataset if not s.is_synthetic]
        sources = [s for s in real if params.from_labels is None or s.label in params.from_labels]
        instances, too_small = collect_instances(sources, classes, ctx)
        if not instances:
            wanted = "any class" if classes is None else ", ".join(dataset.class_name(c) for c in sorted(classes))
            among = "" if params.from_labels is None else f" labelled {params.from_labels}"
            raise UsageError(
                f"step {ctx.step!r}: no instance of {wanted} to paste in the {len(sources)} real samples{among} "
                f"of the step ({too_small} boxes under 2 px a side)"
            )
        ctx.log.info("%d instances from %d real samples (%d boxes too small)", len(instances), len(sources), too_small)
        placements: dict[int, BoxPlacement] = {}
        if params.placement == "learned":
            placements = {cls: BoxPlacement.fit(real, cls) for cls in sorted({i.box.cls for i in instances})}
        eligible = [s for s in dataset if params.into_labels is None or s.label in params.into_labels]
        chosen = choose_fraction(eligible, params.fraction, ctx.rng())
        writes_masks = any(s.mask is not None for s in dataset)
        outcomes: Counter[str] = Counter()
        for index, target in ctx.progress(chosen, total=len(chosen), desc=f"{ctx.step}: pasting"):
            sample = self.paste_into(target, index, instances, placements, writes_masks, outcomes, ctx)
            if sample is not None:
                yield sample
        ctx.log.info("outcomes: %s", dict(sorted(outcomes.items())))

    def paste_into(
        self,
        target: Sample,
        index: int,
        instances: list[Instance],
        placements: dict[int, BoxPlacement],
        writes_masks: bool,
        outcomes: Counter[str],
        ctx: StepContext,
    ) -> Sample | None:
        """The target with instances pasted in, or None (skipped, or no paste fitted)."""
        import numpy as np

        from fewgen_copy_paste.compose import Layout, blend_into, fit_patch, pixel_rect, random_corner

        params: CopyPasteParams = self.params  # type: ignore[assignment]
        own = {target.id, target.provenance.parent if target.provenance else None}
        pool = instances if params.same_image else [i for i in instances if i.source not in own]
        if not pool:
            outcomes["targets without another image's instance"] += 1
            return None
        loaded = self.load_target(target, ctx)
        if loaded is None:
            return None
        image, mask = loaded
        height, width = image.shape[:2]
        if mask is None and writes_masks:
            mask = np.zeros((height, width), np.uint8)
        # Written as the target's own foreground value (255, or 1 for 0/1 masks).
        foreground = (int(mask.max()) if mask is not None else 0) or 255
        rng = ctx.rng(1, index)  # one stream per input position: a skipped target shifts no other draw
        layout = Layout(target.boxes, width, height, params.min_visible)
        low, high = params.counts()
        pasted: list[dict[str, Any]] = []
        for _ in range(int(rng.integers(low, high + 1))):
            instance = pool[int(rng.integers(len(pool)))]
            flipped = params.flip and bool(rng.random() < 0.5)
            source_height, source_width = instance.alpha.shape
            if params.placement == "random":
                factor = math.exp(rng.uniform(math.log(params.scale[0]), math.log(params.scale[1])))
                size = (max(1, round(source_width * factor)), max(1, round(source_height * factor)))
                corner = random_corner(*size, width, height, rng)
                spot: tuple[int, int, int, int] | None = (*corner, *size)
            else:
                drawn = placements[instance.box.cls].place(
                    width, height, layout.boxes(), 1, rng, min_height=2.0, attempts=params.attempts
                )
                spot = pixel_rect(drawn[0]) if drawn else None
            if spot is None:
                outcomes["instances without room"] += 1
                continue
            x, y, w, h = spot
            patch = fit_patch(instance.pixels, instance.alpha, instance.box.cls, x, y, w, h, flipped)
            tracked = layout.admit(patch)
            if tracked is None:
                outcomes["pastes mostly outside the image"] += 1
                continue
            used, note = blend_into(image, patch, params.blend, params.feather)
            layout.add(tracked, patch)
            if mask is not None:
                self.add_to_mask(mask, patch, foreground)
            record: dict[str, Any] = {
                "source": instance.source,
                "source_box": box_record(instance.box),
                "box": box_record(patch.box),  # where it was pasted, perhaps partly outside the image
                "label": box_record(tracked.label(params.min_visible)),  # its box in view, before later pastes
                "scale": [round(w / source_width, 4), round(h / source_height, 4)],
                "flipped": flipped,
                "cutout": instance.cutout,
                "blend": used,
            }
            if note:
                record["note"] = note
                outcomes["poisson fell back to feather"] += 1
            pasted.append(record)
        if not pasted:
            outcomes["targets without a paste"] += 1
            return None
        boxes, removed, shrunk = layout.result()
        outcomes["samples"] += 1
        outcomes["instances pasted"] += len(pasted)
        stem = file_stem(index, target.id)
        image_path = save_image(image, ctx.work_dir / "images" / f"{stem}.{params.image_format}")
        mask_path = save_image(mask, ctx.work_dir / "masks" / f"{stem}.png") if mask is not None else None
        return target.derive(
            id=f"{ctx.step}/{target.id}",
            image=image_path,
            width=width,
            height=height,
            boxes=tuple(boxes),
            mask=mask_path,
            label=params.label or target.label,
            domain=params.domain or target.domain,
            provenance=self.provenance(ctx, target),
            # Scores earlier steps stored on the target do not describe the pasted copy.
            attributes={ctx.step: {"pasted": pasted, "removed": removed, "shrunk": shrunk}},
        )

    @staticmethod
    def load_target(target: Sample, ctx: StepContext) -> tuple[np.ndarray, np.ndarray | None] | None:
        pixels = load_sample_pixels(target.image, target.mask, ctx.skip)
        if pixels is None:
            return None
        image, mask = pixels
        # Copies: the decoded arrays may be read-only views, and pasting writes into them.
        return image.copy(), None if mask is None else mask.copy()

    @staticmethod
    def add_to_mask(mask: np.ndarray, patch: Patch, foreground: int) -> None:
        from fewgen_copy_paste.compose import overlap

        common = overlap(0, 0, mask.shape[1], mask.shape[0], patch.x, patch.y, patch.width, patch.height)
        if common is not None:
            mine, theirs = common
            mask[mine][patch.shape[theirs]] = foreground


def box_record(box: Box | None) -> list[float] | None:
    if box is None:
        return None
    return [box.cls, round(box.x1, 2), round(box.y1, 2), round(box.x2, 2), round(box.y2, 2)]
