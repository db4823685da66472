"""Parameters that name files or folders (fewgen.paths): resolved like dataset.root, their contents in the cache key."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from pydantic import Field, ValidationError

from fewgen.api import Generator, InputFile, InputFolder, Params, StepContext
from fewgen.dataset import Dataset, Sample
from fewgen.errors import UsageError
from fewgen.hookspecs import hookimpl
from fewgen.paths import content_fingerprint, input_paths
from fewgen.recipe import load_recipe
from fewgen.testing import make_native_dataset, run_recipe


class StampParams(Params):
    stamps: InputFolder = Field(description="Folder of stamp files.")
    extra: InputFile | None = Field(None, description="One more stamp file.")
    others: list[InputFile] = Field(default_factory=list, description="More stamp files.")
    label: str = Field("x", description="Not a path, though it could read like one.")


class StampGenerator(Generator):
    """Counts its runs, and writes nothing: what matters here is whether the engine runs it."""

    name = "stamp"
    Params = StampParams
    calls = 0

    def generate(self, dataset: Dataset, ctx: StepContext) -> Iterable[Sample]:
        type(self).calls += 1
        return []


class StampPlugin:
    @hookimpl
    def register_generators(self, register: Callable[[type[Generator]], None]) -> None:
        register(StampGenerator)


RECIPE = """\
name: stamped
seed: 0
device: cpu
dataset: {format: fewgen, root: data}
steps:
  - name: stamp
    generator: stamp
    params: PARAMS
output: {format: fewgen}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    make_native_dataset(tmp_path / "data", count=4)
    (tmp_path / "stamps" / "inner").mkdir(parents=True)
    (tmp_path / "stamps" / "a.txt").write_text("a")
    (tmp_path / "stamps" / "inner" / "b.txt").write_text("b")
    (tmp_path / "extra.txt").write_text("extra")
    StampGenerator.calls = 0
    return tmp_path


def run(project: Path, params: str, out: str = "out", overrides: list[str] | None = None):
    # One cache for every run of a test: whether the step is recomputed is the point.
    return run_recipe(
        project,
        RECIPE.replace("PARAMS", params),
        out=out,
        overrides=overrides,
        extra_plugins=[StampPlugin()],
        cache_dir=project / "cache",
    )


def test_recipe_paths_are_relative_to_the_recipe_not_the_current_folder(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from fewgen.plugins import load_registry

    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    (project / "recipe.yaml").write_text(RECIPE.replace("PARAMS", "{stamps: stamps, extra: extra.txt, label: a/b}"))
    loaded = load_recipe(project / "recipe.yaml", load_registry(extra_plugins=[StampPlugin()]))
    params = loaded.step_params[0]
    assert params.stamps == (project / "stamps").resolve()
    assert params.extra == (project / "extra.txt").resolve()
    assert params.label == "a/b"
    # The resolved recipe (written beside every run) names them absolutely.
    assert loaded.resolved()["steps"][0]["params"]["stamps"] == str((project / "stamps").resolve())


def test_set_paths_are_relative_to_the_current_folder(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fewgen.plugins import load_registry

    here = project / "here"
    (here / "stamps2").mkdir(parents=True)
    monkeypatch.chdir(here)
    (project / "recipe.yaml").write_text(RECIPE.replace("PARAMS", "{stamps: stamps}"))
    registry = load_registry(extra_plugins=[StampPlugin()])
    loaded = load_recipe(project / "recipe.yaml", registry, ["steps.stamp.params.stamps=./stamps2"])
    assert loaded.step_params[0].stamps == (here / "stamps2").resolve()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("{stamps: missing}", "no such folder"),
        ("{stamps: extra.txt}", "no such folder"),
        ("{stamps: stamps, extra: stamps}", "no such file"),
        ("{stamps: stamps, others: [extra.txt, nope.txt]}", "no such file"),
    ],
)
def test_a_missing_path_is_a_one_line_recipe_error(project: Path, params: str, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        run(project, params)
    text = str(raised.value)
    assert message in text and "\n" not in text
    assert f"{project / 'recipe.yaml'}:8" in text  # the line of the step's params
    assert not (project / "out").exists()


def test_changing_the_files_under_a_path_recomputes_the_step(project: Path) -> None:
    params = "{stamps: stamps, extra: extra.txt, others: [extra.txt]}"
    run(project, params, "first")
    run(project, params, "second")
    assert StampGenerator.calls == 1  # unchanged files: restored from the cache
    (project / "stamps" / "inner" / "b.txt").write_text("B")  # same size, other content
    os.utime(project / "stamps" / "inner" / "b.txt", ns=(0, 0))
    run(project, params, "third")
    assert StampGenerator.calls == 2
    (project / "stamps" / "c.txt").write_text("c")  # a file added
    run(project, params, "fourth")
    assert StampGenerator.calls == 3
    (project / "extra.txt").write_text("other")  # the file parameter's content
    run(project, params, "fifth")
    assert StampGenerator.calls == 4
    run(project, params, "sixth")
    assert StampGenerator.calls == 4


def test_input_paths_finds_every_path_parameter_and_only_those(project: Path) -> None:
    params = StampParams(stamps=project / "stamps", others=[project / "extra.txt"], label=str(project / "extra.txt"))
    assert input_paths(params) == {"stamps": [project / "stamps"], "others": [project / "extra.txt"]}


def test_content_fingerprint_names_files_by_relative_path_and_hash(project: Path) -> None:
    fingerprint = content_fingerprint(project / "stamps")
    assert [(name, size) for name, size, _ in fingerprint] == [("a.txt", 1), ("inner/b.txt", 1)]
    assert fingerprint != content_fingerprint(project / "extra.txt")
    (project / "stamps" / "a.txt").write_text("z")
    assert content_fingerprint(project / "stamps")[0][2] != fingerprint[0][2]


def test_built_in_code_a_relative_path_is_relative_to_the_current_folder(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    assert StampParams(stamps=Path("stamps")).stamps == (project / "stamps").resolve()
    with pytest.raises(ValidationError, match="no such folder"):
        StampParams(stamps=Path("nowhere"))
