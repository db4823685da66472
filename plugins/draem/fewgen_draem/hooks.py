"""The module the ``fewgen`` entry point names: it registers the generator and the benchmark.

Nothing imported here may import torch, so listing plugins and validating recipes stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fewgen import hookimpl
from fewgen.api import Generator
from fewgen_draem.generator import DraemGenerator


@hookimpl
def register_generators(register: Callable[[type[Generator]], None]) -> None:
    register(DraemGenerator)


@hookimpl
def register_benchmarks(register: Callable[[Any], None]) -> None:
    from fewgen_draem.bench import draem_synth

    register(draem_synth)
