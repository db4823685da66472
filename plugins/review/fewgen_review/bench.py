"""``fewgen bench review-export``: how long exporting a run of N samples with boxes to FiftyOne takes.

The run folder is synthetic (written directly, not by running a recipe, so only the export is
timed): N samples with a few boxes each, a fifth of them synthetic with provenance, a tenth in
the test split with a baseline and an augmented model's predictions in the yolo evaluator's
format. Images are a few small files shared by all samples: the export never opens them.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from fewgen.bench import Bench, BenchResult, bench_command
from fewgen.dataset import Box, Dataset, Provenance, Sample
from fewgen.imageio import save_image

WIDTH, HEIGHT = 320, 240
CLASSES = ["person", "car"]
STEP, EVALUATOR = "night", "detect"


def write_synthetic_run(folder: Path, samples: int, boxes_per_sample: int = 4, seed: int = 0) -> Path:
    """A complete run folder of ``samples`` samples, as `fewgen run` lays it out; returns it."""
    rng = np.random.default_rng(seed)
    images = [
        save_image(rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8), folder / "dataset" / "images" / f"{i}.jpg")
        for i in range(8)
    ]
    made: list[Sample] = []
    for index in range(samples):
        corners = rng.uniform(0, 1, (boxes_per_sample, 4)) * [WIDTH / 2, HEIGHT / 2, WIDTH / 2, HEIGHT / 2]
        boxes = tuple(
            Box(int(rng.integers(len(CLASSES))), x, y, x + w + 4, y + h + 4) for x, y, w, h in corners.tolist()
        )
        synthetic = index % 5 == 4
        made.append(
            Sample(
                id=f"{STEP}/img{index - 1}" if synthetic else f"img{index}",
                image=images[index % len(images)],
                width=WIDTH,
                height=HEIGHT,
                split="train" if synthetic else ("test", "train", "val", "train", "train")[index % 10 // 2],
                boxes=boxes,
                domain="night" if synthetic else "day",
                provenance=Provenance("augment", STEP, seed, f"img{index - 1}") if synthetic else None,
            )
        )
    dataset = Dataset(made, CLASSES, "bench")
    dataset.save(folder / "dataset")
    test = [s for s in made if s.split == "test"]
    for model, jitter in (("baseline", 6.0), ("augmented", 3.0)):
        records = []
        for sample in test:
            # Shifted and resized like a detector's guess, but still a box (x2 > x1, y2 > y1).
            shifted = []
            for b in sample.boxes:
                x1, y1 = np.array([b.x1, b.y1]) + rng.normal(0, jitter, 2)
                shifted.append([x1, y1, x1 + b.width * rng.uniform(0.8, 1.2), y1 + b.height * rng.uniform(0.8, 1.2)])
            records.append(
                {
                    "sample": sample.id,
                    "image": str(sample.image),
                    "boxes": [[round(float(v), 3) for v in box] for box in shifted],
                    "scores": [round(float(s), 6) for s in rng.uniform(0.1, 1.0, len(shifted))],
                    "classes": [b.cls for b in sample.boxes],
                }
            )
        path = folder / "reports" / EVALUATOR / "predictions" / f"{model}-seed0.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records) + "\n", encoding="utf-8")
    manifest = {
        "fewgen": "bench",
        "recipe": {"path": "", "resolved": {"name": "review-export-bench"}},
        "seed": seed,
        "steps": [
            {"name": STEP, "kind": "generator", "component": "augment", "params": {}},
            {"name": EVALUATOR, "kind": "evaluator", "component": "yolo", "params": {}},
        ],
        "dataset": dataset.summary(),
        "timing": {"started": None, "seconds": 0.0},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest) + "\n", encoding="utf-8")
    (folder / "metrics.json").write_text(json.dumps({EVALUATOR: {"settings": {"seeds": [0]}}}) + "\n")
    return folder


@bench_command("review-export")
@click.option("--samples", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--boxes", "boxes_per_sample", type=click.IntRange(min=0), default=4, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--keep", is_flag=True, help="Keep the benchmark's FiftyOne dataset (deleted by default).")
def review_export(bench: Bench, samples: int, boxes_per_sample: int, batch_size: int, keep: bool) -> BenchResult:
    """Time exporting a synthetic run of SAMPLES samples with boxes to FiftyOne (--seed draws the boxes)."""
    import fiftyone as fo

    from fewgen_review.convert import export_run
    from fewgen_review.runfolder import read_run

    with tempfile.TemporaryDirectory(prefix="fewgen-review-bench-") as tmp:
        bench.say(f"writing a synthetic run of {samples} samples")
        folder = write_synthetic_run(Path(tmp) / "review-export-bench", samples, boxes_per_sample, bench.seed)
        fo.list_datasets()  # connects to (or starts) the database: not part of the export's time
        bench.say("exporting it to FiftyOne")
        started = time.perf_counter()
        run = read_run(folder)
        read_seconds = time.perf_counter() - started
        summary = export_run(run, f"review-export-bench-{samples}", overwrite=True, batch_size=batch_size)
        total = time.perf_counter() - started
        if not keep:
            fo.delete_dataset(summary.name)
    figures = {
        "samples": summary.samples,
        "ground_truth_boxes": summary.boxes,
        "test_samples_with_predictions": len(run.detections[0].by_sample),
        "seconds": {"read_run": round(read_seconds, 3), **summary.seconds, "end_to_end": round(total, 3)},
        "samples_per_second": round(summary.samples / total, 1),
        "views": summary.views,
        "fiftyone": fo.__version__,
    }
    return BenchResult(figures)
