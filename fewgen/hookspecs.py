"""The hooks a fewgen plugin can implement. This module is the plugin API.

Registration hooks take a ``register`` callback (as in ``llm``): a plugin calls it once
for each class it provides. Lifecycle hooks let a plugin observe every recipe step.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from fewgen.api import DatasetFormat, Evaluator, Generator, StepContext
    from fewgen.contention import Workload
    from fewgen.dataset import Dataset

hookspec = pluggy.HookspecMarker("fewgen")
hookimpl = pluggy.HookimplMarker("fewgen")


@hookspec
def register_generators(register: Callable[[type[Generator]], None]) -> None:
    """Register generator classes that make synthetic samples in a recipe step."""


@hookspec
def register_evaluators(register: Callable[[type[Evaluator]], None]) -> None:
    """Register evaluator classes that turn a dataset into metrics in a recipe step."""


@hookspec
def register_dataset_formats(register: Callable[[type[DatasetFormat]], None]) -> None:
    """Register dataset format classes that read and write an on-disk layout."""


@hookspec
def register_dataset_cards(register: Callable[[Path], None]) -> None:
    """Register folders of dataset cards (``*.yaml``) that recipes can name."""


@hookspec
def register_benchmarks(register: Callable[[click.Command], None]) -> None:
    """Register click commands that run under ``fewgen bench`` and print JSON results."""


@hookspec
def register_workloads(register: Callable[[type[Workload]], None]) -> None:
    """Register small representative units of work (``Workload`` classes) that ``fewgen bench contention`` times."""


@hookspec
def register_commands(register: Callable[[click.Command], None]) -> None:
    """Register click commands that become top-level ``fewgen`` subcommands."""


@hookspec
def before_step(step: StepContext, kind: str, component: str, params: dict[str, Any], cached: bool) -> None:
    """Called before a recipe step runs or is restored from the cache."""


@hookspec
def after_step(step: StepContext, kind: str, component: str, dataset: Dataset, metrics: dict[str, Any]) -> None:
    """Called after a recipe step finished, with the dataset it produced and its metrics."""


@hookspec
def after_run(run_dir: Path, manifest: dict[str, Any], metrics: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """Called once the run folder is complete; may return values about the run, by step name, for manifest.json."""


@hookspec
def on_step_error(step: StepContext, kind: str, component: str, error: BaseException) -> None:
    """Called when a recipe step fails, before the run stops."""
