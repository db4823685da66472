"""Hook implementations of the yolo plugin. Imports nothing heavy: ultralytics and torch load
only when a step or benchmark runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fewgen.api import Evaluator
from fewgen.hookspecs import hookimpl
from fewgen_yolo.evaluator import YoloEvaluator


@hookimpl
def register_evaluators(register: Callable[[type[Evaluator]], None]) -> None:
    register(YoloEvaluator)


@hookimpl
def register_benchmarks(register: Callable[[Any], None]) -> None:
    from fewgen_yolo.bench import detect

    register(detect)


@hookimpl
def register_workloads(register: Callable[[Any], None]) -> None:
    from fewgen_yolo.workload import YoloEpochWorkload

    register(YoloEpochWorkload)
