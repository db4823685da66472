"""The DRAEM-baseline comparison: AUROC from bin counts, the paired bootstrap and its verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from fewgen_draem import comparison
from fewgen_draem.comparison import PIXEL_BINS, auroc_from_counts, compare, image_counts, pixel_counts
from fewgen_draem.metrics import anomaly_metrics, roc_auc

from fewgen.verdicts import HELPS, HURTS, NO_EFFECT


def test_auroc_from_image_counts_is_exact_with_ties() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, 40).astype(float)  # many ties
    anomalous = rng.random(40) < 0.4
    positive, negative = image_counts(scores, anomalous)
    assert auroc_from_counts(positive.sum(0), negative.sum(0)) == pytest.approx(roc_auc(scores, anomalous), abs=1e-12)


def test_counts_weighted_by_a_resample_equal_the_auroc_of_the_copied_items() -> None:
    rng = np.random.default_rng(1)
    scores, anomalous = rng.normal(size=30), rng.random(30) < 0.5
    draw = rng.integers(0, 30, 30)
    weights = np.bincount(draw, minlength=30).astype(float)
    positive, negative = image_counts(scores, anomalous)
    expected = roc_auc(scores[draw], anomalous[draw])
    assert auroc_from_counts(weights @ positive, weights @ negative) == pytest.approx(expected, abs=1e-12)


def test_binned_pixel_auroc_is_within_its_bound_of_the_exact_one() -> None:
    rng = np.random.default_rng(2)
    masks = np.zeros((6, 40, 40), dtype=bool)
    masks[3:, 10:20, 10:20] = True
    maps = rng.normal(size=masks.shape).astype(np.float32) + 1.5 * masks
    positive, negative = pixel_counts(maps, masks, bins=64)
    binned = auroc_from_counts(positive.sum(0), negative.sum(0))
    assert abs(binned - roc_auc(maps, masks)) <= 1 / (2 * 64) + 1e-3
    assert positive.sum() == masks.sum() and negative.sum() == (~masks).sum()


def test_one_class_gives_nan_not_an_error() -> None:
    assert np.isnan(auroc_from_counts(np.array([0.0, 0.0]), np.array([1.0, 2.0])))


def scenario(seed: int = 0, count: int = 24) -> dict[str, np.ndarray]:
    """Test images: the first half good, the second with a square; a good detector and a coin-flipping one."""
    rng = np.random.default_rng(seed)
    anomalous = np.arange(count) >= count // 2
    masks = np.zeros((count, 16, 16), dtype=bool)
    masks[anomalous, 4:9, 4:9] = True
    good_maps = (rng.random(masks.shape) * 0.5 + 0.5 * masks).astype(np.float32)
    noise_maps = rng.random(masks.shape).astype(np.float32)
    return {
        "anomalous": anomalous,
        "has_truth": np.ones(count, dtype=bool),
        "masks": masks,
        "good_maps": good_maps,
        "noise_maps": noise_maps,
        "good_scores": good_maps.max(axis=(1, 2)) + 0.5 * anomalous,
        "noise_scores": rng.random(count),
    }


def run_compare(data: dict[str, np.ndarray], draem: str, baseline: str, seed: int = 0) -> dict:
    labels = ["defect" if flag else "good" for flag in data["anomalous"]]
    figures = {
        name: anomaly_metrics(data[f"{name}_scores"], data[f"{name}_maps"], data["masks"], labels)
        for name in {draem, baseline}
    }
    images = {
        **{key: data[key] for key in ("anomalous", "has_truth", "masks")},
        "draem_scores": data[f"{draem}_scores"],
        "baseline_scores": data[f"{baseline}_scores"],
        "draem_maps": data[f"{draem}_maps"],
        "baseline_maps": data[f"{baseline}_maps"],
    }
    return compare(figures[draem], figures[baseline], images, 400, np.random.default_rng(seed))


def test_keys_verdicts_and_direction() -> None:
    data = scenario()
    better = run_compare(data, "good", "noise")
    for key in ("image_auroc", "pixel_auroc"):
        entry = better[key]
        assert set(entry) >= {"draem", "baseline", "delta", "delta_ci", "verdict", "share_delta_positive"}
        assert entry["delta"] == pytest.approx(entry["draem"] - entry["baseline"])
        assert entry["verdict"]["verdict"] == HELPS, entry
        assert entry["verdict"]["effect"] == entry["delta"] and entry["verdict"]["ci"] == entry["delta_ci"]
    assert better["training_seeds"] == 1 and "test-image sampling only" in better["ci_covers"]
    assert better["resamples"] == 400 and better["confidence"] == 0.95
    worse = run_compare(data, "noise", "good")
    assert worse["image_auroc"]["verdict"]["verdict"] == HURTS
    assert worse["pixel_auroc"]["verdict"]["verdict"] == HURTS


def test_the_bootstrap_is_paired_the_same_draw_for_both_methods() -> None:
    # The same scores for both: a paired bootstrap gives a delta of exactly 0 in every resample,
    # two independent draws would scatter it around 0.
    data = scenario(seed=3)
    same = run_compare(data, "noise", "noise")
    for key in ("image_auroc", "pixel_auroc"):
        assert same[key]["delta_ci"] == [0.0, 0.0]
        assert same[key]["verdict"]["verdict"] == NO_EFFECT
        assert same[key]["draem_ci"] == same[key]["baseline_ci"]
        assert same[key]["draem_ci"][0] < same[key]["draem_ci"][1]  # the figures themselves do move


def test_pixel_resampling_draws_whole_images_with_the_image_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    data = scenario(seed=4)
    data["has_truth"][[0, 13]] = False  # two images without pixel truth: image level only
    seen: list[np.ndarray] = []
    original = comparison.paired_delta

    def spy(treatment, baseline, exact, weights, confidence):  # type: ignore[no-untyped-def]
        seen.append(weights)
        return original(treatment, baseline, exact, weights, confidence)

    monkeypatch.setattr(comparison, "paired_delta", spy)
    run_compare(data, "good", "noise")
    image_weights, pixel_weights = seen
    assert image_weights.shape == (400, 24) and pixel_weights.shape == (400, 22)
    np.testing.assert_array_equal(pixel_weights, image_weights[:, data["has_truth"]])


def test_undefined_metrics_give_no_comparison() -> None:
    data = scenario()
    data["anomalous"][:] = False
    data["masks"][:] = False
    result = run_compare(data, "good", "noise")
    assert result["image_auroc"] is None and result["pixel_auroc"] is None
    assert result["pixel_bins"] == PIXEL_BINS
