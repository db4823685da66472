"""The ``dataset_stats`` evaluator: what a dataset holds and how its images look, per group.

Before any detector is trained, a reviewer wants to know whether a step did what it
claims: how many samples it added, whether boxes survived, and whether the "night"
images are in fact darker. Groups are (split, domain, origin), origin being ``real`` or
the generator's name.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from pydantic import Field

from fewgen.api import Evaluator, Params, StepContext
from fewgen.dataset import Dataset, Sample
from fewgen.hookspecs import hookimpl
from fewgen.imageio import CorruptImage, load_rgb


class DatasetStatsParams(Params):
    image_stats: bool = Field(True, description="Decode images to measure brightness and contrast.")
    max_images_per_group: int = Field(200, ge=1, description="Cap on images decoded per group (chosen by seed).")


class DatasetStats(Evaluator):
    name = "dataset_stats"
    description = "Sample, box and image statistics per split, domain and origin (real or generator)."
    Params = DatasetStatsParams

    def evaluate(self, dataset: Dataset, ctx: StepContext) -> dict[str, Any]:
        params: DatasetStatsParams = self.params  # type: ignore[assignment]
        groups: dict[str, list[Sample]] = defaultdict(list)
        for sample in dataset:
            origin = sample.provenance.generator if sample.provenance else "real"
            groups[f"{sample.split}/{sample.domain or '-'}/{origin}"].append(sample)
        result: dict[str, Any] = {"summary": dataset.summary(), "groups": {}}
        rng = ctx.rng()
        for name in sorted(groups):
            members = groups[name]
            entry = _box_stats(members, dataset.class_name)
            if params.image_stats:
                chosen = members
                if len(members) > params.max_images_per_group:
                    picks = sorted(rng.choice(len(members), params.max_images_per_group, replace=False))
                    chosen = [members[i] for i in picks]
                entry.update(_image_stats(chosen, ctx))
            result["groups"][name] = entry
        return result


def _box_stats(samples: list[Sample], class_name: Callable[[int], str]) -> dict[str, Any]:
    import numpy as np  # hook modules keep imports light; see docs/writing_plugins.md

    per_class: dict[str, list[float]] = defaultdict(list)
    for sample in samples:
        for box in sample.boxes:
            per_class[class_name(box.cls)].append(box.height / max(sample.height, 1))
    return {
        "samples": len(samples),
        "boxes": {name: len(heights) for name, heights in sorted(per_class.items())},
        "boxes_per_image": round(sum(len(s.boxes) for s in samples) / max(len(samples), 1), 4),
        "median_box_height_fraction": {
            name: round(float(np.median(heights)), 4) for name, heights in sorted(per_class.items())
        },
    }


def _image_stats(samples: list[Sample], ctx: StepContext) -> dict[str, Any]:
    import numpy as np

    luma_means, luma_stds = [], []
    for sample in ctx.progress(samples, total=len(samples), desc=f"{ctx.step}: image statistics"):
        try:
            rgb = load_rgb(sample.image).astype(np.float32)
        except CorruptImage as exc:
            ctx.skip(sample.image, str(exc))
            continue
        # ITU-R BT.601 luma, the brightness a viewer perceives.
        luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        luma_means.append(float(luma.mean()))
        luma_stds.append(float(luma.std()))
    if not luma_means:
        return {"images_measured": 0}
    return {
        "images_measured": len(luma_means),
        "mean_brightness": round(float(np.mean(luma_means)), 3),
        "mean_contrast": round(float(np.mean(luma_stds)), 3),
    }


@hookimpl
def register_evaluators(register: Callable[[type[Evaluator]], None]) -> None:
    register(DatasetStats)
