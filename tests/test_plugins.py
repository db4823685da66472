"""The plugin system: discovery, registration, lookups, validation and lifecycle hooks.

Plugins here are inline objects passed to ``load_registry(extra_plugins=...)``. Tests
that count plugins set ``FEWGEN_LOAD_PLUGINS`` so whatever else is installed in the
environment cannot change their outcome.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fewgen.api import DatasetFormat, Evaluator, Generator, NoParams, Params, ReadResult, StepContext
from fewgen.dataset import Box, Dataset, Sample
from fewgen.errors import UsageError
from fewgen.hookspecs import hookimpl
from fewgen.imageio import copy_file, save_image
from fewgen.plugins import load_registry


class CopyGenerator(Generator):
    name = "copy_images"
    description = "Copies every image unchanged."

    def generate(self, dataset: Dataset, ctx: StepContext) -> Iterable[Sample]:
        for sample in dataset:
            image = ctx.work_dir / f"{sample.id}{sample.image.suffix}"
            copy_file(sample.image, image)
            yield sample.derive(id=f"{ctx.step}/{sample.id}", image=image, provenance=self.provenance(ctx, sample))


class FailingGenerator(Generator):
    name = "always_fails"

    def generate(self, dataset: Dataset, ctx: StepContext) -> Iterable[Sample]:
        raise RuntimeError("the model ran out of memory")


class CountEvaluator(Evaluator):
    name = "count_samples"

    def evaluate(self, dataset: Dataset, ctx: StepContext) -> dict[str, Any]:
        return {"samples": len(dataset)}


class SamplesJsonlFormat(DatasetFormat):
    """Reads and writes ``Dataset.save`` folders; keeps these tests independent of the built-in formats."""

    name = "samples_jsonl"
    Options = NoParams

    def read(self, root: Path, options: Params) -> ReadResult:
        return ReadResult(Dataset.load(root))

    def write(self, dataset: Dataset, dest: Path, options: Params) -> Dataset:
        dataset.save(dest)
        return dataset


class GeneratorPlugin:
    @hookimpl
    def register_generators(self, register: Callable[[type[Generator]], None]) -> None:
        register(CopyGenerator)
        register(FailingGenerator)


class EvaluatorAndFormatPlugin:
    @hookimpl
    def register_evaluators(self, register: Callable[[type[Evaluator]], None]) -> None:
        register(CountEvaluator)

    @hookimpl
    def register_dataset_formats(self, register: Callable[[type[DatasetFormat]], None]) -> None:
        register(SamplesJsonlFormat)


class CardPlugin:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @hookimpl
    def register_dataset_cards(self, register: Callable[[Path], None]) -> None:
        register(self.folder)


class LifecycleRecorder:
    """Records every lifecycle hook call, as a monitoring plugin would."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    @hookimpl
    def before_step(self, step: StepContext, kind: str, component: str, params: dict[str, Any], cached: bool) -> None:
        self.calls.append(("before_step", step.step, kind, component, cached))

    @hookimpl
    def after_step(
        self, step: StepContext, kind: str, component: str, dataset: Dataset, metrics: dict[str, Any]
    ) -> None:
        self.calls.append(("after_step", step.step, kind, component, len(dataset), metrics))

    @hookimpl
    def on_step_error(self, step: StepContext, kind: str, component: str, error: BaseException) -> None:
        self.calls.append(("on_step_error", step.step, kind, component, str(error)))


@pytest.fixture
def no_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEWGEN_LOAD_PLUGINS", "")


# --- registration and lookup -----------------------------------------------------------


@pytest.mark.usefixtures("no_entry_points")
def test_registered_classes_are_found_by_name() -> None:
    generators, others = GeneratorPlugin(), EvaluatorAndFormatPlugin()
    registry = load_registry(extra_plugins=[generators, others])

    assert registry.generator("copy_images") is CopyGenerator
    assert registry.evaluator("count_samples") is CountEvaluator
    assert registry.dataset_format("samples_jsonl") is SamplesJsonlFormat
    assert sorted(registry.generators) == ["always_fails", "copy_images"]
    assert registry.generators["copy_images"][0] == registry.pm.get_name(generators)
    assert registry.evaluators["count_samples"][0] == registry.pm.get_name(others)
    # Inline plugins come from no distribution, so their components are unversioned in the cache key.
    assert registry.plugin_version(registry.generators, "copy_images") == "unversioned"


@pytest.mark.usefixtures("no_entry_points")
def test_unknown_name_suggests_the_closest_one() -> None:
    registry = load_registry(extra_plugins=[GeneratorPlugin(), EvaluatorAndFormatPlugin()])
    with pytest.raises(UsageError, match=r"unknown generator 'copy_image' \(did you mean 'copy_images'\?\)"):
        registry.generator("copy_image")
    with pytest.raises(UsageError, match=r"did you mean 'samples_jsonl'"):
        registry.dataset_format("sample_jsonl")
    with pytest.raises(UsageError, match=r"unknown evaluator 'fid'.*available: count_samples"):
        registry.evaluator("fid")


@pytest.mark.usefixtures("no_entry_points")
def test_misspelt_hook_name_is_rejected() -> None:
    class Misspelt:
        @hookimpl
        def register_generator(self, register: Callable[[type[Generator]], None]) -> None:
            register(CopyGenerator)

    with pytest.raises(UsageError, match="register_generator"):
        load_registry(extra_plugins=[Misspelt()])


@pytest.mark.usefixtures("no_entry_points")
def test_same_name_from_two_plugins_is_an_error() -> None:
    class AnotherCopy(CopyGenerator):
        pass

    class Rival:
        @hookimpl
        def register_generators(self, register: Callable[[type[Generator]], None]) -> None:
            register(AnotherCopy)

    first, second = GeneratorPlugin(), Rival()
    registry = load_registry(extra_plugins=[first, second])
    with pytest.raises(UsageError, match="generator 'copy_images' is registered by both") as caught:
        registry.generator("copy_images")
    assert registry.pm.get_name(first) in str(caught.value)
    assert registry.pm.get_name(second) in str(caught.value)


@pytest.mark.usefixtures("no_entry_points")
def test_registering_an_instance_is_a_type_error() -> None:
    class RegistersInstance:
        @hookimpl
        def register_evaluators(self, register: Callable[[type[Evaluator]], None]) -> None:
            register(CountEvaluator(NoParams()))  # type: ignore[arg-type]

    registry = load_registry(extra_plugins=[RegistersInstance()])
    with pytest.raises(TypeError, match="registered an instance, not a class"):
        registry.evaluators  # noqa: B018 - the lookup is what registers


@pytest.mark.usefixtures("no_entry_points")
def test_describe_attributes_each_component_to_its_plugin(tmp_path: Path) -> None:
    generators, others, cards = GeneratorPlugin(), EvaluatorAndFormatPlugin(), CardPlugin(tmp_path)
    registry = load_registry(extra_plugins=[generators, others, cards])
    infos = {info.name: info for info in registry.describe()}

    assert set(infos) == {registry.pm.get_name(p) for p in (generators, others, cards)}
    generator_info = infos[registry.pm.get_name(generators)]
    assert generator_info.generators == ["always_fails", "copy_images"]
    assert generator_info.hooks == ["register_generators"]
    other_info = infos[registry.pm.get_name(others)]
    assert (other_info.evaluators, other_info.formats) == (["count_samples"], ["samples_jsonl"])
    assert other_info.hooks == ["register_dataset_formats", "register_evaluators"]
    card_info = infos[registry.pm.get_name(cards)]
    assert card_info.cards == [str(tmp_path)]
    assert registry.card_folders[str(tmp_path)][1] == tmp_path
    assert (card_info.distribution, card_info.version) == (None, None)
    assert json.loads(json.dumps(card_info.as_dict()))["cards"] == [str(tmp_path)]


# --- FEWGEN_LOAD_PLUGINS and FEWGEN_TRACE_PLUGINS --------------------------------------


def test_empty_load_list_loads_no_entry_point(no_entry_points: None) -> None:
    registry = load_registry()
    assert registry.describe() == []
    assert registry.generators == {}
    assert registry.formats == {}


def test_load_list_names_the_entry_points_to_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEWGEN_LOAD_PLUGINS", "fewgen.stats")
    registry = load_registry()
    (info,) = registry.describe()
    assert (info.name, info.distribution, info.evaluators) == ("fewgen.stats", "fewgen", ["dataset_stats"])
    assert list(registry.evaluators) == ["dataset_stats"]
    assert registry.generators == {}


def test_trace_prints_hook_calls(
    no_entry_points: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("FEWGEN_TRACE_PLUGINS", "1")
    recorder = LifecycleRecorder()
    registry = load_registry(extra_plugins=[recorder])
    ctx = StepContext(step="s", seed=0, work_dir=tmp_path, device="cpu", log=logging.getLogger("t"))
    registry.pm.hook.on_step_error(step=ctx, kind="generator", component="x", error=ValueError("boom"))
    assert "on_step_error" in capsys.readouterr().err
    assert recorder.calls == [("on_step_error", "s", "generator", "x", "boom")]


# --- lifecycle hooks, through the engine -----------------------------------------------


def write_recipe(tmp_path: Path, steps: str) -> Path:
    source = tmp_path / "source"
    samples = [
        Sample(
            id=f"img{i}",
            image=save_image(np.full((8, 8, 3), 40 * i, dtype=np.uint8), source / f"img{i}.png"),
            width=8,
            height=8,
            boxes=(Box(0, 1, 1, 5, 5),),
        )
        for i in range(2)
    ]
    Dataset(samples, ["part"], "tiny").save(source)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"name: hooks\ndevice: cpu\ndataset: {{format: samples_jsonl, root: {json.dumps(str(source))}}}\n"
        f"steps:\n{steps}output: {{format: samples_jsonl}}\n",
        encoding="utf-8",
    )
    return recipe


@pytest.mark.usefixtures("no_entry_points")
def test_lifecycle_hooks_see_every_step(tmp_path: Path) -> None:
    from fewgen.cache import StepCache
    from fewgen.engine import Engine
    from fewgen.recipe import load_recipe

    recorder = LifecycleRecorder()
    registry = load_registry(extra_plugins=[GeneratorPlugin(), EvaluatorAndFormatPlugin(), recorder])
    recipe = write_recipe(tmp_path, "  - generator: copy_images\n  - evaluator: count_samples\n")
    engine = Engine(registry, cache=StepCache(tmp_path / "cache"), show_progress=False, echo=lambda message: None)

    engine.run(load_recipe(recipe, registry), tmp_path / "out")
    assert recorder.calls == [
        ("before_step", "copy_images", "generator", "copy_images", False),
        ("after_step", "copy_images", "generator", "copy_images", 4, {}),
        ("before_step", "count_samples", "evaluator", "count_samples", False),
        ("after_step", "count_samples", "evaluator", "count_samples", 4, {"samples": 4}),
    ]

    recorder.calls.clear()
    engine.run(load_recipe(recipe, registry), tmp_path / "again")
    assert [call[0] for call in recorder.calls] == ["before_step", "after_step"] * 2
    assert all(call[4] is True for call in recorder.calls if call[0] == "before_step")


@pytest.mark.usefixtures("no_entry_points")
def test_on_step_error_is_called_when_a_step_fails(tmp_path: Path) -> None:
    from fewgen.cache import StepCache
    from fewgen.engine import Engine
    from fewgen.errors import StepFailed
    from fewgen.recipe import load_recipe

    recorder = LifecycleRecorder()
    registry = load_registry(extra_plugins=[GeneratorPlugin(), EvaluatorAndFormatPlugin(), recorder])
    recipe = write_recipe(tmp_path, "  - name: broken\n    generator: always_fails\n")
    engine = Engine(registry, cache=StepCache(tmp_path / "cache"), show_progress=False, echo=lambda message: None)

    with pytest.raises(StepFailed, match="the model ran out of memory"):
        engine.run(load_recipe(recipe, registry), tmp_path / "out")
    assert recorder.calls == [
        ("before_step", "broken", "generator", "always_fails", False),
        ("on_step_error", "broken", "generator", "always_fails", "the model ran out of memory"),
    ]
    assert not (tmp_path / "out").exists()


def test_broken_entry_point_plugins_are_left_out_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "misspelt_plugin.py").write_text(
        "from fewgen import hookimpl\n\n@hookimpl\ndef register_generator(register):\n    pass\n"
    )
    (tmp_path / "crashing_plugin.py").write_text("raise ImportError('needs a library that is missing')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fake = [
        importlib.metadata.EntryPoint(name="misspelt", value="misspelt_plugin", group="fewgen"),
        importlib.metadata.EntryPoint(name="crashing", value="crashing_plugin", group="fewgen"),
        *importlib.metadata.entry_points(group="fewgen", name="fewgen.stats"),
    ]
    monkeypatch.setattr("fewgen.plugins.importlib.metadata.entry_points", lambda group: fake)
    registry = load_registry()
    err = capsys.readouterr().err
    assert "plugin 'misspelt' not loaded" in err and "did you mean 'register_generators'" in err
    assert "plugin 'crashing' not loaded: needs a library that is missing" in err
    assert [info.name for info in registry.describe()] == ["fewgen.stats"]
    assert list(registry.evaluators) == ["dataset_stats"]


def test_registration_hooks_are_traced(
    no_entry_points: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FEWGEN_TRACE_PLUGINS", "1")
    registry = load_registry(extra_plugins=[GeneratorPlugin()])
    assert "CopyGenerator" in str(registry.generators)
    assert "register_generators" in capsys.readouterr().err


class BenchmarkPlugin:
    @hookimpl
    def register_benchmarks(self, register: Callable[[Any], None]) -> None:
        import click

        @click.command("echo-size")
        @click.option("--n", type=int, default=3)
        def echo_size(n: int) -> None:
            """Prints the size it was given."""
            click.echo(json.dumps({"n": n}))

        register(echo_size)


def test_register_benchmarks_adds_commands_under_fewgen_bench(no_entry_points: None) -> None:
    from click.testing import CliRunner

    from fewgen.cli import cli
    from fewgen.plugins import reset_registry

    registry = load_registry(extra_plugins=[BenchmarkPlugin()])
    reset_registry(registry)
    try:
        runner = CliRunner()
        listing = runner.invoke(cli, ["bench", "--help"])
        assert listing.exit_code == 0 and "echo-size" in listing.output
        result = runner.invoke(cli, ["bench", "echo-size", "--n", "5"])
        assert result.exit_code == 0 and json.loads(result.output) == {"n": 5}
        assert registry.describe()[0].benchmarks == ["echo-size"]
    finally:
        reset_registry(None)
