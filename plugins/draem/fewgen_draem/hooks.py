"""The module the ``fewgen`` entry point names: the generator, the evaluator, the benchmarks and a contention workload.

Nothing imported here may import torch, so listing plugins and validating recipes stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fewgen import hookimpl
from fewgen.api import Evaluator, Generator
from fewgen_draem.evaluator import AnomalyEvaluator
from fewgen_draem.generator import DraemGenerator


@hookimpl
def register_generators(register: Callable[[type[Generator]], None]) -> None:
    register(DraemGenerator)


@hookimpl
def register_evaluators(register: Callable[[type[Evaluator]], None]) -> None:
    register(AnomalyEvaluator)


@hookimpl
def register_benchmarks(register: Callable[[Any], None]) -> None:
    from fewgen_draem.bench import draem_anomaly, draem_synth, draem_train

    register(draem_synth)
    register(draem_train)
    register(draem_anomaly)


@hookimpl
def register_workloads(register: Callable[[Any], None]) -> None:
    from fewgen_draem.workload import DraemSynthesisWorkload

    register(DraemSynthesisWorkload)
