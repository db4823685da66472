"""DRAEM against the statistical baseline: AUROC deltas with a paired bootstrap over test images.

A test set of a few hundred images is a sample; the interval says how far the delta
(DRAEM - baseline) could move on another sample of the same size. Each of ``resamples``
replicates draws the test images with replacement (:func:`fewgen.verdicts.item_weights`),
*the same draw for both methods*, so an image that is hard for both moves both figures
together and the interval is that of the difference, not of two independent figures. At the
pixel level the unit drawn is still the image, with all its pixels: pixels of one image are
not independent. The interval is the percentile interval of the replicate deltas and the
reading one of :func:`fewgen.verdicts.verdict`.

An AUROC on a multiset of items is computed from per-item counts in score bins: with
``positive[k]`` and ``negative[k]`` the (weighted) counts in the k-th ascending bin,
AUROC = sum_k positive[k] * (negatives in lower bins + negative[k] / 2) / (P * N), items in one
bin counting as ties. At the image level the bins are the distinct scores, which makes it
exact. At the pixel level (tens of millions of values) they are PIXEL_BINS quantiles of the
normal pixels, which moves an AUROC by at most about 1 / (2 * PIXEL_BINS), the share of
positive-negative pairs that can share a bin; the point estimates are the exact figures from
:mod:`fewgen_draem.metrics` and the full-set binned figure is reported beside them.

DRAEM is trained once per run (one seed), so the interval covers test-image sampling only,
not the spread between training runs; the metrics say so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fewgen.verdicts import item_weights, percentile_interval, verdict

PIXEL_BINS = 2048
CI_COVERS = (
    "test-image sampling only: DRAEM is trained once (one training seed), so the spread between "
    "training runs is not in the interval; the baseline has no seed"
)


def auroc_from_counts(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """AUROC of (..., K) counts of positives and negatives in K ascending bins (a bin is a tie); NaN on one class."""
    lower = np.cumsum(negative, axis=-1) - negative
    beaten = (positive * (lower + 0.5 * negative)).sum(-1)
    pairs = positive.sum(-1) * negative.sum(-1)
    return np.divide(beaten, pairs, out=np.full(np.shape(pairs), np.nan), where=pairs > 0)


def image_counts(scores: np.ndarray, anomalous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) one-hot counts of each image's score among the K distinct scores, split by class."""
    _, bins = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
    one_hot = np.zeros((len(bins), int(bins.max()) + 1 if len(bins) else 0))
    one_hot[np.arange(len(bins)), bins] = 1.0
    positive = one_hot * anomalous[:, None]
    return positive, one_hot - positive


def pixel_counts(maps: np.ndarray, masks: np.ndarray, bins: int = PIXEL_BINS) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) per-image counts of anomalous and normal pixels in K bins at quantiles of the normal pixels."""
    normal = maps[~masks]
    if normal.size == 0:
        edges = np.unique(maps)
    else:
        step = max(1, normal.size // 4_000_000)  # quantiles of a strided subset: the edges need not be exact
        edges = np.unique(np.quantile(normal[::step], np.linspace(0, 1, bins + 1)[1:-1]))
    size = len(edges) + 1
    positive, negative = np.zeros((len(maps), size)), np.zeros((len(maps), size))
    for index, (values, mask) in enumerate(zip(maps, masks, strict=True)):
        # Bin k holds edges[k-1] < v <= edges[k]: equal values always share a bin, so ties stay ties.
        placed = np.searchsorted(edges, values.ravel(), side="left")
        flat = mask.ravel()
        positive[index] = np.bincount(placed[flat], minlength=size)
        negative[index] = np.bincount(placed[~flat], minlength=size)
    return positive, negative


def paired_delta(
    treatment: tuple[np.ndarray, np.ndarray],
    baseline: tuple[np.ndarray, np.ndarray],
    exact: tuple[float | None, float | None],
    weights: np.ndarray,
    confidence: float,
) -> dict[str, Any] | None:
    """Delta of two methods' AUROC from (N, K) counts under the same (B, N) resample weights; None if undefined."""
    treatment_full, baseline_full = exact
    if treatment_full is None or baseline_full is None:
        return None
    treatment_reps = auroc_from_counts(weights @ treatment[0], weights @ treatment[1])
    baseline_reps = auroc_from_counts(weights @ baseline[0], weights @ baseline[1])
    deltas = treatment_reps - baseline_reps
    kept = deltas[~np.isnan(deltas)]
    delta = float(treatment_full - baseline_full)
    interval = percentile_interval(deltas, confidence)
    ones = np.ones((1, weights.shape[1]))
    return {
        "draem": float(treatment_full),
        "baseline": float(baseline_full),
        "delta": delta,
        "delta_ci": interval,
        "draem_ci": percentile_interval(treatment_reps, confidence),
        "baseline_ci": percentile_interval(baseline_reps, confidence),
        "share_delta_positive": float(np.mean(kept > 0)),
        "resamples_with_both_classes": int(kept.size),
        "full_set_binned": {
            "draem": float(auroc_from_counts(ones @ treatment[0], ones @ treatment[1])[0]),
            "baseline": float(auroc_from_counts(ones @ baseline[0], ones @ baseline[1])[0]),
        },
        "verdict": verdict(delta, interval, confidence),
    }


def compare(
    draem: dict[str, Any],
    baseline: dict[str, Any],
    images: dict[str, np.ndarray],
    resamples: int,
    rng: np.random.Generator,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """The comparison block of metrics.json: image and pixel AUROC deltas, paired over test images.

    ``draem`` and ``baseline`` are the two metric dicts (exact AUROCs); ``images`` holds
    ``anomalous`` (N,) bool, ``has_truth`` (N,) bool, ``masks`` (N, S, S) and both methods'
    ``draem_scores``/``baseline_scores`` (N,) and ``draem_maps``/``baseline_maps`` (N, S, S).
    """
    anomalous, has_truth = images["anomalous"], images["has_truth"]
    weights = item_weights(len(anomalous), resamples, rng)  # one draw for both methods and both levels
    result: dict[str, Any] = {
        "treatment": "draem",
        "baseline": baseline.get("method", "statistical"),
        "delta": "draem - baseline; larger is better",
        "resamples": resamples,
        "confidence": confidence,
        "training_seeds": 1,
        "ci_covers": CI_COVERS,
        "pixel_bins": PIXEL_BINS,
    }
    result["image_auroc"] = paired_delta(
        image_counts(images["draem_scores"], anomalous),
        image_counts(images["baseline_scores"], anomalous),
        (draem.get("image_auroc"), baseline.get("image_auroc")),
        weights,
        confidence,
    )
    chosen = has_truth.nonzero()[0]
    pixel = None
    if draem.get("pixel_auroc") is not None and baseline.get("pixel_auroc") is not None:
        masks = images["masks"][chosen]
        pixel = paired_delta(
            pixel_counts(images["draem_maps"][chosen], masks),
            pixel_counts(images["baseline_maps"][chosen], masks),
            (draem["pixel_auroc"], baseline["pixel_auroc"]),
            weights[:, chosen],
            confidence,
        )
    result["pixel_auroc"] = pixel
    return result
