"""The module the ``fewgen`` entry point names: the adapter, the few-shot evaluator, benchmarks, a workload.

Nothing imported here may import torch, so listing plugins and validating recipes stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fewgen import hookimpl


@hookimpl
def register_benchmarks(register: Callable[[Any], None]) -> None:
    from fewgen_maml.bench import maml_sinusoid, maml_speed
    from fewgen_maml.bench_omniglot import maml_omniglot

    register(maml_sinusoid)
    register(maml_omniglot)
    register(maml_speed)


@hookimpl
def register_evaluators(register: Callable[[Any], None]) -> None:
    from fewgen_maml.adapter import MamlAdapter
    from fewgen_maml.evaluator import FewShotEvaluator

    register(MamlAdapter)
    register(FewShotEvaluator)


@hookimpl
def register_workloads(register: Callable[[Any], None]) -> None:
    from fewgen_maml.workload import MamlSinusoidWorkload

    register(MamlSinusoidWorkload)
