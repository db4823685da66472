"""Verdicts on comparisons, and the two-level bootstrap that gives their intervals.

Every evaluator that compares a treatment with a baseline (a detector trained with and
without synthetic images, DRAEM against a statistical baseline, MAML against fine-tuning)
ends in the same three-way reading, so that a reviewer never has to interpret a CI
by eye and no evaluator rounds "inside the noise" up to a gain:

- ``helps``: the whole confidence interval of (treatment - baseline) lies above 0;
- ``hurts``: it lies below 0;
- ``no measurable effect``: it contains 0 (an end exactly at 0 counts as containing it).

Two sources of noise decide whether a difference is real: *which test items* were drawn
(a small test set is a sample of the population) and *which training seed* was drawn
(a detector trained twice on the same data differs). A bootstrap over test items alone
treats one training run as if it were the model; the demo's night detector gave a delta
of +0.001 in one run and -0.038 in another. The two-level (hierarchical) bootstrap
resamples both: in each replicate the test items are drawn with replacement once
(the same draw for every model, so the comparison stays paired) and, independently for
each model, its training seeds are drawn with replacement; the model's figure is the
mean over the drawn seeds of its metric on the drawn items. This is the resampling of
hierarchical data of Davison & Hinkley, *Bootstrap Methods and their Application*
(Cambridge, 1997), section 3.8, also described for two-level data by Saravanan et al.,
"Application of the hierarchical bootstrap to multi-level data in neuroscience"
(Neurons, Behavior, Data analysis and Theory, 2020). With one seed it reduces to the
paired bootstrap over test items. With few seeds (3 is the default) the seed level is
coarse and tends to make intervals narrower than the truth rather than wider, so more
seeds remain the way to trust a small effect.

numpy is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

HELPS = "helps"
HURTS = "hurts"
NO_EFFECT = "no measurable effect"
VERDICTS = (HELPS, HURTS, NO_EFFECT)


def verdict(delta: float, ci: list[float] | tuple[float, float], confidence: float = 0.95) -> dict[str, Any]:
    """The reading of one comparison: ``{"verdict", "effect", "ci", "confidence"}``.

    ``delta`` is treatment minus baseline on the full test set, ``ci`` its [low, high]
    interval at ``confidence``. Larger must mean better; pass the negated figures for a
    lower-is-better metric.
    """
    low, high = float(ci[0]), float(ci[1])
    if low > high:
        raise ValueError(f"confidence interval [{low}, {high}] has its ends swapped")
    if low > 0.0:
        reading = HELPS
    elif high < 0.0:
        reading = HURTS
    else:
        reading = NO_EFFECT
    return {"verdict": reading, "effect": float(delta), "ci": [low, high], "confidence": float(confidence)}


def describe(entry: dict[str, Any], digits: int = 3) -> str:
    """One line for a report: ``helps: +0.031 [+0.004, +0.060] (95 % CI)``."""
    low, high = entry["ci"]
    level = round(100 * entry["confidence"])
    return f"{entry['verdict']}: {entry['effect']:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}] ({level} % CI)"


def item_weights(num_items: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, num_items) counts: how often each test item is drawn in each resample.

    A resample is a multiset of items; metrics that can weight items evaluate all resamples
    at once from these counts instead of materialising copies.
    """
    import numpy as np

    if num_items < 1 or resamples < 1:
        raise ValueError("need at least one item and one resample")
    draws = rng.integers(0, num_items, size=(resamples, num_items))
    offsets = num_items * np.arange(resamples)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=resamples * num_items)
    return counts.reshape(resamples, num_items).astype(np.float64)


def resample_seeds(per_seed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The seed level of the two-level bootstrap: (S, B) per-seed resampled figures -> (B,).

    ``per_seed[s, b]`` is the figure of training seed ``s`` on item resample ``b``. For each
    ``b``, S seeds are drawn with replacement and their figures averaged (NaN where any
    drawn figure is NaN). With one seed this is ``per_seed[0]``.
    """
    import numpy as np

    values = np.asarray(per_seed, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] < 1:
        raise ValueError(f"per_seed must have shape (seeds, resamples); got {values.shape}")
    seeds, resamples = values.shape
    if seeds == 1:
        return values[0].copy()
    picks = rng.integers(0, seeds, size=(seeds, resamples))
    return values[picks, np.arange(resamples)[None, :]].mean(axis=0)


def percentile_interval(values: np.ndarray, confidence: float) -> list[float]:
    """The percentile interval of bootstrap replicates, NaNs (replicates without a figure) left out."""
    import numpy as np

    kept = np.asarray(values, dtype=np.float64)
    kept = kept[~np.isnan(kept)]
    if kept.size == 0:
        raise ValueError("no bootstrap replicate has a figure")
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(kept, [tail, 100.0 - tail])
    return [float(low), float(high)]


def two_level_delta(
    baseline: np.ndarray,
    treatment: np.ndarray,
    baseline_full: np.ndarray,
    treatment_full: np.ndarray,
    rng: np.random.Generator,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Delta (treatment - baseline) with its two-level bootstrap interval and verdict.

    ``baseline`` and ``treatment`` are (S, B) per-seed figures on the *same* B item
    resamples (paired over items); ``*_full`` are the (S,) per-seed figures on the full
    test set, whose seed means are the point estimates. The seed draws of the two models
    are independent: different training data break any pairing between their seeds.
    """
    import numpy as np

    base_full, treat_full = np.asarray(baseline_full, float), np.asarray(treatment_full, float)
    base = resample_seeds(baseline, rng)
    treat = resample_seeds(treatment, rng)
    deltas = treat - base
    kept = ~np.isnan(deltas)
    point = float(treat_full.mean() - base_full.mean())
    interval = percentile_interval(deltas, confidence)
    return {
        "baseline": float(base_full.mean()),
        "treatment": float(treat_full.mean()),
        "delta": point,
        "baseline_ci": percentile_interval(base, confidence),
        "treatment_ci": percentile_interval(treat, confidence),
        "delta_ci": interval,
        "share_delta_positive": float(np.mean(deltas[kept] > 0)),
        "baseline_per_seed": [float(v) for v in base_full],
        "treatment_per_seed": [float(v) for v in treat_full],
        "verdict": verdict(point, interval, confidence),
    }


def mean_ci(values: Any, confidence: float = 0.95) -> dict[str, Any]:
    """Mean and normal-approximation interval (mean +- z * standard error) of independent values.

    For many independent episodes or trials (few-shot accuracy over 600 test episodes is
    the convention of Finn et al. and Snell et al.); for a handful of values prefer a
    bootstrap.
    """
    from statistics import NormalDist

    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError("no values")
    mean = float(array.mean())
    half = 0.0
    if array.size > 1:
        z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
        half = float(z * array.std(ddof=1) / np.sqrt(array.size))
    return {"mean": mean, "ci": [mean - half, mean + half], "n": int(array.size), "confidence": float(confidence)}


def paired_difference(treatment: Any, baseline: Any, confidence: float = 0.95) -> dict[str, Any]:
    """Mean paired difference (treatment - baseline) over the same items, its interval and verdict."""
    import numpy as np

    a, b = np.asarray(treatment, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values must have the same shape; got {a.shape} and {b.shape}")
    summary = mean_ci(a - b, confidence)
    return {**summary, "verdict": verdict(summary["mean"], summary["ci"], confidence)}
