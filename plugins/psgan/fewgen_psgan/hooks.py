"""The module the ``fewgen`` entry point names: it registers the ``psgan`` generator and benchmark.

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
