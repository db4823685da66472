"""Accuracy (or error) over many test tasks, with its 95 % confidence interval.

Few-shot results are means over randomly drawn test tasks, so each comes with the half-width of
its 95 % confidence interval, as in the MAML paper's tables and the papers that followed:
1.96 · s / √n, with s the sample standard deviation (n - 1 in the denominator) of the per-task
values and n the number of tasks. The normal quantile stands in for Student's t, which differs
from it by under 0.2 % at the 600 tasks the field reports over. The arithmetic is the core's
(:func:`fewgen.verdicts.mean_ci`, which also gives the verdicts of paired comparisons); this
module gives it the ``mean ± half-width`` form the few-shot reports use.
"""

from __future__ import annotations

from collections.abc import Sequence

from fewgen.verdicts import mean_ci


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """The mean of ``values`` and the half-width of its 95 % confidence interval (0 for one value)."""
    if len(values) == 0:
        raise ValueError("no values to average")
    result = mean_ci(values, 0.95)
    low, high = result["ci"]
    return result["mean"], (high - low) / 2


def summary(values: Sequence[float], digits: int = 4) -> dict[str, float | int]:
    """``{"mean", "ci95", "tasks"}``, rounded for a JSON report."""
    mean, half_width = mean_ci95(values)
    return {"mean": round(mean, digits), "ci95": round(half_width, digits), "tasks": len(values)}
