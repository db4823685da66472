"""The module the ``fewgen`` entry point names: it only registers the generator.

Nothing imported here may import NumPy or OpenCV, so listing plugins stays fast.
"""

from __future__ import annotations

from collections.abc import Callable

from fewgen import hookimpl
from fewgen.api import Generator
from fewgen_copy_paste.generator import CopyPasteGenerator


@hookimpl
def register_generators(register: Callable[[type[Generator]], None]) -> None:
    register(CopyPasteGenerator)
