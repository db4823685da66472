"""Registers the dataset cards that ship with fewgen (``datasets/cards`` in the repository)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fewgen.hookspecs import hookimpl


def _shipped_cards() -> Path:
    package = Path(__file__).resolve().parent
    # An installed wheel carries the cards inside the package; a source checkout
    # (editable install) reads them straight from the repository.
    packaged = package / "_cards"
    return packaged if packaged.is_dir() else package.parent / "datasets" / "cards"


@hookimpl
def register_dataset_cards(register: Callable[[Path], None]) -> None:
    register(_shipped_cards())
