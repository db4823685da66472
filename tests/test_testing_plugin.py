"""fewgen.testing as a pytest plugin: what a third-party plugin's test suite gets by installing fewgen."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from fewgen.testing import make_native_dataset, run_recipe

STATS_RECIPE = """\
name: tiny
seed: 1
dataset:
  format: fewgen
  root: data
steps:
  - name: stats
    evaluator: dataset_stats
output:
  format: fewgen
"""

THIRD_PARTY_TESTS = """\
import pytest
import torch

BEFORE = torch.get_num_threads()


def test_the_ini_sets_one_thread(torch_threads):
    assert torch_threads == 1 and torch.get_num_threads() == 1


@pytest.mark.torch_threads(2)
def test_a_marker_overrides_the_ini():
    assert torch.get_num_threads() == 2


@pytest.mark.torch_threads(None)
def test_none_leaves_torch_alone():
    assert torch.get_num_threads() == BEFORE


def test_the_count_is_restored_after_each_test():
    assert torch.get_num_threads() == 1


def test_fewgen_run_runs_a_recipe_in_tmp_path(fewgen_run, tmp_path):
    from fewgen.testing import make_native_dataset

    make_native_dataset(tmp_path / "data", count=4)
    result = fewgen_run(RECIPE)
    assert result.metrics["stats"]["summary"]["samples"] == 4
    assert (tmp_path / "out" / "manifest.json").is_file()
"""


def run_pytest(folder: Path, ini: str) -> subprocess.CompletedProcess[str]:
    (folder / "pytest.ini").write_text(ini)
    tests = THIRD_PARTY_TESTS.replace("RECIPE)", f"'''{STATS_RECIPE}''')")
    (folder / "test_third_party.py").write_text(tests)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_entry_point_gives_any_suite_the_thread_option_marker_and_run_fixture(tmp_path: Path) -> None:
    # A suite of its own (its own ini), so this checks the installed entry point, not our pyproject.
    outcome = run_pytest(tmp_path, "[pytest]\nfewgen_torch_threads = 1\n")
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr
    assert "5 passed" in outcome.stdout


def test_without_the_option_torch_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_alone.py").write_text(
        textwrap.dedent(
            """\
            import sys

            def test_torch_is_not_even_imported(torch_threads):
                assert torch_threads is None and "torch" not in sys.modules
            """
        )
    )
    outcome = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr


def test_run_recipe_writes_the_recipe_and_uses_a_cache_per_output(tmp_path: Path) -> None:
    make_native_dataset(tmp_path / "data", count=8)
    first = run_recipe(tmp_path, STATS_RECIPE)
    second = run_recipe(tmp_path, STATS_RECIPE, out="again", overrides=["seed=2"])
    assert first.metrics["stats"]["summary"]["samples"] == 8 == second.metrics["stats"]["summary"]["samples"]
    assert (tmp_path / "recipe.yaml").read_text() == STATS_RECIPE
    assert (tmp_path / "cache-out").is_dir() and (tmp_path / "cache-again").is_dir()
