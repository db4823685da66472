"""Anomaly-detection metrics, in numpy alone: how well scores rank anomalous samples above normal ones.

Every metric reads "higher score = more anomalous" and flags a sample when ``score >= t``; samples
with tied scores are flagged together, so a tie is one step of every curve, never an arbitrary order.

* ROC: false-positive rate against true-positive rate over all thresholds, starting at (0, 0).
  AUROC is the trapezoidal area under it, which equals the Mann-Whitney probability that a random
  anomalous sample outscores a random normal one, a tie counting 1/2.
* AP (average precision, as scikit-learn defines it): sum over thresholds of
  (R_n - R_{n-1}) * P_n, precision weighted by the recall gained at that threshold; no interpolation.
* best F1: the highest F1 over all thresholds, and the threshold that reaches it.
* AUPRO (Bergmann et al., "The MVTec Anomaly Detection Dataset", IJCV 2021): every connected
  ground-truth region counts once, whatever its size. At a threshold, PRO is the mean over regions
  of the share of the region flagged, FPR the share of all normal pixels flagged; the area under
  PRO over FPR from 0 to ``fpr_limit``, divided by ``fpr_limit``, is 1.0 for a perfect map.
  Regions are 8-connected: pixels that touch only at a corner belong to one region.

A ranking metric needs both classes; with one, :func:`roc_auc` and friends raise ValueError,
:func:`aupro` returns NaN and :func:`anomaly_metrics` reports None.

Pixel-level inputs run to tens of millions of values, so nothing here argsorts all scores
together: each class is sorted on its own (a plain sort is several times faster than an argsort,
and float32 stays float32), and every positive finds its place among the sorted negatives by binary
search. Everything a metric needs follows from three counts per positive: negatives below it,
negatives at or below it, positives below it. They are computed in chunks, so the extra memory is
about one copy of the scores. The negatives may stay in several sorted parts (counts just add up),
which lets :func:`anomaly_metrics` sort each image group's pixels once for all its subsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

# Positives handled per step of the sweep: big enough that numpy does the work, small enough that
# the per-chunk count arrays (int64) stay a few MB.
CHUNK = 1 << 18

# 8-connectivity: pixels that touch at a corner belong to one defect region.
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds): one point per distinct score, highest first, after a leading (0, 0).

    ``thresholds[0]`` is +inf (nothing flagged); ``thresholds[k]`` is the k-th highest distinct score
    and its point counts every sample with ``score >= thresholds[k]``. No collinear points are
    dropped, so the arrays hold as many entries as distinct scores: for pixel-level curves meant
    for plotting use :func:`roc_points`.
    """
    positives, negatives = _rank(scores, labels)
    merged, positive = _merge(positives, negatives)
    merged, positive = merged[::-1], positive[::-1]  # highest score first
    # The last index of each run of equal scores: a tie becomes a single step of the curve.
    last = np.append(np.flatnonzero(merged[1:] != merged[:-1]), len(merged) - 1)
    true_positives = np.cumsum(positive, dtype=np.int64)[last]
    false_positives = last + 1 - true_positives
    fpr = np.concatenate(([0.0], false_positives / len(negatives)))
    tpr = np.concatenate(([0.0], true_positives / len(positives)))
    dtype = merged.dtype if np.issubdtype(merged.dtype, np.floating) else np.float64
    thresholds = np.concatenate((np.array([np.inf], dtype=dtype), merged[last].astype(dtype, copy=False)))
    return fpr, tpr, thresholds


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: P(anomalous score > normal score) + 1/2 P(equal). Raises ValueError on one class."""
    positives, negatives = _rank(scores, labels)
    return _sweep(positives, [negatives]).auroc


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Step-wise average precision, sum over distinct thresholds of (R_n - R_{n-1}) * P_n, as scikit-learn."""
    positives, negatives = _rank(scores, labels)
    return _sweep(positives, [negatives]).average_precision


def best_f1(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(F1, threshold): the best F1 of ``score >= threshold`` over all thresholds; the highest threshold on a tie."""
    positives, negatives = _rank(scores, labels)
    sweep = _sweep(positives, [negatives])
    return sweep.f1, sweep.f1_threshold


def roc_points(scores: np.ndarray, labels: np.ndarray, max_points: int = 200) -> list[list[float]]:
    """At most ``max_points`` [fpr, tpr] pairs on the ROC curve, from [0, 0] to [1, 1], for plotting.

    The thresholds are scores at evenly spaced ranks within each class, so neither axis jumps by
    more than about 2 / max_points between neighbours however lopsided the classes are; when both
    classes have fewer than max_points / 2 samples this is the whole curve. Nothing the size of the
    input is built beyond the two sorted classes, so it suits pixel-level curves as well.
    """
    if max_points < 3:
        raise ValueError(f"max_points must be at least 3, got {max_points}")
    positives, negatives = _rank(scores, labels)
    per_class = (max_points - 1) // 2
    # Rank 0 of each class is kept, so the lowest score is a threshold and the curve ends at (1, 1).
    picked = [values[_even_ranks(len(values), per_class)] for values in (positives, negatives)]
    thresholds = np.unique(np.concatenate(picked))[::-1]
    true_positives = len(positives) - np.searchsorted(positives, thresholds, side="left")
    false_positives = len(negatives) - np.searchsorted(negatives, thresholds, side="left")
    pairs = zip(false_positives / len(negatives), true_positives / len(positives), strict=True)
    return [[0.0, 0.0]] + [[float(fpr), float(tpr)] for fpr, tpr in pairs]


def aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3) -> float:
    """Normalised area under the per-region-overlap curve up to ``fpr_limit``; 1.0 for a perfect detector.

    ``maps`` (N, H, W) are anomaly scores, ``masks`` (N, H, W) the ground truth. Each 8-connected
    region of a mask is one region; every region across all images weighs the same. The curve is
    integrated exactly (linear between thresholds, interpolated at ``fpr_limit``). NaN when there
    is no region or no normal pixel: the curve is undefined then.
    """
    maps, masks = _pixel_inputs(maps, masks)
    _check_fpr_limit(fpr_limit)
    group = _ImageGroup(maps, masks)
    if group.regions == 0 or len(group.negatives) == 0:
        return float("nan")
    positives, weights = group.weighted_positives(group.regions)
    return _sweep(positives, [group.negatives], weights, fpr_limit).pro_area


def anomaly_metrics(
    image_scores: np.ndarray,
    maps: np.ndarray | None,
    masks: np.ndarray | None,
    labels: Sequence[str],
    good_label: str = "good",
    fpr_limit: float = 0.3,
) -> dict[str, Any]:
    """Image-level and (with maps and masks) pixel-level metrics, overall and per defect type, as plain JSON.

    ``image_scores`` (N,) and ``labels`` (N defect types, ``good_label`` for defect-free images)
    give the image level; ``maps`` (N, H, W) scores and ``masks`` (N, H, W) ground truth, both or
    neither, give the pixel level (a good image's mask must be empty). The result::

        {"images": N, "anomalous": k, "image_auroc", "image_ap", "image_f1", "image_f1_threshold",
         "pixel_auroc", "pixel_ap", "pixel_f1", "aupro",     # only with maps and masks
         "per_type": {type: {the same keys, on that type's images together with all good images}}}

    A metric that is undefined on the data (only one class present) is None, never NaN, so the
    dict passes ``json.dumps(..., allow_nan=False)``.
    """
    scores = _as_scores(image_scores, "image_scores")
    if scores.ndim != 1:
        raise ValueError(f"image_scores must be one score per image, shape (N,), got {scores.shape}")
    count = len(scores)
    if count == 0:
        raise ValueError("no images: image_scores is empty")
    if len(labels) != count:
        raise ValueError(f"{len(labels)} labels for {count} scores")
    _check_fpr_limit(fpr_limit)
    anomalous = np.array([label != good_label for label in labels], dtype=bool)
    kinds = sorted({label for label in labels if label != good_label})
    groups: dict[str, _ImageGroup] | None = None
    if maps is not None or masks is not None:
        if maps is None or masks is None:
            raise ValueError("pixel metrics need both maps and masks; pass neither for image metrics only")
        maps, masks = _pixel_inputs(maps, masks)
        if len(maps) != count:
            raise ValueError(f"{len(maps)} maps for {count} scores")
        marked = masks[~anomalous].any(axis=(1, 2))
        if marked.any():
            image = int(np.flatnonzero(~anomalous)[np.argmax(marked)])
            raise ValueError(f"image {image} is labelled {good_label!r} but its mask marks anomalous pixels")
        # Every subset holds all good images, so each group's pixels are sorted once and shared by its subsets.
        groups = {good_label: _ImageGroup(maps[~anomalous], masks[~anomalous])}
        for kind in kinds:
            chosen = np.array([label == kind for label in labels])
            groups[kind] = _ImageGroup(maps[chosen], masks[chosen])

    def metrics(chosen: np.ndarray, defects: list[str]) -> dict[str, Any]:
        """The metric keys for the images ``chosen`` (a mask), whose defect types are ``defects``."""
        result: dict[str, Any] = {"images": int(chosen.sum()), "anomalous": int(anomalous[chosen].sum())}
        sweep = None
        if 0 < result["anomalous"] < result["images"]:
            positives, negatives = _rank(scores[chosen], anomalous[chosen])
            sweep = _sweep(positives, [negatives])
        result["image_auroc"] = None if sweep is None else sweep.auroc
        result["image_ap"] = None if sweep is None else sweep.average_precision
        result["image_f1"] = None if sweep is None else sweep.f1
        result["image_f1_threshold"] = None if sweep is None else sweep.f1_threshold
        if groups is not None:
            result.update(_pixel_metrics(groups[good_label], [groups[kind] for kind in defects], fpr_limit))
        return result

    report = metrics(np.ones(count, dtype=bool), kinds)
    report["per_type"] = {
        kind: metrics(np.array([label in (kind, good_label) for label in labels]), [kind]) for kind in kinds
    }
    return report


@dataclass(frozen=True)
class _Sweep:
    auroc: float
    average_precision: float
    f1: float
    f1_threshold: float
    pro_area: float  # NaN unless weights were given


def _sweep(
    positives: np.ndarray,
    negatives: Sequence[np.ndarray],
    weights: np.ndarray | None = None,
    fpr_limit: float = 1.0,
) -> _Sweep:
    """Every metric in one pass over the ascending ``positives``, against ``negatives`` in ascending parts.

    ``weights`` (one per positive, in the same order) turn on the PRO area. For a positive with
    score s: ``below`` negatives score < s and ``at_or_below`` score <= s; ``positives_below``
    positives score < s. Flagging ``score >= s`` then gives tp = P - positives_below and
    fp = N - below. Each metric is a sum or maximum over positives:

    * AUROC: each positive beats ``below`` negatives and ties ``at_or_below - below``.
    * AP: recall rises by 1/P at each positive, at the precision of its threshold; tied positives
      share their threshold, so a tie adds (its size / P) * precision, one term of sklearn's sum.
    * F1: between two positive scores tp is fixed while fp only grows as the threshold falls, so
      the best threshold is always some positive's score.
    * PRO area: see :func:`_overlap_area`.
    """
    count_positive, count_negative = len(positives), sum(len(part) for part in negatives)
    beaten = 0  # exact integer sums: float rounding would make AUROC depend on the chunking
    precision_sum = 0.0
    best, best_threshold = -1.0, float("nan")
    pro_area = 0.0
    for start in range(0, count_positive, CHUNK):
        values = positives[start : start + CHUNK]
        below, at_or_below = _counts_below(negatives, values)
        beaten += int(below.sum(dtype=np.int64)) + int(at_or_below.sum(dtype=np.int64))
        true_positives = count_positive - np.searchsorted(positives, values, side="left")
        flagged = true_positives + (count_negative - below)
        precision_sum += float((true_positives / flagged).sum())
        f1 = 2 * true_positives / (flagged + count_positive)
        # Scores rise through the chunks, so the last maximum is the highest threshold reaching it.
        top = len(f1) - 1 - int(np.argmax(f1[::-1]))
        if f1[top] >= best:
            best, best_threshold = float(f1[top]), float(values[top])
        if weights is not None:
            shares = _overlap_area(below, at_or_below, count_negative, fpr_limit)
            pro_area += float(weights[start : start + len(values)] @ shares)
    return _Sweep(
        auroc=beaten / (2 * count_positive * count_negative),
        average_precision=precision_sum / count_positive,
        f1=best,
        f1_threshold=best_threshold,
        pro_area=pro_area / fpr_limit if weights is not None else float("nan"),
    )


def _overlap_area(below: np.ndarray, at_or_below: np.ndarray, count_negative: int, fpr_limit: float) -> np.ndarray:
    """Each positive's share of the area under its indicator "flagged" over FPR in [0, fpr_limit].

    The curve (PRO, or TPR with weights 1/P) is a weighted sum of per-positive indicators, so its
    area is the same weighted sum of these shares, and no curve needs building. As the threshold
    falls, FPR reaches (N - at_or_below) / N once the negatives above the positive are flagged, and
    (N - below) / N once its tied negatives are too. The positive is flagged together with its tied
    negatives and the curve runs linearly between thresholds, so over that stretch the indicator
    rises linearly from 0 to 1; after it, it is 1. Clipping at fpr_limit is the linear
    interpolation at exactly fpr_limit.
    """
    start = (count_negative - at_or_below) / count_negative
    end = (count_negative - below) / count_negative
    width = end - start
    flagged_after = np.maximum(fpr_limit - end, 0.0)
    reached = np.clip(fpr_limit - start, 0.0, width)  # how far into its ramp the FPR limit falls
    ramp = np.divide(reached**2, 2 * width, out=np.zeros_like(width), where=width > 0)
    return flagged_after + ramp


def _counts_below(parts: Sequence[np.ndarray], keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each key: how many values of the ascending ``parts`` together are < key, and how many are <= key."""
    below = np.zeros(len(keys), dtype=np.int64)
    at_or_below = np.zeros(len(keys), dtype=np.int64)
    for part in parts:
        if len(part) == 0:
            continue
        part_below = np.searchsorted(part, keys, side="left")
        below += part_below
        at_or_below += part_below
        # Real-valued scores rarely tie, so the second binary search runs only for keys that hit a value exactly.
        hit = part[np.minimum(part_below, len(part) - 1)] == keys
        if hit.any():
            at_or_below[hit] += np.searchsorted(part, keys[hit], side="right") - part_below[hit]
    return below, at_or_below


def _merge(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two ascending arrays merged into one in linear time, and a mask of the entries that came from ``first``."""
    # first[i] lands after the i entries of first before it and the entries of second below it.
    slots = np.searchsorted(second, first, side="left") + np.arange(len(first))
    from_first = np.zeros(len(first) + len(second), dtype=bool)
    from_first[slots] = True
    merged = np.empty(len(from_first), dtype=np.result_type(first.dtype, second.dtype))
    merged[slots] = first
    merged[~from_first] = second
    return merged, from_first


def _rank(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The scores of the positives and of the negatives, each sorted ascending; both must be present."""
    scores = _as_scores(scores, "scores")
    labels = _as_labels(labels, scores.shape, "labels", "scores")
    scores, labels = scores.ravel(), labels.ravel()  # views for contiguous input: nothing copied yet
    # Boolean indexing copies, so the copies are sorted in place: float32 stays float32, and no third copy.
    positives, negatives = scores[labels], scores[~labels]
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError(
            "a ranking metric needs both anomalous and normal samples, "
            f"got {len(positives)} anomalous and {len(negatives)} normal"
        )
    positives.sort()
    negatives.sort()
    return positives, negatives


class _ImageGroup:
    """Images whose pixels enter pixel metrics together: sorted normal pixels, anomalous pixels with region sizes."""

    def __init__(self, maps: np.ndarray, masks: np.ndarray) -> None:
        self.negatives = maps[~masks]
        self.negatives.sort()
        self.positives = maps[masks]  # C order, the order of the region sizes
        sizes = []
        self.regions = 0
        for mask in masks:
            # Image by image: one (N, H, W) label array would be int32 over every pixel.
            region, found = ndimage.label(mask, structure=EIGHT_CONNECTED)
            if found:
                sizes.append(np.bincount(region.ravel())[region[mask]])
                self.regions += found
        self.sizes = np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int64)

    def weighted_positives(self, regions: int) -> tuple[np.ndarray, np.ndarray]:
        """The positives ascending, each with its AUPRO weight 1 / (region size * ``regions``)."""
        order = np.argsort(self.positives, kind="stable")
        return self.positives[order], 1.0 / (self.sizes[order] * regions)


def _pixel_metrics(good: _ImageGroup, defects: list[_ImageGroup], fpr_limit: float) -> dict[str, float | None]:
    """Pixel metrics over the good images and the images of ``defects``; None where undefined."""
    negatives = [good.negatives] + [group.negatives for group in defects]
    regions = sum(group.regions for group in defects)
    if regions == 0 or sum(len(part) for part in negatives) == 0:
        return {"pixel_auroc": None, "pixel_ap": None, "pixel_f1": None, "aupro": None}
    ordered = [group.weighted_positives(regions) for group in defects]
    positives = np.concatenate([values for values, _ in ordered])
    weights = np.concatenate([weights for _, weights in ordered])
    order = np.argsort(positives, kind="stable")  # already sorted within groups; the stable sort merges the runs
    sweep = _sweep(positives[order], negatives, weights[order], fpr_limit)
    return {
        "pixel_auroc": sweep.auroc,
        "pixel_ap": sweep.average_precision,
        "pixel_f1": sweep.f1,
        "aupro": sweep.pro_area,
    }


def _even_ranks(length: int, count: int) -> np.ndarray:
    return np.unique(np.linspace(0, length - 1, min(count, length)).round().astype(np.int64))


def _as_scores(scores: Any, name: str) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numbers, got dtype {scores.dtype}")
    if scores.dtype.kind == "f" and np.isnan(scores).any():
        raise ValueError(f"{name} contain NaN; a NaN score has no place in a ranking")
    return scores


def _as_labels(labels: Any, shape: tuple[int, ...], name: str, of: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != shape:
        raise ValueError(f"{name} have shape {labels.shape} but {of} {shape}")
    if labels.dtype == bool:
        return labels
    if labels.dtype.kind not in "iuf" or not ((labels == 0) | (labels == 1)).all():
        raise ValueError(f"{name} must be bool or 0/1 (1 = anomalous)")
    return labels == 1


def _pixel_inputs(maps: Any, masks: Any) -> tuple[np.ndarray, np.ndarray]:
    maps = _as_scores(maps, "maps")
    if maps.ndim != 3:
        raise ValueError(f"maps must be (N, H, W), got shape {maps.shape}")
    return maps, _as_labels(masks, maps.shape, "masks", "maps")


def _check_fpr_limit(fpr_limit: float) -> None:
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must lie in (0, 1], got {fpr_limit}")
