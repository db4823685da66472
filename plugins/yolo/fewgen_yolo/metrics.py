"""COCO-style detection metrics and a paired bootstrap that says whether synthetic data helped.

Plain NumPy; pycocotools is imported only by :func:`coco_crosscheck`, which checks these numbers against it.

Conventions
-----------
Boxes are ``x1, y1, x2, y2`` in pixels, classes are integers ``0 .. num_classes - 1``.

**Matching** (:func:`match_image`) follows COCOeval for bounding boxes. Per image and class, detections are taken in
order of score (descending; equal scores keep their input order) and each is matched to the unmatched ground-truth
box of its class with the highest IoU, provided that IoU is at least the threshold (an IoU exactly at the threshold
matches). Among unmatched ground truths with the same highest IoU, the last one wins, as in COCOeval. A detection
that matches nothing (wrong class, a duplicate of an already matched box, too little overlap) is a false positive.
This is done independently at each of the ten COCO IoU thresholds 0.50:0.05:0.95, which are the very same doubles
COCOeval uses (``np.linspace(0.5, 0.95, 10)``: the 0.90 threshold is 0.8999999999999999). COCOeval keeps only the
``maxDets`` (100) highest-scoring detections *per image and category*, not per image; ``max_detections`` does the
same. Greedy matching in score order means dropping low-scoring detections never changes the matches of the others,
so the cut can happen before matching.

**Average precision** (:func:`average_precision`), per class and IoU threshold: the detections of all images are
sorted by score (descending, stable over the images in the given order and each image's own score order, which is
COCOeval's tie-break too), giving cumulative true and false positives, precision ``tp / (tp + fp + eps)`` and recall
``tp / num_gt``. Precision is made monotone (running maximum from the right) and sampled at the 101 recall points
0:0.01:1, taking the precision at the first recall >= each point and 0 beyond the highest recall reached; AP is the
mean of the 101 samples. Classes without ground truth in the evaluated images have no AP (None) and are left out of
the mean, as in COCOeval; a class with ground truth and no detections has AP 0. AP50 is AP at IoU 0.5, AP50-95 the
mean over the ten thresholds. On the same inputs this reproduces pycocotools' ``stats[1]`` and ``stats[0]`` (area
range 'all') to floating-point rounding, ties in score included; ``tests/test_metrics.py`` checks it. (COCOeval
computes IoU from x, y, w, h, so an IoU within a rounding error of a threshold could in principle land on the other
side of it there.)

Ultralytics' ``val`` reports numbers that differ slightly from these (and from pycocotools): it assigns detections to
ground truth one-to-one by descending IoU irrespective of score, integrates the linearly interpolated precision
envelope over 101 recall points with the trapezoidal rule instead of averaging step samples, and caps detections per
image (``max_det=300``) across classes rather than per class.

**Two-level bootstrap** (:func:`bootstrap_deltas`): the test images are resampled with replacement, with the same draw
for every model, then each model's training seeds are resampled with replacement, and the difference in mAP
(variant - baseline) is recomputed for each replicate; the percentile interval of these differences is the confidence
interval (the reference and the reasoning are in :mod:`fewgen.verdicts`). Matching is done once per image
and model, so a resample only re-ranks precomputed true-positive flags. A resample is a multiset of images, so
instead of concatenating copies, each detection is weighted by how many times its image was drawn: cumulative true
positives, detections seen and the number of ground truths become weighted sums, and all resamples are evaluated at
once as rows of arrays. Two further facts keep those arrays small: the precision envelope sampled at recall points is
determined by its values at true positives (a false positive lowers precision without raising recall, so it never
holds the maximum of the envelope at a recall point), and detections ranked after a class's last true positive
cannot change its AP, so they are dropped. The copies of a detection rank next to each other, which is what
concatenating the drawn images in image order and sorting by score gives too (the tests check the equality); the two
differ only in how equal scores within one image and class interleave across copies, a tie-break.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fewgen.measures import pairwise_iou

COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
# COCOeval adds this to the precision denominator; adding it too keeps the numbers bit-comparable.
_PRECISION_EPS = np.spacing(1)
# Resamples are evaluated in chunks so that a (resamples x detections) array stays around this many elements.
_CHUNK_ELEMENTS = 4_000_000


def _as_boxes(boxes: Any, what: str) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{what} must have shape (N, 4) as x1, y1, x2, y2; got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} must be finite")
    return array


def _as_vector(values: Any, length: int, dtype: type, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=dtype).reshape(-1)
    if array.size != length:
        raise ValueError(f"{what} has {array.size} entries for {length} boxes")
    return array


@dataclass
class GroundTruth:
    """The labelled boxes of one image: ``boxes`` (N, 4) xyxy pixels, ``classes`` (N,) integers."""

    image_id: str
    boxes: np.ndarray
    classes: np.ndarray

    def __post_init__(self) -> None:
        self.boxes = _as_boxes(self.boxes, f"ground-truth boxes of {self.image_id}")
        self.classes = _as_vector(self.classes, len(self.boxes), np.int64, f"ground-truth classes of {self.image_id}")


@dataclass
class Detections:
    """One model's output on one image: ``boxes`` (M, 4) xyxy pixels, ``scores`` (M,), ``classes`` (M,)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __post_init__(self) -> None:
        self.boxes = _as_boxes(self.boxes, "detection boxes")
        self.scores = _as_vector(self.scores, len(self.boxes), np.float64, "detection scores")
        self.classes = _as_vector(self.classes, len(self.boxes), np.int64, "detection classes")
        if not np.isfinite(self.scores).all():
            raise ValueError("detection scores must be finite")


@dataclass(frozen=True)
class ImageMatches:
    """One model's detections on one image, matched to that image's ground truth at every IoU threshold.

    Detections are in descending score order (stable). ``tp[t, i]`` says whether detection ``i`` is a true positive
    at ``iou_thresholds[t]``; ``gt_counts`` maps each class present in the ground truth to its number of boxes.
    """

    image_id: str
    scores: np.ndarray
    classes: np.ndarray
    tp: np.ndarray
    gt_counts: dict[int, int]
    iou_thresholds: np.ndarray


@dataclass(frozen=True)
class APResult:
    """Per-class and mean average precision; per-class lists are indexed by class and hold None without ground truth.

    ``precision_at_recall[c]`` is class c's interpolated precision at IoU 0.5 at each of ``recall_points``, the
    curve whose mean is its AP50 (for precision-recall plots).
    """

    ap50: list[float | None]
    ap50_95: list[float | None]
    map50: float | None
    map50_95: float | None
    gt_counts: list[int]
    recall_points: np.ndarray
    precision_at_recall: list[np.ndarray | None]


def _greedy_match(iou: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """True-positive flags (T, M) for M score-ordered detections against N ground truths of one class.

    All thresholds are matched at once: row t of ``gt_taken`` is the state of the greedy matching at threshold t.
    """
    num_gt = iou.shape[1]
    threshold_rows = np.arange(thresholds.size)
    gt_taken = np.zeros((thresholds.size, num_gt), dtype=bool)
    matched = np.zeros((thresholds.size, iou.shape[0]), dtype=bool)
    for detection, overlaps in enumerate(iou):
        available = np.where(gt_taken, -1.0, overlaps)
        # COCOeval keeps the last of equally good ground truths; argmax over the reversed row finds it.
        best = num_gt - 1 - np.argmax(available[:, ::-1], axis=1)
        hit = available[threshold_rows, best] >= thresholds
        gt_taken[threshold_rows[hit], best[hit]] = True
        matched[hit, detection] = True
    return matched


def _rank_within_class(classes: np.ndarray) -> np.ndarray:
    """For classes listed in score order, each entry's rank among the entries of its own class."""
    rank = np.empty(classes.size, dtype=np.int64)
    for cls in np.unique(classes):
        of_class = np.flatnonzero(classes == cls)
        rank[of_class] = np.arange(of_class.size)
    return rank


def match_image(
    gt: GroundTruth,
    det: Detections,
    iou_thresholds: Sequence[float] | np.ndarray = COCO_IOU_THRESHOLDS,
    max_detections: int | None = 100,
) -> ImageMatches:
    """Match one image's detections to its ground truth at each IoU threshold (see the module docstring).

    ``max_detections`` keeps the highest-scoring detections per class, like COCOeval's maxDets; None keeps all.
    """
    thresholds = np.asarray(iou_thresholds, dtype=np.float64).reshape(-1)
    order = np.argsort(-det.scores, kind="stable")
    if max_detections is not None:
        order = order[_rank_within_class(det.classes[order]) < max_detections]
    boxes, scores, classes = det.boxes[order], det.scores[order], det.classes[order]
    tp = np.zeros((thresholds.size, scores.size), dtype=bool)
    for cls in np.unique(classes):
        gt_boxes = gt.boxes[gt.classes == cls]
        if len(gt_boxes):
            of_class = np.flatnonzero(classes == cls)
            tp[:, of_class] = _greedy_match(pairwise_iou(boxes[of_class], gt_boxes), thresholds)
    gt_classes, gt_class_counts = np.unique(gt.classes, return_counts=True)
    gt_counts = dict(zip(gt_classes.tolist(), gt_class_counts.tolist(), strict=True))
    return ImageMatches(gt.image_id, scores, classes, tp, gt_counts, thresholds)


@dataclass(frozen=True)
class _ClassTable:
    """One class of one model's matches over a list of images, in evaluation order.

    ``det_image`` is the image index of each detection of the class, sorted by score and cut after the last true
    positive at any threshold; ``tp_positions[t]`` the positions of the true positives at threshold t among them;
    ``gt_per_image`` the number of ground-truth boxes of the class in each image.
    """

    det_image: np.ndarray
    tp_positions: tuple[np.ndarray, ...]
    gt_per_image: np.ndarray


@dataclass(frozen=True)
class _MatchTables:
    """Everything AP needs from one model's matches, precomputed once so that resampling only re-weights images."""

    classes: list[_ClassTable]
    ap50_index: int
    num_images: int


def _build_tables(matches: Sequence[ImageMatches], num_classes: int) -> _MatchTables:
    if not matches:
        raise ValueError("no images to evaluate")
    thresholds = matches[0].iou_thresholds
    if any(not np.array_equal(m.iou_thresholds, thresholds) for m in matches):
        raise ValueError("all images must be matched at the same IoU thresholds")
    at_half = np.flatnonzero(np.isclose(thresholds, 0.5))
    if at_half.size == 0:
        raise ValueError(f"AP50 needs the IoU threshold 0.5 among {thresholds.tolist()}")
    scores = np.concatenate([m.scores for m in matches])
    classes = np.concatenate([m.classes for m in matches])
    tp = np.concatenate([m.tp for m in matches], axis=1)
    image_of_detection = np.repeat(np.arange(len(matches)), [m.scores.size for m in matches])
    gt_classes = np.array([cls for m in matches for cls in m.gt_counts], dtype=np.int64)
    for what, labels in (("detection", classes), ("ground-truth", gt_classes)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{what} classes must lie in 0..{num_classes - 1}")

    # Two stable sorts: by class, then by descending score, then by image order and rank within the image, which
    # is the order COCOeval's accumulate() ranks detections in, ties included.
    order = np.argsort(-scores, kind="stable")
    order = order[np.argsort(classes[order], kind="stable")]
    class_starts = np.searchsorted(classes[order], np.arange(num_classes + 1))
    tables = []
    for cls in range(num_classes):
        of_class = order[class_starts[cls] : class_starts[cls + 1]]
        tp_positions = tuple(np.flatnonzero(row) for row in tp[:, of_class])
        last_tp = max((positions[-1] for positions in tp_positions if positions.size), default=-1)
        gt_per_image = np.array([m.gt_counts.get(cls, 0) for m in matches], dtype=np.float64)
        tables.append(_ClassTable(image_of_detection[of_class[: last_tp + 1]], tp_positions, gt_per_image))
    return _MatchTables(tables, int(at_half[0]), len(matches))


def _envelope_steps(
    detection_weights: np.ndarray, seen: np.ndarray, positions: np.ndarray, gt_total: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Precision envelope at the true positives and how many recall points each one covers, one row per resample.

    ``detection_weights`` (B, D) and their running sum ``seen`` cover a class's ranked detections, ``positions`` are
    the true positives among them and ``gt_total`` (B,) the weighted ground-truth count (> 0). The interpolated
    precision at recall point r is the envelope at the first true positive whose recall is >= r, so true positive j
    covers the recall points in (recall[j - 1], recall[j]] and AP is ``(envelope * steps).sum(-1) / 101``.
    """
    tp_cumulative = np.cumsum(detection_weights[:, positions], axis=1)
    precision = tp_cumulative / (seen[:, positions] + _PRECISION_EPS)
    recall = tp_cumulative / gt_total[:, None]
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    points_reached = np.searchsorted(RECALL_POINTS, recall, side="right")
    return envelope, np.diff(points_reached, axis=1, prepend=0)


def _class_ap(table: _ClassTable, image_weights: np.ndarray) -> np.ndarray:
    """AP (B, T) of one class for each row of image weights (B, N); NaN where the row holds no ground truth."""
    gt_total = image_weights @ table.gt_per_image
    has_gt = gt_total > 0
    gt_total = np.where(has_gt, gt_total, 1.0)
    detection_weights = image_weights[:, table.det_image]
    seen = np.cumsum(detection_weights, axis=1)
    ap = np.zeros((image_weights.shape[0], len(table.tp_positions)))
    for threshold, positions in enumerate(table.tp_positions):
        if positions.size:
            envelope, steps = _envelope_steps(detection_weights, seen, positions, gt_total)
            ap[:, threshold] = (envelope * steps).sum(axis=1) / RECALL_POINTS.size
    ap[~has_gt] = np.nan
    return ap


def _mean_over_classes(values: np.ndarray) -> np.ndarray:
    """Mean over axis 0 of the non-NaN entries; NaN where there are none."""
    valid = ~np.isnan(values)
    counts = valid.sum(axis=0)
    totals = np.where(valid, values, 0.0).sum(axis=0)
    return np.divide(totals, counts, out=np.full(totals.shape, np.nan), where=counts > 0)


def _weighted_map(tables: _MatchTables, image_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mAP50 and mAP50-95 (each (B,)) for each row of image weights (B, N), evaluated in memory-bounded chunks."""
    longest = max((table.det_image.size for table in tables.classes), default=0)
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // max(longest, 1))
    map50, map50_95 = [], []
    for start in range(0, image_weights.shape[0], rows_per_chunk):
        chunk = image_weights[start : start + rows_per_chunk]
        per_class = np.stack([_class_ap(table, chunk) for table in tables.classes])  # (C, B, T)
        map50.append(_mean_over_classes(per_class[:, :, tables.ap50_index]))
        map50_95.append(_mean_over_classes(per_class.mean(axis=2)))
    return np.concatenate(map50), np.concatenate(map50_95)


def _optional(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def average_precision(matches: Sequence[ImageMatches], num_classes: int) -> APResult:
    """COCO-style per-class AP and mAP over the matched images (see the module docstring)."""
    tables = _build_tables(matches, num_classes)
    full_set = np.ones((1, tables.num_images))
    per_class = np.stack([_class_ap(table, full_set)[0] for table in tables.classes])  # (C, T)
    ap50 = per_class[:, tables.ap50_index]
    ap50_95 = per_class.mean(axis=1)
    curves: list[np.ndarray | None] = []
    for table, class_ap50 in zip(tables.classes, ap50, strict=True):
        if np.isnan(class_ap50):
            curves.append(None)
            continue
        curve = np.zeros(RECALL_POINTS.size)
        positions = table.tp_positions[tables.ap50_index]
        if positions.size:
            weights = full_set[:, table.det_image]
            envelope, steps = _envelope_steps(
                weights, np.cumsum(weights, axis=1), positions, full_set @ table.gt_per_image
            )
            covered = np.repeat(envelope[0], steps[0])
            curve[: covered.size] = covered
        curves.append(curve)
    return APResult(
        ap50=[_optional(value) for value in ap50],
        ap50_95=[_optional(value) for value in ap50_95],
        map50=_optional(_mean_over_classes(ap50[:, None])[0]),
        map50_95=_optional(_mean_over_classes(ap50_95[:, None])[0]),
        gt_counts=[int(table.gt_per_image.sum()) for table in tables.classes],
        recall_points=RECALL_POINTS.copy(),
        precision_at_recall=curves,
    )


def weighted_map(
    matches: Sequence[ImageMatches], num_classes: int, image_weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """mAP50 and mAP50-95 for each row of ``image_weights`` (B, N), the number of times each image is drawn.

    Row b equals :func:`average_precision` on the list holding image i ``image_weights[b, i]`` times, in image
    order; NaN where a row holds no ground truth. This is what each bootstrap resample computes.
    """
    weights = np.asarray(image_weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] != len(matches):
        raise ValueError(f"image_weights must have shape (B, {len(matches)}); got {weights.shape}")
    return _weighted_map(_build_tables(matches, num_classes), weights)


def _seed_lists(
    matches: Sequence[ImageMatches] | Sequence[Sequence[ImageMatches]], model: str
) -> list[list[ImageMatches]]:
    if not matches:
        raise ValueError(f"{model}: no matches")
    if isinstance(matches[0], ImageMatches):
        return [list(matches)]
    return [list(seed_matches) for seed_matches in matches]


def _per_seed_resampled(tables_per_seed: list[_MatchTables], image_weights: np.ndarray) -> np.ndarray:
    """(2, S, B): mAP50 and mAP50-95 of each training seed on each weight row."""
    return np.stack([np.stack(_weighted_map(tables, image_weights)) for tables in tables_per_seed], axis=1)


def bootstrap_deltas(
    baseline: Sequence[ImageMatches] | Sequence[Sequence[ImageMatches]],
    variants: Mapping[str, Sequence[ImageMatches] | Sequence[Sequence[ImageMatches]]],
    num_classes: int,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Two-level bootstrap of mAP(variant) - mAP(baseline), for mAP50 and mAP50-95, for each variant.

    Each model is given as one list of :class:`ImageMatches` or as one such list per training seed; every list must
    hold the same images in the same order. Each replicate draws the test images with replacement once, the same draw
    for every model (the comparison is paired over images), and then, independently for each model, draws its
    training seeds with replacement (:func:`fewgen.verdicts.resample_seeds`); a model's figure is the mean over the
    drawn seeds of its mAP on the drawn images. So the interval covers both the luck of the test set and the luck of
    the training run (:mod:`fewgen.verdicts` gives the reference); with one seed per model it is the paired bootstrap
    over test images. Point estimates are the seed means on the full set. Replicates that hold no ground truth at all
    have no mAP and are left out of intervals and shares.

    Returns ``{"num_images", "num_seeds": {model: n}, "resamples", "seed", "confidence", "method",
    "baseline": {"map50": {"value", "ci", "per_seed"}, "map50_95": ...}, "variants": {name: {"map50": {...},
    "map50_95": {...}}}}`` where each variant metric holds ``baseline``, ``variant``, ``delta`` (point estimates),
    ``baseline_ci``, ``variant_ci``, ``delta_ci``, ``share_delta_positive``, ``baseline_per_seed``,
    ``variant_per_seed`` and ``verdict`` (:func:`fewgen.verdicts.verdict`). ``pairwise`` compares every two variants
    on the same replicates: ``[{"variant", "versus", "map50": {"delta", "delta_ci", "share_delta_positive",
    "verdict"}, "map50_95": ...}]``, the difference being variant - versus.
    """
    from fewgen.verdicts import item_weights, percentile_interval, resample_seeds, verdict

    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must lie strictly between 0 and 1")
    if not variants:
        raise ValueError("no variant to compare with the baseline")
    if "baseline" in variants:
        raise ValueError("'baseline' names the model without synthetic data; give the variant another name")
    seed_lists = {"baseline": _seed_lists(baseline, "baseline")}
    seed_lists.update({name: _seed_lists(matches, name) for name, matches in variants.items()})
    image_ids = [m.image_id for m in seed_lists["baseline"][0]]
    for model, lists in seed_lists.items():
        for index, matches in enumerate(lists):
            if [m.image_id for m in matches] != image_ids:
                raise ValueError(f"{model} seed {index} does not hold the same test images in the same order")
    if not any(m.gt_counts for m in seed_lists["baseline"][0]):
        raise ValueError("the test images hold no ground truth")
    tables = {model: [_build_tables(m, num_classes) for m in lists] for model, lists in seed_lists.items()}

    num_images = len(image_ids)
    # The image draws come first from the seed's own stream, so one seed per model gives exactly the paired
    # bootstrap over images; the seed draws take a second stream.
    image_weights = item_weights(num_images, resamples, np.random.default_rng(seed))
    seed_rng = np.random.default_rng([seed, 1])
    full_set = np.ones((1, num_images))
    full = {model: _per_seed_resampled(ts, full_set)[:, :, 0] for model, ts in tables.items()}  # (2, S)
    per_seed = {model: _per_seed_resampled(ts, image_weights) for model, ts in tables.items()}  # (2, S, B)
    replicates = {
        model: np.stack([resample_seeds(values[row], seed_rng) for row in range(2)])
        for model, values in per_seed.items()
    }

    result: dict[str, Any] = {
        "num_images": num_images,
        "num_seeds": {model: len(lists) for model, lists in seed_lists.items()},
        "resamples": resamples,
        "seed": seed,
        "confidence": confidence,
        "method": "two-level bootstrap: test images (paired across models), then training seeds per model",
        "baseline": {},
        "variants": {name: {} for name in variants},
        "pairwise": [],
    }
    names = list(variants)
    pairs = [(first, second) for index, first in enumerate(names) for second in names[index + 1 :]]
    for first, second in pairs:
        result["pairwise"].append({"variant": first, "versus": second})
    for row, metric in enumerate(("map50", "map50_95")):
        base_values, base_point = replicates["baseline"][row], float(full["baseline"][row].mean())
        result["baseline"][metric] = {
            "value": base_point,
            "ci": percentile_interval(base_values, confidence),
            "per_seed": [float(v) for v in full["baseline"][row]],
        }
        for name in variants:
            variant_values, variant_point = replicates[name][row], float(full[name][row].mean())
            deltas = variant_values - base_values
            kept = ~np.isnan(deltas)
            interval = percentile_interval(deltas, confidence)
            result["variants"][name][metric] = {
                "baseline": base_point,
                "variant": variant_point,
                "delta": variant_point - base_point,
                "baseline_ci": result["baseline"][metric]["ci"],
                "variant_ci": percentile_interval(variant_values, confidence),
                "delta_ci": interval,
                "share_delta_positive": float(np.mean(deltas[kept] > 0)),
                "baseline_per_seed": result["baseline"][metric]["per_seed"],
                "variant_per_seed": [float(v) for v in full[name][row]],
                "verdict": verdict(variant_point - base_point, interval, confidence),
            }
        # Variant against variant on the same replicates (PS-GAN against copy-paste, say): which generator's
        # samples help more, with the same two-level interval.
        for entry, (first, second) in zip(result["pairwise"], pairs, strict=True):
            point = float(full[first][row].mean() - full[second][row].mean())
            deltas = replicates[first][row] - replicates[second][row]
            kept = ~np.isnan(deltas)
            interval = percentile_interval(deltas, confidence)
            entry[metric] = {
                "delta": point,
                "delta_ci": interval,
                "share_delta_positive": float(np.mean(deltas[kept] > 0)),
                "verdict": verdict(point, interval, confidence),
            }
    return result


def _xywh(box: np.ndarray) -> list[float]:
    x1, y1, x2, y2 = (float(value) for value in box)
    return [x1, y1, x2 - x1, y2 - y1]


def coco_crosscheck(
    gts: Sequence[GroundTruth],
    dets: Sequence[Detections],
    class_names: Sequence[str],
    max_detections: int = 100,
    image_sizes: Sequence[tuple[int, int]] | None = None,
) -> dict[str, float]:
    """Evaluate the same inputs with pycocotools' COCOeval and with :func:`average_precision`, and compare.

    ``dets[i]`` are the detections on image ``gts[i]``; ``image_sizes`` optionally gives each image's (width,
    height). Returns ``coco_map50``, ``coco_map50_95`` (COCOeval's stats[1] and stats[0], area range 'all'),
    ``map50``, ``map50_95`` (ours) and ``abs_diff_map50``, ``abs_diff_map50_95``.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(gts) != len(dets):
        raise ValueError(f"{len(gts)} ground-truth images but {len(dets)} detection lists")
    if image_sizes is not None and len(image_sizes) != len(gts):
        raise ValueError(f"{len(image_sizes)} image sizes for {len(gts)} images")
    ours = average_precision(
        [match_image(gt, det, max_detections=max_detections) for gt, det in zip(gts, dets, strict=True)],
        len(class_names),
    )
    if ours.map50 is None or ours.map50_95 is None:
        raise ValueError("the images hold no ground truth")

    images, annotations, results = [], [], []
    # COCO ids start at 1: COCOeval stores a match as the matched annotation's id, so an id 0 would read as no match.
    for image_id, (gt, det) in enumerate(zip(gts, dets, strict=True), start=1):
        image: dict[str, Any] = {"id": image_id, "file_name": gt.image_id}
        if image_sizes is not None:
            width, height = image_sizes[image_id - 1]
            image |= {"width": int(width), "height": int(height)}
        images.append(image)
        for box, cls in zip(gt.boxes, gt.classes, strict=True):
            bbox = _xywh(box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(cls) + 1,
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
        for box, score, cls in zip(det.boxes, det.scores, det.classes, strict=True):
            results.append(
                {"image_id": image_id, "category_id": int(cls) + 1, "bbox": _xywh(box), "score": float(score)}
            )

    if results:
        categories = [{"id": index, "name": name} for index, name in enumerate(class_names, start=1)]
        # pycocotools prints progress; keep it out of the caller's output.
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO()
            coco_gt.dataset = {"info": {}, "images": images, "annotations": annotations, "categories": categories}
            coco_gt.createIndex()
            evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), iouType="bbox")
            # summarize() hard-codes maxDets=100 for stats[0], so read the precision array for any other cap.
            evaluator.params.maxDets = [max_detections]
            evaluator.evaluate()
            evaluator.accumulate()
        precision = evaluator.eval["precision"][:, :, :, 0, -1]  # (IoU thresholds, recall points, classes), area 'all'
        coco_map50 = float(np.mean(precision[0][precision[0] > -1]))
        coco_map50_95 = float(np.mean(precision[precision > -1]))
    else:
        # loadRes cannot take an empty list; with no detections COCOeval's AP is 0 for every class with ground truth.
        coco_map50 = coco_map50_95 = 0.0
    return {
        "coco_map50": coco_map50,
        "coco_map50_95": coco_map50_95,
        "map50": ours.map50,
        "map50_95": ours.map50_95,
        "abs_diff_map50": abs(ours.map50 - coco_map50),
        "abs_diff_map50_95": abs(ours.map50_95 - coco_map50_95),
    }
