"""Tests of fewgen_yolo.metrics: hand-computed AP, agreement with pycocotools' COCOeval, and the paired bootstrap."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

try:
    from fewgen_yolo import metrics
except ImportError:  # the plugin is not installed yet: import it from its source folder
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from fewgen_yolo import metrics

GroundTruth, Detections = metrics.GroundTruth, metrics.Detections

# One class, two ground truths, three detections ranked TP, FP, TP:
#   after det 1: precision 1,   recall 0.5
#   after det 2: precision 1/2, recall 0.5
#   after det 3: precision 2/3, recall 1.0
# The monotone envelope is (1, 2/3, 2/3). The 51 recall points 0.00..0.50 first reach recall 0.5 at det 1 (precision
# 1), the 50 points 0.51..1.00 first reach recall 1.0 at det 3 (precision 2/3), so AP = (51 * 1 + 50 * 2/3) / 101.
TP_FP_TP_AP = (51 * 1.0 + 50 * 2.0 / 3.0) / 101
SQUARE_A = [0.0, 0.0, 10.0, 10.0]
SQUARE_B = [20.0, 20.0, 30.0, 30.0]
FAR_AWAY = [100.0, 100.0, 110.0, 110.0]


def ground_truth(boxes: list[list[float]], classes: list[int], image_id: str = "img") -> GroundTruth:
    return GroundTruth(image_id, np.array(boxes, dtype=float), np.array(classes))


def detections(boxes: list[list[float]], scores: list[float], classes: list[int]) -> Detections:
    return Detections(np.array(boxes, dtype=float), np.array(scores), np.array(classes))


def evaluate(pairs: list[tuple[GroundTruth, Detections]], num_classes: int) -> metrics.APResult:
    return metrics.average_precision([metrics.match_image(gt, det) for gt, det in pairs], num_classes)


# --- hand-made cases ------------------------------------------------------------------------------------------------


def test_tp_fp_tp_gives_the_hand_computed_101_point_ap_and_curve() -> None:
    gt = ground_truth([SQUARE_A, SQUARE_B], [0, 0])
    det = detections([SQUARE_A, FAR_AWAY, SQUARE_B], [0.9, 0.8, 0.7], [0, 0, 0])
    result = evaluate([(gt, det)], num_classes=1)
    assert result.ap50[0] == pytest.approx(TP_FP_TP_AP, abs=1e-12)
    assert result.map50 == pytest.approx(TP_FP_TP_AP, abs=1e-12)
    expected_curve = np.r_[np.ones(51), np.full(50, 2.0 / 3.0)]
    np.testing.assert_allclose(result.precision_at_recall[0], expected_curve, atol=1e-12)
    np.testing.assert_array_equal(result.recall_points, np.linspace(0, 1, 101))


def test_a_perfect_detector_has_ap_one() -> None:
    gt = ground_truth([SQUARE_A, SQUARE_B], [0, 1])
    det = detections([SQUARE_A, SQUARE_B], [0.6, 0.9], [0, 1])
    result = evaluate([(gt, det)], num_classes=2)
    assert result.ap50 == pytest.approx([1.0, 1.0], abs=1e-12)
    assert result.map50_95 == pytest.approx(1.0, abs=1e-12)


def test_a_class_with_ground_truth_and_no_detections_has_ap_zero_and_counts_in_the_mean() -> None:
    gt = ground_truth([SQUARE_A, SQUARE_B], [0, 1])
    det = detections([SQUARE_A], [0.9], [0])
    result = evaluate([(gt, det)], num_classes=3)
    assert result.ap50[1] == 0.0
    assert result.ap50[2] is None  # no ground truth: undefined, left out of the mean
    assert result.precision_at_recall[2] is None
    assert result.gt_counts == [1, 1, 0]
    assert result.map50 == pytest.approx(0.5, abs=1e-12)


def test_a_detection_of_the_wrong_class_is_a_false_positive() -> None:
    gt = ground_truth([SQUARE_A], [0])
    det = detections([SQUARE_A], [0.9], [1])
    matches = metrics.match_image(gt, det)
    assert not matches.tp.any()
    result = metrics.average_precision([matches], num_classes=2)
    assert result.ap50 == [0.0, None]
    assert result.map50 == 0.0


def test_a_duplicate_detection_of_a_matched_box_is_a_false_positive() -> None:
    gt = ground_truth([SQUARE_A, SQUARE_B], [0, 0])
    # The duplicate scores between the two true positives, which gives the TP, FP, TP order of the hand case.
    det = detections([SQUARE_B, SQUARE_A, [0.0, 0.0, 10.0, 9.0]], [0.7, 0.9, 0.8], [0, 0, 0])
    matches = metrics.match_image(gt, det)
    np.testing.assert_array_equal(matches.scores, [0.9, 0.8, 0.7])
    np.testing.assert_array_equal(matches.tp[0], [True, False, True])
    assert metrics.average_precision([matches], 1).ap50[0] == pytest.approx(TP_FP_TP_AP, abs=1e-12)


def test_an_iou_exactly_at_the_threshold_matches() -> None:
    gt = ground_truth([SQUARE_A], [0])
    det = detections([[0.0, 0.0, 10.0, 5.0]], [0.9], [0])  # intersection 50, union 100: IoU exactly 0.5
    matches = metrics.match_image(gt, det)
    np.testing.assert_array_equal(matches.tp[:, 0], [True] + [False] * 9)
    result = metrics.average_precision([matches], 1)
    assert result.ap50[0] == pytest.approx(1.0, abs=1e-12)
    assert result.ap50_95[0] == pytest.approx(0.1, abs=1e-12)


def test_ap50_95_averages_over_the_ten_thresholds() -> None:
    gt = ground_truth([[0.0, 0.0, 100.0, 100.0]], [0])
    det = detections([[0.0, 0.0, 100.0, 72.0]], [0.9], [0])  # IoU 0.72: TP at 0.50..0.70, FP at 0.75..0.95
    matches = metrics.match_image(gt, det)
    np.testing.assert_array_equal(matches.tp[:, 0], [True] * 5 + [False] * 5)
    result = metrics.average_precision([matches], 1)
    assert result.ap50[0] == pytest.approx(1.0, abs=1e-12)
    assert result.ap50_95[0] == pytest.approx(0.5, abs=1e-12)


def test_a_detection_takes_the_best_unmatched_ground_truth() -> None:
    gt = ground_truth([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 8.0]], [0, 0])
    # The first detection overlaps the second box best (IoU 1) and must leave the first box to the second detection.
    det = detections([[0.0, 0.0, 10.0, 8.0], [0.0, 0.0, 10.0, 10.0]], [0.9, 0.8], [0, 0])
    matches = metrics.match_image(gt, det)
    assert matches.tp.all()


def test_of_equally_good_ground_truths_the_last_is_taken_as_in_cocoeval() -> None:
    gt = ground_truth([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]], [0, 0])
    # The first detection has IoU 0.6 with both boxes and takes the second; the next one overlaps only the second
    # box enough (IoU 0.82, against 0.25 with the first) and so is a false positive.
    det = detections([[2.5, 0.0, 12.5, 10.0], [6.0, 0.0, 16.0, 10.0]], [0.9, 0.8], [0, 0])
    np.testing.assert_array_equal(metrics.match_image(gt, det).tp[0], [True, False])
    check = metrics.coco_crosscheck([gt], [det], ["a"])
    assert check["coco_map50"] == pytest.approx(51 / 101, abs=1e-12)  # recall 0.5 at precision 1
    assert check["abs_diff_map50"] < 1e-12


def test_max_detections_keeps_the_best_per_image_and_class() -> None:
    gt = ground_truth([SQUARE_A, SQUARE_B], [0, 1])
    det = detections([FAR_AWAY, SQUARE_A, FAR_AWAY, SQUARE_B, FAR_AWAY], [0.5, 0.4, 0.9, 0.3, 0.8], [0, 0, 1, 1, 1])
    matches = metrics.match_image(gt, det, max_detections=1)
    np.testing.assert_array_equal(matches.scores, [0.9, 0.5])
    np.testing.assert_array_equal(matches.classes, [1, 0])
    assert metrics.match_image(gt, det, max_detections=None).scores.size == 5


def test_an_image_without_detections_or_ground_truth_is_fine() -> None:
    empty = evaluate(
        [(ground_truth([], []), detections([], [], []))] * 2
        + [(ground_truth([SQUARE_A], [0]), detections([], [], []))],
        1,
    )
    assert empty.ap50 == [0.0]


def test_classes_outside_the_range_are_rejected() -> None:
    matches = metrics.match_image(ground_truth([SQUARE_A], [2]), detections([], [], []))
    with pytest.raises(ValueError, match="ground-truth classes"):
        metrics.average_precision([matches], num_classes=2)


# --- agreement with pycocotools ---------------------------------------------------------------------------------------


def random_ground_truth(rng: np.random.Generator, num_images: int, num_classes: int) -> list[GroundTruth]:
    """Random boxes in 640 x 480 images; the last class never has ground truth (it only gets false positives)."""
    gts = []
    for index in range(num_images):
        count = int(rng.integers(0, 8))
        corner = rng.uniform(0, [440, 280], size=(count, 2))
        size = rng.uniform(8, 200, size=(count, 2))
        gts.append(
            GroundTruth(f"img{index}", np.hstack([corner, corner + size]), rng.integers(0, num_classes - 1, count))
        )
    return gts


def noisy_detections(
    rng: np.random.Generator,
    gts: list[GroundTruth],
    num_classes: int,
    recall: float = 0.85,
    score_decimals: int | None = None,
) -> list[Detections]:
    """Jittered copies of most ground truths (IoUs spread over all thresholds), some with the wrong class, some
    duplicated, plus random false boxes. Scores are continuous, so without ``score_decimals`` there are no ties."""
    all_dets = []
    for gt in gts:
        size = np.tile(gt.boxes[:, 2:] - gt.boxes[:, :2], 2)
        found = rng.random(len(gt.boxes)) < recall
        duplicated = rng.random(len(gt.boxes)) < 0.3
        sources = np.r_[np.flatnonzero(found), np.flatnonzero(duplicated)]
        boxes = gt.boxes[sources] + rng.normal(0, 0.1, size=(sources.size, 4)) * size[sources]
        classes = np.where(
            rng.random(sources.size) < 0.1, rng.integers(0, num_classes, sources.size), gt.classes[sources]
        )
        false_count = int(rng.integers(0, 6))
        corner = rng.uniform(0, [440, 280], size=(false_count, 2))
        boxes = np.vstack([boxes, np.hstack([corner, corner + rng.uniform(8, 200, size=(false_count, 2))])])
        classes = np.r_[classes, rng.integers(0, num_classes, false_count)]
        # Keep every box well formed after the jitter.
        boxes = np.hstack([np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])])
        scores = rng.random(len(boxes))
        if score_decimals is not None:
            scores = np.round(scores, score_decimals)
        all_dets.append(Detections(boxes, scores, classes))
    return all_dets


@pytest.mark.parametrize(
    ("seed", "score_decimals", "max_detections"),
    [(0, None, 100), (1, None, 100), (2, None, 100), (3, 1, 100), (4, None, 2)],
    ids=["random-0", "random-1", "random-2", "tied-scores", "max-detections-2"],
)
def test_agrees_with_cocoeval(seed: int, score_decimals: int | None, max_detections: int) -> None:
    rng = np.random.default_rng(seed)
    num_classes = 4
    gts = random_ground_truth(rng, num_images=12, num_classes=num_classes)
    dets = noisy_detections(rng, gts, num_classes, score_decimals=score_decimals)
    sizes = [(640, 480)] * len(gts)
    check = metrics.coco_crosscheck(gts, dets, ["a", "b", "c", "d"], max_detections=max_detections, image_sizes=sizes)
    assert 0.1 < check["coco_map50_95"] < check["coco_map50"] < 1.0  # a case that exercises partial matching
    assert check["abs_diff_map50"] < 1e-9
    assert check["abs_diff_map50_95"] < 1e-9


def test_crosscheck_without_detections_gives_zero() -> None:
    gts = [ground_truth([SQUARE_A], [0])]
    check = metrics.coco_crosscheck(gts, [detections([], [], [])], ["a"])
    assert check == {
        "coco_map50": 0.0,
        "coco_map50_95": 0.0,
        "map50": 0.0,
        "map50_95": 0.0,
        "abs_diff_map50": 0.0,
        "abs_diff_map50_95": 0.0,
    }


# --- paired bootstrap -----------------------------------------------------------------------------------------------


def matched(gts: list[GroundTruth], dets: list[Detections]) -> list[metrics.ImageMatches]:
    return [metrics.match_image(gt, det) for gt, det in zip(gts, dets, strict=True)]


@pytest.fixture(scope="module")
def two_models() -> tuple[list[metrics.ImageMatches], list[metrics.ImageMatches]]:
    rng = np.random.default_rng(7)
    gts = random_ground_truth(rng, num_images=40, num_classes=3)
    return matched(gts, noisy_detections(rng, gts, 3, recall=0.6)), matched(gts, noisy_detections(rng, gts, 3))


def compare(baseline, augmented, num_classes, **options):
    """The one-variant comparison, as the evaluator's default variant 'augmented' gets it."""
    result = metrics.bootstrap_deltas(baseline, {"augmented": augmented}, num_classes, **options)
    return result["variants"]["augmented"] | {"num_seeds": result["num_seeds"]}


def test_identical_models_have_a_zero_delta_and_a_zero_interval(two_models) -> None:
    baseline, _ = two_models
    result = compare(baseline, baseline, 3, resamples=200)
    for metric in ("map50", "map50_95"):
        assert result[metric]["delta"] == 0.0
        assert result[metric]["delta_ci"] == [0.0, 0.0]
        assert result[metric]["share_delta_positive"] == 0.0
        assert result[metric]["verdict"]["verdict"] == "no measurable effect"
        low, high = result[metric]["baseline_ci"]
        assert low < result[metric]["baseline"] < high


def test_identical_models_over_several_different_seeds_have_an_interval_around_zero() -> None:
    # Three training seeds that differ, the same three for both models: the seed level widens the interval,
    # but it stays centred on zero, with a zero point estimate.
    rng = np.random.default_rng(5)
    gts = random_ground_truth(rng, num_images=40, num_classes=3)
    seeds = [matched(gts, noisy_detections(rng, gts, 3, recall=recall)) for recall in (0.5, 0.7, 0.9)]
    result = compare(seeds, seeds, 3, resamples=2000)
    for metric in ("map50", "map50_95"):
        low, high = result[metric]["delta_ci"]
        assert result[metric]["delta"] == 0.0
        assert low < 0.0 < high
        assert abs(low + high) < 0.25 * (high - low)  # symmetric about zero, up to resampling noise
        assert 0.3 < result[metric]["share_delta_positive"] < 0.7
        assert result[metric]["verdict"]["verdict"] == "no measurable effect"
    single = compare(seeds[0], seeds[0], 3, resamples=2000)
    assert single["map50"]["delta_ci"] == [0.0, 0.0]


def test_a_model_better_on_every_image_has_an_interval_above_zero() -> None:
    rng = np.random.default_rng(3)
    gts = [ground_truth([SQUARE_A, SQUARE_B], [0, 0], f"img{index}") for index in range(30)]
    perfect = [detections([SQUARE_A, SQUARE_B], [0.9, 0.8], [0, 0]) for _ in gts]
    # The baseline finds only one of the two boxes, with a false positive at a random rank.
    half = [detections([SQUARE_A, FAR_AWAY], [rng.random(), rng.random()], [0, 0]) for _ in gts]
    result = compare(matched(gts, half), matched(gts, perfect), 1, resamples=200)
    for metric in ("map50", "map50_95"):
        assert result[metric]["delta_ci"][0] > 0.3
        assert result[metric]["share_delta_positive"] == 1.0
        assert result[metric]["variant"] == pytest.approx(1.0, abs=1e-12)
        assert result[metric]["verdict"]["verdict"] == "helps"
    reverse = compare(matched(gts, perfect), matched(gts, half), 1, resamples=200)
    assert reverse["map50"]["verdict"]["verdict"] == "hurts"


def test_the_seed_fixes_the_interval(two_models) -> None:
    baseline, augmented = two_models
    first = compare(baseline, augmented, 3, resamples=300, seed=1)
    assert compare(baseline, augmented, 3, resamples=300, seed=1) == first
    other = compare(baseline, augmented, 3, resamples=300, seed=2)
    assert other["map50"]["delta"] == first["map50"]["delta"]
    assert other["map50"]["delta_ci"] != first["map50"]["delta_ci"]
    np.testing.assert_allclose(other["map50"]["delta_ci"], first["map50"]["delta_ci"], atol=0.05)
    assert first["map50"]["delta_ci"][0] < first["map50"]["delta"] < first["map50"]["delta_ci"][1]


def test_point_estimates_are_the_full_set_map(two_models) -> None:
    baseline, augmented = two_models
    result = compare(baseline, augmented, 3, resamples=10)
    for model, matches in (("baseline", baseline), ("variant", augmented)):
        full = metrics.average_precision(matches, 3)
        assert result["map50"][model] == full.map50
        assert result["map50_95"][model] == full.map50_95


def test_several_seeds_are_averaged(two_models) -> None:
    baseline, augmented = two_models
    single = compare(baseline, augmented, 3, resamples=100)
    doubled = compare([baseline, baseline], [augmented, augmented], 3, resamples=100)
    assert doubled["num_seeds"] == {"baseline": 2, "augmented": 2}
    for metric in ("map50", "map50_95"):
        for key in ("baseline", "variant", "delta", "baseline_ci", "variant_ci", "delta_ci", "share_delta_positive"):
            assert doubled[metric][key] == single[metric][key]

    mixed = compare(baseline, [baseline, augmented], 3, resamples=100)
    expected = (metrics.average_precision(baseline, 3).map50 + metrics.average_precision(augmented, 3).map50) / 2
    assert mixed["map50"]["variant"] == pytest.approx(expected, abs=1e-15)
    assert mixed["map50"]["variant_per_seed"] == [single["map50"]["baseline"], single["map50"]["variant"]]


def test_seed_variation_widens_the_interval(two_models) -> None:
    # The variant's two seeds disagree (one is the baseline itself). Over test images alone, the delta of the seed
    # mean has a narrow interval; the two-level bootstrap also redraws the seeds and must give a wider one.
    from fewgen.verdicts import item_weights, percentile_interval

    baseline, augmented = two_models
    two_level = compare(baseline, [baseline, augmented], 3, resamples=2000)["map50"]["delta_ci"]
    weights = item_weights(len(baseline), 2000, np.random.default_rng(0))
    base = metrics.weighted_map(baseline, 3, weights)[0]
    seed_mean = (base + metrics.weighted_map(augmented, 3, weights)[0]) / 2
    images_only = percentile_interval(seed_mean - base, 0.95)
    assert two_level[1] - two_level[0] > 1.3 * (images_only[1] - images_only[0])


def test_every_variant_is_compared_with_the_same_baseline_draws(two_models) -> None:
    baseline, augmented = two_models
    result = metrics.bootstrap_deltas(baseline, {"a": augmented, "b": baseline}, 3, resamples=200)
    assert list(result["variants"]) == ["a", "b"]
    assert result["variants"]["b"]["map50"]["delta_ci"] == [0.0, 0.0]
    assert result["variants"]["a"]["map50"]["baseline_ci"] == result["baseline"]["map50"]["ci"]
    # Variant against variant: 'b' is the baseline itself, so a - b is exactly a's delta, draw by draw.
    (pair,) = result["pairwise"]
    assert (pair["variant"], pair["versus"]) == ("a", "b")
    assert pair["map50"]["delta"] == result["variants"]["a"]["map50"]["delta"]
    assert pair["map50"]["delta_ci"] == result["variants"]["a"]["map50"]["delta_ci"]
    assert pair["map50"]["verdict"] == result["variants"]["a"]["map50"]["verdict"]
    with pytest.raises(ValueError, match="baseline"):
        metrics.bootstrap_deltas(baseline, {"baseline": augmented}, 3, resamples=10)


def test_mismatched_image_lists_are_rejected(two_models) -> None:
    baseline, augmented = two_models
    with pytest.raises(ValueError, match="same test images"):
        compare(baseline, augmented[::-1], 3, resamples=10)


def test_weighting_images_equals_concatenating_the_drawn_images(two_models) -> None:
    _, augmented = two_models
    num_images = len(augmented)
    draws = np.random.default_rng(11).integers(0, num_images, size=(3, num_images))
    weights = np.stack([np.bincount(draw, minlength=num_images) for draw in draws])
    map50, map50_95 = metrics.weighted_map(augmented, 3, weights)
    for row, draw in enumerate(draws):
        explicit = metrics.average_precision([augmented[index] for index in np.sort(draw)], 3)
        assert map50[row] == pytest.approx(explicit.map50, abs=1e-12)
        assert map50_95[row] == pytest.approx(explicit.map50_95, abs=1e-12)
