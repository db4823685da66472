"""The module the ``fewgen`` entry point names: it only registers the plugin's classes."""

from __future__ import annotations

from collections.abc import Callable

from fewgen import hookimpl
from fewgen.api import Generator
from fewgen_grayscale.generator import Grayscale


@hookimpl
def register_generators(register: Callable[[type[Generator]], None]) -> None:
    register(Grayscale)
