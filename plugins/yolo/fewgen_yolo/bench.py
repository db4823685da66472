"""``fewgen bench detect``: does augmentation help a detector trained on a few real images?

Builds a recipe (kept beside the run folder, so the measurement can be rerun as it is):
N real training images from a dataset, one ``augment`` step per preset, and the ``yolo``
evaluator; runs it through the engine on the bench's device and thread count. The figures
are the baseline's and each variant's mAP, the delta, its bootstrap CI and verdict, and the
training times; the target is the detection issue's, a positive mAP50 delta whose 95 % CI
excludes zero, for every variant.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import click
import yaml

from fewgen.bench import Bench, BenchResult, bench_command

FIGURES = ("mAP50", "mAP50-95")
DELTA_KEYS = (("mAP50", "map50"), ("mAP50-95", "map50_95"))


def _key_value(items: tuple[str, ...], option: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        pairs[key] = value
    return pairs


@bench_command("detect", device=True)
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
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Run folder (default: a temporary one).")
def detect(
    bench: Bench,
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
    out_dir: str | None,
) -> BenchResult:
    """Baseline vs augmented YOLO on a real held-out split: mAP50, mAP50-95, delta with CI and verdict.

    --seed is the recipe's seed (which real images are kept, the augmentation); --seeds are the
    detectors' training seeds. --device and --threads become the recipe's, so every step runs on them.
    """
    from fewgen.engine import Engine
    from fewgen.plugins import get_registry
    from fewgen.recipe import load_recipe
    from fewgen.verdicts import HELPS

    data = Path(root).resolve()
    limit: dict[str, int] = {"train": train_images, "val": val_images}
    if test_images:
        limit["test"] = test_images
    recipe: dict[str, Any] = {
        "name": "bench-detect",
        "seed": bench.seed,
        "device": bench.device,
        "threads": bench.threads,
        "dataset": {"card": card, "root": str(data), "limit": limit},
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
    result = Engine(registry, echo=bench.say).run(loaded, target, overwrite=True)
    metrics = result.metrics["detect"]
    variants = {
        variant: {
            **{k: entry[k] for k in FIGURES},
            "delta": {
                name: {
                    "delta": entry["delta"][key]["delta"],
                    "ci": entry["delta"][key]["delta_ci"],
                    "share_positive": entry["delta"][key]["share_delta_positive"],
                    "verdict": entry["delta"][key]["verdict"]["verdict"],
                }
                for name, key in DELTA_KEYS
            },
        }
        for variant, entry in metrics["variants"].items()
    }
    figures = {
        "baseline": {k: metrics["baseline"][k] for k in FIGURES},
        "variants": variants,
        # Training times are run-specific, so the engine keeps them in the manifest, not in metrics.json.
        "timing": next(
            (step["timing"].get("reported") for step in result.manifest["steps"] if step.get("name") == "detect"), None
        ),
        "total_seconds": round(time.perf_counter() - started, 1),
        "run_dir": str(result.out_dir),
        "recipe": str(recipe_path),
        "report": str(result.out_dir / "reports" / "detect" / "report.html"),
    }
    bench.say(f"report: {figures['report']}")
    helps = all(entry["delta"]["mAP50"]["verdict"] == HELPS for entry in variants.values())
    return BenchResult(
        figures,
        target={
            "mAP50_delta_verdict": HELPS,
            "variants": "every",
            "what": "each variant's mAP50 delta over the baseline has its 95 % CI above zero",
        },
        met=helps,
        # What the evaluator resolved from the options (epochs per model under same_steps, images per split).
        settings={"data": str(data), "evaluator": metrics["settings"]},
    )
