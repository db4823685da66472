"""Downstream detection for ``fewgen bench psgan --detect-epochs N``: does PS-GAN beat pasting real crops?

Realism scores say whether painted objects look like the class; the question a user asks is
whether they help a detector more than the obvious rival, pasting real instances
(``copy_paste``, Ghiasi et al. 2021). This builds a recipe over the dataset card's own
splits: a ``psgan`` step and a ``copy_paste`` step (learned placement, the same
``per_image``), both drawing from the real training images, and a ``yolo`` step that trains
the baseline and the variants ``psgan`` and ``copy_paste`` on the chosen class only, with
equal optimiser steps and several training seeds, and tests all of them on the card's real
test split. The recipe is kept beside the run, so the measurement can be rerun as it is.

The generator and evaluator are found by name through the registry, as in any recipe: the
``copy_paste`` and ``yolo`` plugins must be installed, and nothing here imports them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def detection_recipe(
    data: Path,
    card: str,
    class_id: int,
    class_name: str,
    *,
    preset: str,
    iterations: int,
    min_height: float,
    per_image: int,
    epochs: int,
    imgsz: int,
    seeds: list[int],
    seed: int,
    device: str = "auto",
) -> dict[str, Any]:
    """The recipe the downstream comparison runs (plain data, written beside the run)."""
    return {
        "name": "bench-psgan-detect",
        "seed": seed,
        "device": device,
        # One thread per step: the detectors' figures then do not depend on the machine's load.
        "threads": 1,
        "dataset": {"card": card, "root": str(data.resolve())},
        "steps": [
            {
                "name": "psgan",
                "generator": "psgan",
                "draw_from": "real",
                "params": {
                    "class": class_id,
                    "preset": preset,
                    "iterations": iterations,
                    "per_image": per_image,
                    "min_height": min_height,
                },
            },
            {
                "name": "paste",
                "generator": "copy_paste",
                "draw_from": "real",
                "params": {
                    "classes": [class_id],
                    "per_image": per_image,
                    "placement": "learned",
                    "blend": "feather",
                },
            },
            {
                "name": "detect",
                "evaluator": "yolo",
                "params": {
                    "model": "yolo11n.yaml",
                    "epochs": epochs,
                    "imgsz": imgsz,
                    "batch": 8,
                    "seeds": seeds,
                    "classes": [class_name],
                    "variants": {"psgan": ["psgan"], "copy_paste": ["paste"]},
                    "report_images": 8,
                },
            },
        ],
        "output": {"format": "fewgen"},
    }


def downstream_detection(recipe: dict[str, Any], out_dir: Path | None, echo: Callable[[str], None]) -> dict[str, Any]:
    """Run the recipe through the engine; the detection figures, delta, CI and verdict per variant."""
    from fewgen.engine import Engine
    from fewgen.plugins import get_registry
    from fewgen.recipe import load_recipe

    target = out_dir or Path(tempfile.mkdtemp(prefix="fewgen-bench-psgan-")) / "run"
    target.parent.mkdir(parents=True, exist_ok=True)
    recipe_path = target.parent / f"{target.name}.recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    registry = get_registry()
    result = Engine(registry, echo=echo).run(load_recipe(recipe_path, registry), target, overwrite=True)
    metrics = result.metrics["detect"]
    figures = ("mAP50", "mAP50-95")
    return {
        "recipe": str(recipe_path),
        "run_dir": str(result.out_dir),
        "settings": metrics["settings"],
        "baseline": {k: metrics["baseline"][k] for k in figures},
        "variants": {
            name: {
                **{k: entry[k] for k in figures},
                "delta_map50": entry["delta"]["map50"]["delta"],
                "delta_map50_ci": entry["delta"]["map50"]["delta_ci"],
                "verdict": entry["verdict"]["verdict"],
            }
            for name, entry in metrics["variants"].items()
        },
        "psgan_minus_copy_paste_map50": round(
            metrics["variants"]["psgan"]["mAP50"]["mean"] - metrics["variants"]["copy_paste"]["mAP50"]["mean"], 6
        ),
    }
