"""``fewgen bench detect``: does augmentation help a detector trained on a few real images?

Builds a recipe (kept in the run folder, so the measurement can be rerun as it is):
N real training images from a dataset, one ``augment`` step per preset, and the ``yolo``
evaluator; runs it through the engine; prints one JSON object with both models' mAP,
the delta and its bootstrap CI, and the training times.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import yaml


def _key_value(items: tuple[str, ...], option: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        pairs[key] = value
    return pairs


@click.command("detect")
@click.option("--data", "root", required=True, type=click.Path(exists=True, file_okay=False), help="Dataset folder.")
@click.option("--card", required=True, help="Dataset card describing its layout (see `fewgen cards`).")
@click.option("--train-images", type=int, default=20, show_default=True, help="Real training images kept.")
@click.option("--epochs", type=int, default=30, show_default=True)
@click.option("--imgsz", type=int, default=320, show_default=True)
@click.option(
    "--schedule",
    type=click.Choice(["same_epochs", "same_steps"]),
    default="same_steps",
    show_default=True,
    help="same_steps trains smaller training sets proportionally longer (the same optimiser steps for every model).",
)
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--model", default="yolo11n.yaml", show_default=True, help="Model YAML or local .pt weights.")
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated training seeds.")
@click.option(
    "--preset",
    "presets",
    multiple=True,
    default=("geometric",),
    show_default=True,
    help="augment preset; repeat for several (each is its own step, drawing from the real images).",
)
@click.option("--copies", type=int, default=3, show_default=True, help="Augmented copies of each training image.")
@click.option("--where", multiple=True, metavar="KEY=VALUE", help="Keep only samples with this label/domain/split.")
@click.option("--test-images", type=int, help="Cap on real test images (all by default).")
@click.option(
    "--val-images",
    type=int,
    default=20,
    show_default=True,
    help="Cap on validation images (ultralytics validates every epoch; on an untrained model that is slow).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Recipe seed (sample choice, augmentation).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Run folder (default: a temporary one).")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON result on stdout.")
def detect(
    root: str,
    card: str,
    train_images: int,
    epochs: int,
    imgsz: int,
    schedule: str,
    batch: int,
    model: str,
    seeds: str,
    presets: tuple[str, ...],
    copies: int,
    where: tuple[str, ...],
    test_images: int | None,
    val_images: int,
    seed: int,
    out_dir: str | None,
    as_json: bool,
) -> None:
    """Baseline vs augmented YOLO on a real held-out split: mAP50, mAP50-95, delta with CI and verdict."""
    from fewgen.engine import Engine
    from fewgen.plugins import get_registry
    from fewgen.recipe import load_recipe

    limit: dict[str, int] = {"train": train_images, "val": val_images}
    if test_images:
        limit["test"] = test_images
    recipe: dict[str, Any] = {
        "name": "bench-detect",
        "seed": seed,
        "dataset": {"card": card, "root": str(Path(root).resolve()), "limit": limit},
        "steps": [
            {
                "name": f"augment_{preset}",
                "generator": "augment",
                "draw_from": "real",
                "params": {"preset": preset, "copies": copies},
            }
            for preset in presets
        ]
        + [
            {
                "name": "detect",
                "evaluator": "yolo",
                "params": {
                    "model": model,
                    "epochs": epochs,
                    "schedule": schedule,
                    "imgsz": imgsz,
                    "batch": batch,
                    "seeds": [int(s) for s in seeds.split(",")],
                    "report_images": 8,
                },
            }
        ],
        "output": {"format": "fewgen"},
    }
    if where:
        recipe["dataset"]["where"] = _key_value(where, "--where")
    target = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="fewgen-bench-detect-")) / "run"
    target.parent.mkdir(parents=True, exist_ok=True)
    recipe_path = target.parent / f"{target.name}.recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    registry = get_registry()
    loaded = load_recipe(recipe_path, registry)
    started = time.perf_counter()
    result = Engine(registry, echo=lambda message: click.echo(message, err=True)).run(loaded, target, overwrite=True)
    metrics = result.metrics["detect"]
    summary = {
        "benchmark": "detect",
        "data": str(Path(root).resolve()),
        "card": card,
        "presets": list(presets),
        "copies": copies,
        "settings": metrics["settings"],
        "baseline": {k: metrics["baseline"][k] for k in ("mAP50", "mAP50-95")},
        "variants": {
            variant: {
                **{k: entry[k] for k in ("mAP50", "mAP50-95")},
                "delta": {
                    name: {
                        "delta": entry["delta"][key]["delta"],
                        "ci": entry["delta"][key]["delta_ci"],
                        "share_positive": entry["delta"][key]["share_delta_positive"],
                        "verdict": entry["delta"][key]["verdict"]["verdict"],
                    }
                    for name, key in (("mAP50", "map50"), ("mAP50-95", "map50_95"))
                },
            }
            for variant, entry in metrics["variants"].items()
        },
        # Training times are run-specific, so the engine keeps them in the manifest, not in metrics.json.
        "timing": next(
            (step["timing"].get("reported") for step in result.manifest["steps"] if step.get("name") == "detect"), None
        ),
        "total_seconds": round(time.perf_counter() - started, 1),
        "run_dir": str(result.out_dir),
        "recipe": str(recipe_path),
    }
    if not as_json:
        click.echo(f"report: {result.out_dir / 'reports' / 'detect' / 'report.html'}", err=True)
    click.echo(json.dumps(summary))
