"""The module the ``fewgen`` entry point names: the ``psgan`` generator, benchmark and workload.

Nothing imported here may import torch, so listing plugins and validating recipes stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fewgen import hookimpl
from fewgen.api import Generator
from fewgen_psgan.generator import PsganGenerator


@hookimpl
def register_generators(register: Callable[[type[Generator]], None]) -> None:
    register(PsganGenerator)


@hookimpl
def register_benchmarks(register: Callable[[Any], None]) -> None:
    from fewgen_psgan.bench import psgan_bench

    register(psgan_bench)


@hookimpl
def register_workloads(register: Callable[[Any], None]) -> None:
    from fewgen_psgan.workload import PsganTinyWorkload

    register(PsganTinyWorkload)
