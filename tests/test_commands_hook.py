"""The hooks that let a plugin act outside recipe steps: ``register_commands`` adds top-level
``fewgen`` subcommands, ``after_run`` sees the finished run folder and may add values to its manifest."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from fewgen.cache import StepCache
from fewgen.cli import cli
from fewgen.engine import Engine
from fewgen.errors import StepFailed
from fewgen.hookspecs import hookimpl
from fewgen.plugins import Registry, load_registry, reset_registry
from fewgen.recipe import load_recipe
from fewgen.testing import make_native_dataset


def _command(name: str) -> click.Command:
    @click.command(name)
    @click.argument("who")
    def greet(who: str) -> None:
        """Greets WHO."""
        click.echo(f"hello {who}")

    return greet


class CommandPlugin:
    def __init__(self, *names: str) -> None:
        self.names = names

    @hookimpl
    def register_commands(self, register: Callable[[click.Command], None]) -> None:
        for name in self.names:
            register(_command(name))


@pytest.fixture
def use_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Registry]]:
    """Installs a registry of only the given inline plugins as the CLI's, and removes it after the test."""
    monkeypatch.setenv("FEWGEN_LOAD_PLUGINS", "")

    def install(*plugins: object) -> Registry:
        registry = load_registry(extra_plugins=list(plugins))
        reset_registry(registry)
        return registry

    yield install
    reset_registry(None)


def test_registered_command_is_a_top_level_subcommand(use_plugins: Callable[..., Registry]) -> None:
    use_plugins(CommandPlugin("greet"))
    runner = CliRunner()
    result = runner.invoke(cli, ["greet", "world"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello world\n"
    listing = runner.invoke(cli, ["--help"])
    assert listing.exit_code == 0 and "greet" in listing.output and "run" in listing.output


def test_fewgen_plugins_lists_registered_commands(use_plugins: Callable[..., Registry]) -> None:
    registry = use_plugins(CommandPlugin("greet", "wave"))
    (info,) = registry.describe()
    assert info.commands == ["greet", "wave"]
    assert "register_commands" in info.hooks
    runner = CliRunner()
    as_json = json.loads(runner.invoke(cli, ["plugins", "--json"]).output)
    assert as_json[0]["commands"] == ["greet", "wave"]
    assert "  commands: greet, wave" in runner.invoke(cli, ["plugins"]).output


def test_unknown_command_is_still_a_click_usage_error(use_plugins: Callable[..., Registry]) -> None:
    use_plugins(CommandPlugin("greet"))
    result = CliRunner().invoke(cli, ["gret"])
    assert result.exit_code == 2 and "No such command 'gret'" in result.output


def test_command_that_shadows_a_built_in_is_refused_in_one_line(use_plugins: Callable[..., Registry]) -> None:
    use_plugins(CommandPlugin("greet", "run"))
    runner = CliRunner()
    for args in (["greet", "x"], ["--help"], ["plugins"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        (line,) = result.output.strip().splitlines()
        assert line.startswith("Error: plugin ") and line.endswith(
            "registers the command 'run', which is a built-in fewgen command"
        )


def test_two_plugins_registering_one_command_name_are_named(use_plugins: Callable[..., Registry]) -> None:
    use_plugins(CommandPlugin("greet"), CommandPlugin("greet"))
    result = CliRunner().invoke(cli, ["greet", "x"])
    assert result.exit_code == 2
    assert "command 'greet' is registered by both" in result.output


# --- after_run ---------------------------------------------------------------------------

RECIPE = """\
name: tiny
seed: 1
device: cpu
dataset:
  format: fewgen
  root: data
steps:
  - name: stats
    evaluator: dataset_stats
output:
  format: fewgen
"""


class AfterRunRecorder:
    """Checks that the run folder is complete when the hook is called, and adds a metric."""

    def __init__(self, returned: dict[str, dict[str, Any]] | None) -> None:
        self.returned = returned
        self.seen: list[tuple[Path, bool, int, list[str]]] = []

    @hookimpl
    def after_run(self, run_dir: Path, manifest: dict[str, Any], metrics: dict[str, Any]) -> Any:
        complete = (run_dir / "manifest.json").is_file() and (run_dir / "dataset" / "samples.jsonl").is_file()
        self.seen.append((run_dir, complete, manifest["dataset"]["samples"], sorted(metrics)))
        return self.returned


def _run(tmp_path: Path, plugin: object, out: str = "out") -> Any:
    registry = load_registry(extra_plugins=[plugin])
    loaded = load_recipe(tmp_path / "recipe.yaml", registry)
    engine = Engine(registry, cache=StepCache(tmp_path / "cache"), show_progress=False, echo=lambda _: None)
    return engine.run(loaded, tmp_path / out)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    make_native_dataset(tmp_path / "data", count=4)
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    return tmp_path


def test_after_run_sees_the_complete_folder_and_its_values_go_to_the_manifest(project: Path) -> None:
    recorder = AfterRunRecorder({"stats": {"exported": 4}})
    result = _run(project, recorder)
    assert recorder.seen == [(project / "out", True, 4, ["stats"])]
    manifest = json.loads((project / "out" / "manifest.json").read_text())
    assert manifest["after_run"] == {"stats": {"exported": 4}} == result.manifest["after_run"]
    # They describe this run, not a result: metrics.json stays what a cached rerun reproduces.
    saved = json.loads((project / "out" / "metrics.json").read_text())
    assert "exported" not in saved["stats"] and "groups" in saved["stats"]
    # Called again on a run whose steps are all cached: the hook is about the run, not the steps.
    _run(project, recorder, "again")
    assert [seen[0].name for seen in recorder.seen] == ["out", "again"]


def test_after_run_that_returns_nothing_leaves_the_run_alone(project: Path) -> None:
    recorder = AfterRunRecorder(None)
    result = _run(project, recorder)
    assert json.loads((project / "out" / "metrics.json").read_text()) == result.metrics
    assert "after_run" not in json.loads((project / "out" / "manifest.json").read_text())


def test_after_run_metrics_for_an_unknown_step_fail_but_keep_the_run(project: Path) -> None:
    with pytest.raises(StepFailed, match=r"no evaluator step of the run.*the run folder .* is complete"):
        _run(project, AfterRunRecorder({"nope": {"x": 1}}))
    assert (project / "out" / "manifest.json").is_file()
