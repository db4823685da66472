from __future__ import annotations

import json
from pathlib import Path

import pytest

from fewgen.errors import UsageError
from fewgen.recipe import apply_overrides, load_recipe, parse_yaml, recipe_json_schema

RECIPE = """\
name: tiny
seed: 3
dataset:
  format: fewgen
  root: data
steps:
  - name: bright
    generator: brighten
    params:
      offset: 20
  - evaluator: dataset_stats
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str, registry, overrides: list[str] | None = None) -> str:
    with pytest.raises(UsageError) as info:
        load_recipe(write(tmp_path, text), registry, overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_valid_recipe_resolves_defaults_and_plugin_params(tmp_path, registry):
    loaded = load_recipe(write(tmp_path, RECIPE), registry)
    assert [s.name for s in loaded.recipe.steps] == ["bright", "dataset_stats"]
    resolved = loaded.resolved()
    assert resolved["steps"][0]["params"] == {"offset": 20, "fraction": 1.0}
    assert "evaluator" not in resolved["steps"][0]
    assert resolved["steps"][1]["params"]["image_stats"] is True
    assert resolved["dataset"]["root"] == str((tmp_path / "data").resolve())
    assert resolved["steps"][0]["splits"] == ["train"]


def test_misspelt_top_level_key_names_key_and_line(tmp_path, registry):
    message = error_of(tmp_path, RECIPE.replace("seed: 3", "sead: 3"), registry)
    assert message.startswith(f"{tmp_path / 'recipe.yaml'}:2:")
    assert "'sead'" in message and "did you mean 'seed'" in message


def test_misspelt_key_inside_a_step_names_its_path(tmp_path, registry):
    message = error_of(tmp_path, RECIPE.replace("    params:", "    parmas:"), registry)
    assert ":9:" in message and "steps[0].parmas" in message and "did you mean 'params'" in message


def test_misspelt_plugin_parameter_is_caught_before_running(tmp_path, registry):
    message = error_of(tmp_path, RECIPE.replace("offset: 20", "ofset: 20"), registry)
    assert ":10:" in message and "steps[0].params.ofset" in message and "did you mean 'offset'" in message


def test_wrong_type_names_key_and_line(tmp_path, registry):
    message = error_of(tmp_path, RECIPE.replace("offset: 20", "offset: lots"), registry)
    assert ":10:" in message and "steps[0].params.offset" in message and "integer" in message


def test_unknown_generator_suggests_closest(tmp_path, registry):
    message = error_of(tmp_path, RECIPE.replace("generator: brighten", "generator: brigten"), registry)
    assert ":8:" in message and "unknown generator 'brigten'" in message and "did you mean 'brighten'" in message


def test_malformed_yaml_reports_line(tmp_path, registry):
    message = error_of(tmp_path, RECIPE.replace("  root: data", "  root: [data"), registry)
    assert "malformed YAML" in message


def test_missing_file(tmp_path, registry):
    with pytest.raises(UsageError, match="file not found"):
        load_recipe(tmp_path / "nope.yaml", registry)


def test_step_needs_exactly_one_kind(tmp_path, registry):
    message = error_of(tmp_path, RECIPE.replace("  - evaluator: dataset_stats", "  - name: x"), registry)
    assert "exactly one of 'generator' or 'evaluator'" in message and ":11:" in message


def test_duplicate_step_names_rejected(tmp_path, registry):
    text = RECIPE + "  - evaluator: dataset_stats\n"
    assert "two steps are named 'dataset_stats'" in error_of(tmp_path, text, registry)


def test_overrides_address_steps_by_name_and_parse_values(tmp_path, registry):
    loaded = load_recipe(
        write(tmp_path, RECIPE),
        registry,
        ["steps.bright.params.fraction=0.5", "seed=9", "steps.1.params.image_stats=false"],
    )
    assert loaded.step_params[0].fraction == 0.5
    assert loaded.recipe.seed == 9
    assert loaded.step_params[1].image_stats is False


def test_override_path_relative_to_current_folder(tmp_path, registry, monkeypatch):
    (tmp_path / "elsewhere" / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "elsewhere")
    loaded = load_recipe(write(tmp_path, RECIPE), registry, ["dataset.root=./data"])
    assert loaded.resolve_path(loaded.recipe.dataset.root) == (tmp_path / "elsewhere" / "data").resolve()


def test_override_errors(tmp_path, registry):
    assert "expected KEY=VALUE" in error_of(tmp_path, RECIPE, registry, ["seed"])
    assert "no step 'brite'" in error_of(tmp_path, RECIPE, registry, ["steps.brite.params.offset=1"])
    assert "did you mean 'bright'" in error_of(tmp_path, RECIPE, registry, ["steps.brigt.params.offset=1"])
    message = error_of(tmp_path, RECIPE, registry, ["steps.bright.params.offset=-4"])
    assert "steps[0].params.offset" in message


def test_apply_overrides_creates_missing_mappings():
    data: dict = {"steps": [{"generator": "g"}]}
    apply_overrides(data, ["steps.g.params.copies=2", "output.format=coco"])
    assert data == {"steps": [{"generator": "g", "params": {"copies": 2}}], "output": {"format": "coco"}}


def test_parse_yaml_records_key_lines():
    _, lines = parse_yaml("a: 1\nb:\n  c: 2\n  d:\n    - x: 1\n", "t")
    assert lines[("a",)] == 1 and lines[("b", "c")] == 3 and lines[("b", "d", 0, "x")] == 5


def test_schema_lists_plugin_params(registry):
    schema = recipe_json_schema(registry)
    text = json.dumps(schema)
    assert schema["title"] == "fewgen recipe"
    assert "brighten" in text and "offset" in text and "dataset_stats" in text


def test_dataset_and_output_names_are_checked_before_running(tmp_path, registry):
    assert ":4: unknown dataset format 'fewgn'" in error_of(
        tmp_path, RECIPE.replace("format: fewgen", "format: fewgn"), registry
    )
    bad_output = RECIPE + "output:\n  format: coco\n  options: {colour: red}\n"
    assert ":14: unknown key 'output.options.colour'" in error_of(tmp_path, bad_output, registry)
    missing_root = RECIPE.replace("root: data", "root: nowhere")
    assert f":5: dataset root not found: {tmp_path / 'nowhere'}" in error_of(tmp_path, missing_root, registry)
    bad_card = RECIPE.replace("  format: fewgen", "  card: street_sampel")
    message = error_of(tmp_path, bad_card, registry)
    assert ":4: unknown dataset card 'street_sampel'" in message and "did you mean 'street_sample'" in message
