"""Registers the dataset cards that ship with fewgen (``datasets/cards`` in the repository)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from fewgen.hookspecs import hookimpl


def _shipped_cards() -> Path:
    # A source checkout (editable install) reads the cards straight from the repository;
    # a wheel installs them as shared data under the environment's prefix.
    checkout = Path(__file__).resolve().parent.parent / "datasets" / "cards"
    return checkout if checkout.is_dir() else Path(sys.prefix) / "share" / "fewgen" / "cards"


@hookimpl
def register_dataset_cards(register: Callable[[Path], None]) -> None:
    register(_shipped_cards())
