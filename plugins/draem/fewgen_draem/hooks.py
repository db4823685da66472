"""The module the ``fewgen`` entry point names: it only registers the generator.

Nothing imported here may import torch, so listing plugins and validating recipes stay fast.
"""

from __future__ import annotations

from collections.abc import Callable

from fewgen import hookimpl
from fewgen.api import Generator
from fewgen_draem.generator import DraemGenerator


@hookimpl
def register_generators(register: Callable[[type[Generator]], None]) -> None:
    register(DraemGenerator)
