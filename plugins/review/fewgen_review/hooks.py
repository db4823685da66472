"""Hook implementations of the review plugin. FiftyOne is imported only when a review, an export or
its benchmark runs, never here: `fewgen plugins` and every run import this module."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fewgen.api import Evaluator
from fewgen.hookspecs import hookimpl
from fewgen_review.evaluator import FiftyOneExport, export_finished_run


@hookimpl
def register_evaluators(register: Callable[[type[Evaluator]], None]) -> None:
    register(FiftyOneExport)


@hookimpl
def register_commands(register: Callable[[Any], None]) -> None:
    from fewgen_review.command import review

    register(review)


@hookimpl
def register_benchmarks(register: Callable[[Any], None]) -> None:
    from fewgen_review.bench import review_export

    register(review_export)


@hookimpl
def after_run(run_dir: Path, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return export_finished_run(run_dir, manifest)
