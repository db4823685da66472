"""The objects that can be pasted: box crops, or mask cut-outs where a sample has a mask, from real samples."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from fewgen.api import StepContext
from fewgen.dataset import Box, Sample
from fewgen.imageio import load_sample_pixels
from fewgen_copy_paste.compose import MIN_SIDE


@dataclass(frozen=True)
class Instance:
    """One labelled object of a source image: its pixels and which of them are the object."""

    source: str  # the source sample's id
    box: Box  # as labelled in the source
    pixels: np.ndarray  # h x w x 3 uint8, the box's whole pixels
    alpha: np.ndarray  # h x w bool: the mask inside the box, or the whole rectangle
    cutout: str  # "mask" or "box"


def collect_instances(samples: list[Sample], classes: set[int] | None, ctx: StepContext) -> tuple[list[Instance], int]:
    """Every box of ``classes`` (None: any) in ``samples``, and how many boxes were too small to crop."""
    instances: list[Instance] = []
    too_small = 0
    with_boxes = [s for s in samples if any(classes is None or b.cls in classes for b in s.boxes)]
    for sample in ctx.progress(with_boxes, total=len(with_boxes), desc=f"{ctx.step}: collecting instances"):
        pixels = load_sample_pixels(sample.image, sample.mask, ctx.skip)
        if pixels is None:
            continue
        image, mask = pixels
        found, small = crop_instances(
            sample.id, image, mask, (b for b in sample.boxes if classes is None or b.cls in classes)
        )
        instances += found
        too_small += small
    return instances, too_small


def crop_instances(
    source: str, image: np.ndarray, mask: np.ndarray | None, boxes: Iterable[Box]
) -> tuple[list[Instance], int]:
    """The instances of ``boxes`` in one image (whole pixels, rounded), and how many were under 2 px a side."""
    height, width = image.shape[:2]
    instances, too_small = [], 0
    for box in boxes:
        x1, y1 = max(round(box.x1), 0), max(round(box.y1), 0)
        x2, y2 = min(round(box.x2), width), min(round(box.y2), height)
        if x2 - x1 < MIN_SIDE or y2 - y1 < MIN_SIDE:
            too_small += 1
            continue
        pixels = image[y1:y2, x1:x2].copy()
        alpha = mask[y1:y2, x1:x2] > 0 if mask is not None else None
        if alpha is None or not alpha.any():
            # No mask, or one that does not mark this object: the box is all there is to go by.
            instances.append(Instance(source, box, pixels, np.ones(pixels.shape[:2], bool), "box"))
        else:
            instances.append(Instance(source, box, pixels, alpha, "mask"))
    return instances, too_small
