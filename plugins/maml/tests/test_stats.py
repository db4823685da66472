"""The 95 % confidence interval arithmetic of few-shot results."""

from __future__ import annotations

import math

import pytest
from fewgen_maml.stats import mean_ci95, summary

Z_95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def test_two_values_by_hand() -> None:
    # mean 0.5, sample standard deviation sqrt(0.5), n = 2: 1.96 * sqrt(0.5) / sqrt(2) = 0.98
    mean, half = mean_ci95([0.0, 1.0])
    assert mean == 0.5
    assert half == pytest.approx(Z_95 * 0.5)
    assert half == pytest.approx(0.98, abs=1e-3)


def test_six_hundred_binary_tasks_match_the_binomial_formula() -> None:
    values = [1.0] * 540 + [0.0] * 60  # 90 % correct
    mean, half = mean_ci95(values)
    sample_sd = math.sqrt(0.9 * 0.1 * 600 / 599)
    assert mean == pytest.approx(0.9)
    assert half == pytest.approx(1.959964 * sample_sd / math.sqrt(600), rel=1e-6)
    assert half == pytest.approx(0.024, abs=5e-4)


def test_constant_values_and_one_value_have_no_spread() -> None:
    assert mean_ci95([0.7] * 10) == (pytest.approx(0.7), pytest.approx(0.0))
    assert mean_ci95([0.3]) == (0.3, 0.0)


def test_no_values_is_an_error_and_summary_rounds() -> None:
    with pytest.raises(ValueError, match="no values"):
        mean_ci95([])
    assert summary([0.0, 1.0], digits=2) == {"mean": 0.5, "ci95": 0.98, "tasks": 2}
