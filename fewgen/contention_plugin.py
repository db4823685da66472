"""Registers the core's own benchmark, ``fewgen bench contention`` (the thread policy beside a busy process)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fewgen.hookspecs import hookimpl


@hookimpl
def register_benchmarks(register: Callable[[Any], None]) -> None:
    from fewgen.contention import contention

    register(contention)
