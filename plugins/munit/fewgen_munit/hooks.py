"""The module the ``fewgen`` entry point names: the ``munit`` generator, the MUNIT benchmarks and workload.

Nothing imported here may import torch, so listing plugins and validating recipes stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fewgen import hookimpl


@hookimpl
def register_generators(register: Callable[[Any], None]) -> None:
    from fewgen_munit.generator import MunitGenerator

    register(MunitGenerator)


@hookimpl
def register_benchmarks(register: Callable[[Any], None]) -> None:
    from fewgen_munit.bench import munit_bench, munit_speed

    register(munit_bench)
    register(munit_speed)


@hookimpl
def register_workloads(register: Callable[[Any], None]) -> None:
    from fewgen_munit.workload import MunitTinyWorkload

    register(MunitTinyWorkload)
