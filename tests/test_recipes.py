"""Every recipe that ships must validate against the installed plugins."""

from __future__ import annotations

from pathlib import Path

import pytest

from fewgen.plugins import load_registry
from fewgen.recipe import load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_shipped_recipe_validates(recipe: Path, tmp_path: Path) -> None:
    registry = load_registry()
    text = recipe.read_text()
    # Recipes for public datasets take the dataset's location from --set; any folder validates.
    overrides = [] if "root:" in text or "street_sample" in text else [f"dataset.root={tmp_path}"]
    loaded = load_recipe(recipe, registry, overrides)
    assert loaded.recipe.steps, "a recipe without steps does nothing"


def test_demo_recipe_and_pcb_recipe_ship():
    assert {p.stem for p in RECIPES} >= {"night_pedestrians", "pcb_defects"}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_shipped_recipe_trainings_end_by_count_not_by_clock(recipe: Path, tmp_path: Path) -> None:
    """A wall-clock budget trains less on a busy machine, so its metrics would depend on the load."""
    registry = load_registry()
    text = recipe.read_text()
    overrides = [] if "root:" in text or "street_sample" in text else [f"dataset.root={tmp_path}"]
    loaded = load_recipe(recipe, registry, overrides)
    for step, params in zip(loaded.recipe.steps, loaded.step_params, strict=True):
        budgets = {name: value for name, value in params.model_dump().items() if "minutes" in name}
        assert not any(value for name, value in budgets.items() if name != "checkpoint_minutes"), (step.name, budgets)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_shipped_recipes_pin_the_thread_count(recipe: Path, tmp_path: Path) -> None:
    """`threads: auto` follows the load, and conv results depend on the count: shipped metrics must not."""
    text = recipe.read_text()
    overrides = [] if "root:" in text or "street_sample" in text else [f"dataset.root={tmp_path}"]
    loaded = load_recipe(recipe, load_registry(), overrides)
    assert isinstance(loaded.recipe.threads, int)
    assert all(step.threads is None or isinstance(step.threads, int) for step in loaded.recipe.steps)
