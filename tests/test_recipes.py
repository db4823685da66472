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
