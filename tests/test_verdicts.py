"""Tests of fewgen.verdicts: the three-way reading, the two-level bootstrap, mean and paired intervals."""

from __future__ import annotations

import numpy as np
import pytest

from fewgen import verdicts


@pytest.mark.parametrize(
    ("ci", "expected"),
    [
        ([0.001, 0.2], "helps"),
        ([-0.2, -0.001], "hurts"),
        ([-0.1, 0.1], "no measurable effect"),
        ([0.0, 0.1], "no measurable effect"),  # an end exactly at zero contains zero
        ([-0.1, 0.0], "no measurable effect"),
        ([0.0, 0.0], "no measurable effect"),
    ],
)
def test_verdict_thresholds(ci: list[float], expected: str) -> None:
    entry = verdicts.verdict(0.05, ci, 0.9)
    assert entry == {"verdict": expected, "effect": 0.05, "ci": ci, "confidence": 0.9}


def test_swapped_interval_ends_are_refused() -> None:
    with pytest.raises(ValueError, match="swapped"):
        verdicts.verdict(0.0, [0.2, -0.2])


def test_describe_names_the_verdict_the_effect_and_the_interval() -> None:
    line = verdicts.describe(verdicts.verdict(0.031, [0.004, 0.06]))
    assert line == "helps: +0.031 [+0.004, +0.060] (95 % CI)"


def test_item_weights_count_draws_per_resample() -> None:
    weights = verdicts.item_weights(7, 50, np.random.default_rng(0))
    assert weights.shape == (50, 7)
    assert (weights.sum(axis=1) == 7).all()
    assert weights.min() >= 0


def test_one_seed_leaves_the_item_level_alone() -> None:
    per_seed = np.arange(12, dtype=float).reshape(1, 12)
    np.testing.assert_array_equal(verdicts.resample_seeds(per_seed, np.random.default_rng(0)), per_seed[0])


def test_resampled_seeds_are_means_of_drawn_seeds() -> None:
    per_seed = np.array([[0.0] * 500, [1.0] * 500, [2.0] * 500])
    drawn = verdicts.resample_seeds(per_seed, np.random.default_rng(1))
    # Each value is a mean of three draws from {0, 1, 2}: a multiple of 1/3, centred on 1.
    np.testing.assert_allclose(drawn * 3, np.round(drawn * 3))
    assert abs(drawn.mean() - 1.0) < 0.05
    assert drawn.min() < 0.5 and drawn.max() > 1.5


def _per_seed_replicates(seed_figures: np.ndarray, item_values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(S, B): a mean metric per seed on each weighted resample; seed s adds seed_figures[s] to every item."""
    resampled = weights @ item_values / weights.sum(axis=1)
    return seed_figures[:, None] + resampled[None, :]


def _shifted_models(seed: int, items: int, shift: float, seed_noise: list[float]) -> dict[str, np.ndarray]:
    """Per-seed replicates and full-set figures of a baseline and a treatment that is the baseline + shift."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0.5, 0.2, size=items)
    weights = verdicts.item_weights(items, 4000, rng)
    noise = np.array(seed_noise)
    return {
        "baseline": _per_seed_replicates(noise, values, weights),
        "treatment": _per_seed_replicates(noise + shift, values, weights),
        "baseline_full": values.mean() + noise,
        "treatment_full": values.mean() + noise + shift,
    }


def test_a_constant_shift_is_recovered_exactly_with_one_seed() -> None:
    rng = np.random.default_rng(2)
    items = rng.normal(0.5, 0.2, size=60)
    weights = verdicts.item_weights(60, 1000, rng)
    baseline = _per_seed_replicates(np.array([0.0]), items, weights)
    treatment = _per_seed_replicates(np.array([0.07]), items, weights)
    full_base, full_treat = np.array([items.mean()]), np.array([items.mean() + 0.07])
    result = verdicts.two_level_delta(baseline, treatment, full_base, full_treat, rng)
    assert result["delta"] == pytest.approx(0.07)
    np.testing.assert_allclose(result["delta_ci"], [0.07, 0.07])
    assert result["verdict"]["verdict"] == "helps"


def test_a_constant_shift_with_seed_noise_is_recovered_within_its_interval() -> None:
    models = _shifted_models(3, 60, 0.05, [-0.01, 0.0, 0.012])
    result = verdicts.two_level_delta(**models, rng=np.random.default_rng(0))
    low, high = result["delta_ci"]
    assert result["delta"] == pytest.approx(0.05)
    assert low < 0.05 < high
    assert abs((low + high) / 2 - 0.05) < 0.005
    # The seed noise (up to 0.022 apart) is what widens the interval; the items are paired and cancel.
    assert 0.005 < high - low < 0.05
    assert result["verdict"]["verdict"] == "helps"
    assert result["baseline_per_seed"] == pytest.approx(list(models["baseline_full"]))


def test_identical_models_give_an_interval_around_zero() -> None:
    models = _shifted_models(4, 40, 0.0, [-0.03, 0.0, 0.02])
    result = verdicts.two_level_delta(**models, rng=np.random.default_rng(0))
    low, high = result["delta_ci"]
    assert result["delta"] == 0.0
    assert low < 0.0 < high
    assert abs(low + high) < 0.2 * (high - low)
    assert result["verdict"]["verdict"] == "no measurable effect"


def test_mean_ci_matches_the_normal_approximation() -> None:
    values = np.array([0.6, 0.8, 0.7, 0.9, 0.5])
    summary = verdicts.mean_ci(values)
    half = 1.959963984540054 * values.std(ddof=1) / np.sqrt(5)
    assert summary["mean"] == pytest.approx(0.7)
    np.testing.assert_allclose(summary["ci"], [0.7 - half, 0.7 + half])
    assert summary["n"] == 5


def test_paired_difference_reads_the_same_items() -> None:
    baseline = np.linspace(0.4, 0.6, 200)
    better = baseline + 0.05 + np.random.default_rng(0).normal(0, 0.01, size=200)
    result = verdicts.paired_difference(better, baseline)
    assert result["mean"] == pytest.approx(0.05, abs=0.003)
    assert result["verdict"]["verdict"] == "helps"
    assert verdicts.paired_difference(baseline, better)["verdict"]["verdict"] == "hurts"
    with pytest.raises(ValueError, match="same shape"):
        verdicts.paired_difference(better[:10], baseline)
