from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from fewgen.cli import cli
from fewgen.testing import make_native_dataset

RECIPE = """\
name: tiny
dataset:
  format: fewgen
  root: data
steps:
  - evaluator: dataset_stats
output:
  format: fewgen
"""


def test_validate_misspelt_key_exits_2_with_one_line(tmp_path: Path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.replace("steps:", "stepz:"))
    # A real process: the exit code and stderr are what a user sees.
    proc = subprocess.run([sys.executable, "-m", "fewgen.cli", "validate", str(recipe)], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"{recipe}:5: unknown key 'stepz'" in lines[0] and "did you mean 'steps'" in lines[0]


def test_run_then_validate_and_user_errors(tmp_path: Path, monkeypatch):
    make_native_dataset(tmp_path / "data")
    (tmp_path / "r.yaml").write_text(RECIPE)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["run", "r.yaml", "--out", "out", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "manifest.json").is_file()
    again = runner.invoke(cli, ["run", "r.yaml", "--out", "out"])
    assert again.exit_code == 2 and "not empty" in again.output
    missing = runner.invoke(cli, ["run", "nope.yaml"])
    assert missing.exit_code == 2 and "file not found" in missing.output
    assert "Traceback" not in missing.output
    valid = runner.invoke(cli, ["validate", "r.yaml", "--set", "seed=4"])
    assert valid.exit_code == 0 and "valid recipe 'tiny'" in valid.output


def test_plugins_json_lists_builtins_with_versions():
    result = CliRunner().invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0
    plugins = {p["name"]: p for p in json.loads(result.output)}
    assert plugins["fewgen.stats"]["evaluators"] == ["dataset_stats"]
    assert plugins["fewgen.stats"]["version"]
    assert "yolo" in plugins["fewgen.formats"]["formats"]


def test_schema_is_json():
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "fewgen recipe"


def test_installed_console_script_works_outside_the_repository(tmp_path: Path):
    # Run as a user does: the console script, from a folder that holds no source tree.
    script = Path(sys.executable).parent / "fewgen"
    proc = subprocess.run([str(script), "plugins", "--json"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    names = {plugin["name"] for plugin in json.loads(proc.stdout)}
    assert {"fewgen.formats", "fewgen.cards", "fewgen.stats", "augment", "yolo"} <= names
    cards = subprocess.run([str(script), "cards"], capture_output=True, text=True, cwd=tmp_path)
    assert cards.returncode == 0 and "street_sample" in cards.stdout


def test_plugins_json_lists_the_yolo_evaluator_and_its_benchmark():
    result = CliRunner().invoke(cli, ["plugins", "--json"])
    plugins = {p["name"]: p for p in json.loads(result.output)}
    assert plugins["yolo"]["evaluators"] == ["yolo"]
    assert plugins["yolo"]["benchmarks"] == ["detect"]
    assert plugins["yolo"]["distribution"] == "fewgen-yolo" and plugins["yolo"]["version"]
