"""Anomaly-detection metrics against hand-computed cases and slow, obviously correct reference versions."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from fewgen_draem import metrics
from fewgen_draem.metrics import (
    anomaly_metrics,
    aupro,
    average_precision,
    best_f1,
    roc_auc,
    roc_curve,
    roc_points,
)
from scipy import ndimage

SKLEARN_EXAMPLE = (np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))  # the example in sklearn's docs


def tied_data(seed: int, count: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Scores on a coarse grid, so many ties cross the two classes; anomalous samples score a little higher."""
    rng = np.random.default_rng(seed)
    labels = rng.random(count) < 0.3
    scores = np.round(rng.random(count) + 0.3 * labels, 1)
    return scores, labels


def pairwise_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney by brute force: over all (anomalous, normal) pairs, a win counts 1 and a tie 1/2."""
    positives, negatives = scores[labels][:, None], scores[~labels][None, :]
    wins, ties = (positives > negatives).sum(), (positives == negatives).sum()
    return float((wins + 0.5 * ties) / (positives.size * negatives.size))


def threshold_loop_ap(scores: np.ndarray, labels: np.ndarray) -> float:
    """Sum over distinct thresholds, highest first, of (recall gained) * precision."""
    total, previous_recall = 0.0, 0.0
    for threshold in np.unique(scores)[::-1]:
        flagged = scores >= threshold
        recall = (flagged & labels).sum() / labels.sum()
        total += (recall - previous_recall) * (flagged & labels).sum() / flagged.sum()
        previous_recall = recall
    return total


def threshold_loop_f1(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Best F1 over every distinct threshold; on a tie the first found going down, i.e. the highest threshold."""
    best = (-1.0, float("nan"))
    for threshold in np.unique(scores)[::-1]:
        flagged = scores >= threshold
        true_positives = (flagged & labels).sum()
        f1 = 2 * true_positives / (flagged.sum() + labels.sum())
        if f1 > best[0]:
            best = (f1, float(threshold))
    return best


def threshold_loop_aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float) -> float:
    """The MVTec recipe spelt out: a (FPR, PRO) point per distinct threshold, trapezoids, a cut at fpr_limit."""
    regions = []
    for image, mask in enumerate(masks):
        labelled, found = ndimage.label(mask, structure=np.ones((3, 3)))
        regions += [(image, labelled == region) for region in range(1, found + 1)]
    fpr, pro = [0.0], [0.0]
    for threshold in np.unique(maps)[::-1]:
        flagged = maps >= threshold
        fpr.append(flagged[~masks].mean())
        pro.append(np.mean([flagged[image][region].mean() for image, region in regions]))
    fpr, pro = np.array(fpr), np.array(pro)
    beyond = np.flatnonzero(fpr > fpr_limit)
    if len(beyond):
        end = beyond[0]
        at_limit = pro[end - 1] + (fpr_limit - fpr[end - 1]) / (fpr[end] - fpr[end - 1]) * (pro[end] - pro[end - 1])
        fpr, pro = np.append(fpr[:end], fpr_limit), np.append(pro[:end], at_limit)
    return float(np.trapezoid(pro, fpr) / fpr_limit)


def blob_data(seed: int, count: int = 3, size: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """Masks of several irregular regions (thresholded smoothed noise) and maps that partly follow them."""
    rng = np.random.default_rng(seed)
    masks = ndimage.gaussian_filter(rng.random((count, size, size)), (0, 1.2, 1.2)) > 0.55
    maps = np.round(0.6 * rng.random(masks.shape) + 0.5 * masks * rng.random(masks.shape), 1)
    return maps, masks


# ROC, AP and F1


def test_the_sklearn_example() -> None:
    assert roc_auc(*SKLEARN_EXAMPLE) == pytest.approx(0.75)
    assert average_precision(*SKLEARN_EXAMPLE) == pytest.approx(5 / 6)
    fpr, tpr, thresholds = roc_curve(*SKLEARN_EXAMPLE)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(thresholds, [np.inf, 0.8, 0.4, 0.35, 0.1])


@pytest.mark.parametrize("seed", range(4))
def test_auroc_is_the_pairwise_mann_whitney_count(seed: int) -> None:
    scores, labels = tied_data(seed)
    assert roc_auc(scores, labels) == pytest.approx(pairwise_auc(scores, labels), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_auroc_is_the_trapezoidal_area_under_the_curve(seed: int) -> None:
    scores, labels = tied_data(seed)
    fpr, tpr, thresholds = roc_curve(scores, labels)
    assert roc_auc(scores, labels) == pytest.approx(np.trapezoid(tpr, fpr), abs=1e-12)
    assert len(thresholds) == len(np.unique(scores)) + 1  # one step per distinct score
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0)


def test_tied_scores_are_one_step_of_the_curve() -> None:
    fpr, tpr, thresholds = roc_curve([0.5, 0.5, 0.2], [1, 0, 0])
    np.testing.assert_allclose(fpr, [0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 1, 1])
    np.testing.assert_allclose(thresholds, [np.inf, 0.5, 0.2])
    assert roc_auc([0.5, 0.5, 0.2], [1, 0, 0]) == pytest.approx(0.75)


@pytest.mark.parametrize("seed", range(4))
def test_average_precision_matches_a_threshold_loop(seed: int) -> None:
    scores, labels = tied_data(seed)
    assert average_precision(scores, labels) == pytest.approx(threshold_loop_ap(scores, labels), abs=1e-12)


def test_best_f1_by_hand() -> None:
    # Thresholds 0.9, 0.8, 0.7, 0.6, 0.2 give F1 2/4, 2/5, 4/6, 6/7, 6/8.
    assert best_f1([0.9, 0.8, 0.7, 0.6, 0.2], [1, 0, 1, 1, 0]) == (pytest.approx(6 / 7), 0.6)
    assert best_f1(*SKLEARN_EXAMPLE) == (pytest.approx(0.8), 0.35)


@pytest.mark.parametrize("seed", range(4))
def test_best_f1_matches_a_threshold_loop(seed: int) -> None:
    scores, labels = tied_data(seed)
    f1, threshold = best_f1(scores, labels)
    expected_f1, expected_threshold = threshold_loop_f1(scores, labels)
    assert f1 == pytest.approx(expected_f1, abs=1e-12)
    assert threshold == expected_threshold


def test_perfect_and_inverted_rankings() -> None:
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.arange(5.0)
    assert roc_auc(scores, labels) == 1.0
    assert average_precision(scores, labels) == 1.0
    assert best_f1(scores, labels) == (1.0, 3.0)
    assert roc_auc(-scores, labels) == 0.0
    assert roc_auc(np.zeros(5), labels) == 0.5


def test_metrics_across_chunks_match_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    # Chunks of 7 split many runs of tied scores, the case where the best F1's threshold could slip.
    scores, labels = tied_data(7, count=2000)
    maps, masks = blob_data(7)

    def everything() -> tuple[float, ...]:
        return (
            roc_auc(scores, labels),
            average_precision(scores, labels),
            *best_f1(scores, labels),
            aupro(maps, masks),
        )

    whole = everything()
    monkeypatch.setattr(metrics, "CHUNK", 7)
    assert everything() == pytest.approx(whole, abs=1e-12)


def test_float32_integer_and_bool_inputs() -> None:
    scores, labels = tied_data(1)
    expected = roc_auc(scores, labels)
    assert roc_auc(scores.astype(np.float32), labels) == pytest.approx(expected, abs=1e-12)
    assert roc_auc((scores * 10).round().astype(np.int64), labels.astype(int)) == pytest.approx(expected, abs=1e-12)
    assert roc_auc(scores.reshape(10, 30), labels.reshape(10, 30)) == pytest.approx(expected, abs=1e-12)
    assert roc_curve(scores.astype(np.float32), labels)[2].dtype == np.float32
    assert roc_curve([1, 2, 3], [0, 1, 1])[2][0] == np.inf  # integer scores get float thresholds


def test_one_class_and_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"both anomalous and normal.*got 0 anomalous and 3 normal"):
        roc_auc([0.1, 0.2, 0.3], [0, 0, 0])
    with pytest.raises(ValueError, match="got 2 anomalous and 0 normal"):
        average_precision([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match="labels have shape"):
        roc_auc([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="bool or 0/1"):
        roc_auc([0.1, 0.2, 0.3], [0, 1, 2])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0.1, np.nan, 0.3], [0, 1, 1])


def test_roc_points_stay_on_the_curve_and_within_budget() -> None:
    scores, labels = tied_data(2, count=5000)
    scores = scores + np.random.default_rng(2).random(len(scores)) * 0.01  # mostly distinct scores
    fpr, tpr, _ = roc_curve(scores, labels)
    curve = set(zip(fpr.tolist(), tpr.tolist(), strict=True))
    points = roc_points(scores, labels, max_points=50)
    assert 40 <= len(points) <= 50
    assert points[0] == [0.0, 0.0] and points[-1] == [1.0, 1.0]
    assert all(tuple(point) in curve for point in points)
    steps = np.diff(np.array(points), axis=0)
    assert np.all(steps >= 0) and steps.max() < 0.06  # no long straight chord across the plot
    json.dumps(points, allow_nan=False)


def test_roc_points_of_a_small_input_is_the_whole_curve() -> None:
    fpr, tpr, _ = roc_curve(*SKLEARN_EXAMPLE)
    assert roc_points(*SKLEARN_EXAMPLE) == [[f, t] for f, t in zip(fpr.tolist(), tpr.tolist(), strict=True)]
    with pytest.raises(ValueError, match="max_points"):
        roc_points(*SKLEARN_EXAMPLE, max_points=2)


# AUPRO


def two_regions() -> tuple[np.ndarray, np.ndarray]:
    """One row of ten pixels: region A (2 pixels), a gap, region B (4 pixels), normal pixels at both gaps."""
    masks = np.array([[[1, 1, 0, 0, 1, 1, 1, 1, 0, 0]]], dtype=bool)
    maps = np.array([[[0.9, 0.5, 0.7, 0.4, 0.8, 0.8, 0.3, 0.3, 0.2, 0.1]]])
    return maps, masks


def test_aupro_by_hand_with_two_regions_of_different_size() -> None:
    # Going down the thresholds, as (FPR, PRO): 0.9 -> (0, 1/4), 0.8 -> (0, 1/2), 0.7 -> (1/4, 1/2),
    # 0.5 -> (1/4, 3/4), 0.4 -> (1/2, 3/4), 0.3 -> (1/2, 1), then FPR runs to 1 at PRO 1.
    # Up to FPR 0.3: 0.25 * 1/2 + 0.05 * 3/4 = 0.1625, normalised 0.1625 / 0.3 = 13/24.
    maps, masks = two_regions()
    assert aupro(maps, masks) == pytest.approx(13 / 24)
    # Over the whole range: 0.25 * 1/2 + 0.25 * 3/4 + 0.5 * 1 = 0.8125.
    assert aupro(maps, masks, fpr_limit=1.0) == pytest.approx(0.8125)
    # Pixel-level AUROC weighs pixels, not regions, and takes maps and masks just as well.
    assert roc_auc(maps, masks) == pytest.approx(pairwise_auc(maps.ravel(), masks.ravel()))


def test_aupro_interpolates_inside_a_tied_step_at_the_limit() -> None:
    # One anomalous pixel at 0.5 and normal pixels 0.6, 0.5, 0.5, 0.4: the curve is (0, 0), (1/4, 0),
    # then one straight step to (3/4, 1) as 0.5 flags the pixel and two normal ones together, then (1, 1).
    maps = np.array([[[0.5, 0.6, 0.5, 0.5, 0.4]]])
    masks = np.array([[[True, False, False, False, False]]])
    assert aupro(maps, masks, fpr_limit=0.25) == 0.0
    assert aupro(maps, masks, fpr_limit=0.5) == pytest.approx(0.25**2 / 2 / 0.5 / 0.5)  # PRO reaches 1/2 at 0.5
    assert aupro(maps, masks, fpr_limit=1.0) == pytest.approx(0.25 + 0.25)


def test_aupro_of_perfect_inverted_and_constant_maps() -> None:
    maps, masks = blob_data(0)
    perfect = masks + 0.1 * maps
    assert aupro(perfect, masks) == pytest.approx(1.0)
    assert aupro(1 - perfect, masks) == 0.0  # every region only starts to show once all normal pixels are flagged
    # A constant map flags everything at once: one straight step from (0, 0) to (1, 1).
    assert aupro(np.zeros(masks.shape), masks) == pytest.approx(0.15)
    assert aupro(np.zeros(masks.shape), masks, fpr_limit=1.0) == pytest.approx(0.5)


def test_regions_are_eight_connected() -> None:
    # Pixels (0, 0), (0, 1) and (1, 2) touch only at a corner: one region of three, not regions of two and one.
    masks = np.array([[[1, 1, 0], [0, 0, 1]]], dtype=bool)
    maps = np.array([[[0.1, 0.1, 0.5], [0.5, 0.5, 0.9]]])
    # At 0.9 one pixel of three is flagged (PRO 1/3) and stays so until every normal pixel is flagged.
    assert aupro(maps, masks, fpr_limit=1.0) == pytest.approx(1 / 3)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("fpr_limit", [0.05, 0.3, 1.0])
def test_aupro_matches_the_threshold_loop(seed: int, fpr_limit: float) -> None:
    maps, masks = blob_data(seed)
    assert aupro(maps, masks, fpr_limit) == pytest.approx(threshold_loop_aupro(maps, masks, fpr_limit), abs=1e-12)
    maps = maps + np.random.default_rng(seed).random(maps.shape) * 1e-3  # the same without ties
    assert aupro(maps, masks, fpr_limit) == pytest.approx(threshold_loop_aupro(maps, masks, fpr_limit), abs=1e-12)


def test_aupro_is_nan_without_regions_or_without_normal_pixels() -> None:
    maps = np.random.default_rng(0).random((2, 4, 4))
    assert np.isnan(aupro(maps, np.zeros(maps.shape, dtype=bool)))
    assert np.isnan(aupro(maps, np.ones(maps.shape, dtype=bool)))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        aupro(maps[0], np.zeros((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="masks have shape"):
        aupro(maps, np.zeros((2, 4, 5), dtype=bool))
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro(maps, maps > 0.5, fpr_limit=0)


# anomaly_metrics


def small_dataset() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(3)
    labels = ["good", "scratch", "good", "dent", "scratch", "good", "dent", "dent"]
    masks = np.zeros((len(labels), 12, 12), dtype=bool)
    for index, label in enumerate(labels):
        if label != "good":
            row, col = rng.integers(0, 8, 2)
            masks[index, row : row + 3, col : col + 1 + index % 3] = True
    maps = (0.7 * rng.random(masks.shape) + 0.4 * masks).astype(np.float32)
    scores = maps.max(axis=(1, 2))
    return scores, maps, masks, labels


IMAGE_KEYS = {"images", "anomalous", "image_auroc", "image_ap", "image_f1", "image_f1_threshold"}
PIXEL_KEYS = {"pixel_auroc", "pixel_ap", "pixel_f1", "aupro"}


def test_anomaly_metrics_overall_and_per_type() -> None:
    scores, maps, masks, labels = small_dataset()
    report = anomaly_metrics(scores, maps, masks, labels)
    assert set(report) == IMAGE_KEYS | PIXEL_KEYS | {"per_type"}
    assert (report["images"], report["anomalous"]) == (8, 5)
    assert list(report["per_type"]) == ["dent", "scratch"]
    anomalous = np.array([label != "good" for label in labels])
    assert report["image_auroc"] == roc_auc(scores, anomalous)
    assert report["pixel_auroc"] == pytest.approx(roc_auc(maps, masks), abs=1e-12)
    assert report["pixel_ap"] == pytest.approx(average_precision(maps, masks), abs=1e-12)
    assert report["pixel_f1"] == pytest.approx(best_f1(maps, masks)[0], abs=1e-12)
    assert report["aupro"] == pytest.approx(aupro(maps, masks), abs=1e-12)
    assert (report["image_f1"], report["image_f1_threshold"]) == pytest.approx(best_f1(scores, anomalous))
    for kind, entry in report["per_type"].items():
        chosen = np.array([label in (kind, "good") for label in labels])
        assert set(entry) == IMAGE_KEYS | PIXEL_KEYS
        assert (entry["images"], entry["anomalous"]) == ((6, 3) if kind == "dent" else (5, 2))
        assert entry["image_ap"] == pytest.approx(average_precision(scores[chosen], anomalous[chosen]))
        assert entry["pixel_auroc"] == pytest.approx(roc_auc(maps[chosen], masks[chosen]), abs=1e-12)
        assert entry["pixel_ap"] == pytest.approx(average_precision(maps[chosen], masks[chosen]), abs=1e-12)
        assert entry["aupro"] == pytest.approx(aupro(maps[chosen], masks[chosen]), abs=1e-12)
    json.dumps(report, allow_nan=False)


def test_undefined_metrics_are_none() -> None:
    scores, maps, masks, labels = small_dataset()
    good = [index for index, label in enumerate(labels) if label == "good"]
    report = anomaly_metrics(scores[good], maps[good], masks[good], ["good"] * len(good))
    assert report["anomalous"] == 0 and report["per_type"] == {}
    assert all(report[key] is None for key in (IMAGE_KEYS | PIXEL_KEYS) - {"images", "anomalous"})
    json.dumps(report, allow_nan=False)

    # Without good images no image-level metric is defined, but the pixel level still has normal pixels.
    bad = [index for index, label in enumerate(labels) if label != "good"]
    report = anomaly_metrics(scores[bad], maps[bad], masks[bad], [labels[index] for index in bad])
    assert report["image_auroc"] is None and report["per_type"]["dent"]["image_f1_threshold"] is None
    assert isinstance(report["pixel_auroc"], float) and isinstance(report["per_type"]["dent"]["aupro"], float)
    json.dumps(report, allow_nan=False)

    # An anomalous image without a marked pixel adds normal pixels only.
    empty = masks.copy()
    empty[[index for index, label in enumerate(labels) if label == "dent"]] = False
    report = anomaly_metrics(scores, maps, empty, labels)
    assert report["per_type"]["dent"]["pixel_auroc"] is None and report["per_type"]["dent"]["aupro"] is None
    assert report["per_type"]["dent"]["image_auroc"] is not None and report["pixel_auroc"] is not None
    json.dumps(report, allow_nan=False)


def test_image_metrics_only() -> None:
    scores, _, _, labels = small_dataset()
    report = anomaly_metrics(scores.tolist(), None, None, labels, good_label="good")
    assert set(report) == IMAGE_KEYS | {"per_type"}
    assert set(report["per_type"]["scratch"]) == IMAGE_KEYS


def test_anomaly_metrics_shape_errors() -> None:
    scores, maps, masks, labels = small_dataset()
    with pytest.raises(ValueError, match="7 maps for 8 scores"):
        anomaly_metrics(scores, maps[:7], masks[:7], labels)
    with pytest.raises(ValueError, match="7 labels for 8 scores"):
        anomaly_metrics(scores, maps, masks, labels[:7])
    with pytest.raises(ValueError, match="masks have shape"):
        anomaly_metrics(scores, maps, masks[:, :10], labels)
    with pytest.raises(ValueError, match=r"maps must be \(N, H, W\)"):
        anomaly_metrics(scores, maps[..., None], masks[..., None], labels)
    with pytest.raises(ValueError, match="both maps and masks"):
        anomaly_metrics(scores, maps, None, labels)
    with pytest.raises(ValueError, match="one score per image"):
        anomaly_metrics(scores[:, None], None, None, labels)
    marked = masks.copy()
    marked[2, 0, 0] = True
    with pytest.raises(ValueError, match="image 2 is labelled 'good'"):
        anomaly_metrics(scores, maps, marked, labels)


def test_four_million_pixels() -> None:
    # 64 maps of 256 x 256 in float32: the sort-based sweep handles this in well under a second, and needs
    # about one float32 copy of the maps; an upcast to float64 alone would take twice the maps' size.
    rng = np.random.default_rng(0)
    maps = rng.random((64, 256, 256), dtype=np.float32)
    masks = np.zeros(maps.shape, dtype=bool)
    masks[32:, 100:140, 90:150] = True
    maps[masks] += 0.2
    tracemalloc.start()
    try:
        auroc = roc_auc(maps, masks)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 0.6 < auroc < 0.8
    assert peak < 1.6 * maps.nbytes
    report = anomaly_metrics(maps.max(axis=(1, 2)), maps, masks, ["good"] * 32 + ["cut"] * 32)
    assert report["pixel_auroc"] == pytest.approx(auroc, abs=1e-12)
    assert report["per_type"]["cut"]["aupro"] == pytest.approx(report["aupro"])
    assert 0 < report["aupro"] < 1
