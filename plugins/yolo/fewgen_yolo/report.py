"""The ``yolo`` evaluator's HTML report: did the synthetic data help, how sure is that, and what it looks like.

:func:`write_report` writes ``report.html`` and its figures under ``report/`` beside it, referenced relatively so
the folder can be copied as a whole. The page is static (no JavaScript), uses no fonts beyond matplotlib's and
Pillow's bundled ones, and is byte-identical for the same inputs: no timestamps, figures chosen and named
deterministically.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from fewgen.dataset import Box, Dataset, Provenance, Sample
from fewgen.imageio import CorruptImage, load_rgb
from fewgen.measures import box_iou
from fewgen.verdicts import HELPS, HURTS
from fewgen_yolo.metrics import APResult
from fewgen_yolo.training import Prediction

# (key in the evaluator's per-model summaries, key in bootstrap_deltas' result)
METRICS = (("mAP50", "map50"), ("mAP50-95", "map50_95"))
# Predictions below this score are left out of the pictures (mAP itself uses all of them), as ultralytics does.
SHOWN_SCORE = 0.25
# Two detections of the same class overlapping at least this much count as the same detection when comparing models.
SAME_DETECTION_IOU = 0.5
THUMBNAIL_SIDE = 480
SYNTHETIC_EXAMPLES_PER_STEP = 2
SYNTHETIC_EXAMPLES_TOTAL = 8
BASELINE_COLOUR = "#7f7f7f"
# matplotlib's tab10 without its grey, in its order: distinct on screen and in print.
VARIANT_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")
# Cyan and orange stay distinguishable with the common colour-vision deficiencies.
TRUTH_COLOUR = (0, 200, 255)
PREDICTION_COLOUR = (255, 140, 0)

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { font-size: 1.1em; padding: 0.4em 0.8em; border-left: 4px solid #1f77b4; background: #f3f7fb; }
.up { color: #1a7f37; } .down { color: #b42318; }
.note { color: #555; font-size: 0.92em; }
.grid { display: flex; flex-wrap: wrap; gap: 1.2em; }
figure { margin: 0; }
.panels { display: flex; gap: 0.4em; align-items: flex-start; }
.panels div { text-align: center; font-size: 0.85em; }
figcaption { font-size: 0.85em; color: #444; max-width: 980px; word-break: break-all; }
.swatch { display: inline-block; width: 1em; height: 1em; vertical-align: middle; border: 2px solid; }
"""


@dataclass(frozen=True)
class _Figures:
    """The report's figure folder and the relative path the HTML uses for it."""

    folder: Path
    link: str

    def path(self, name: str) -> Path:
        target = self.folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def src(self, name: str) -> str:
        return escape(f"{self.link}/{name}")


def write_report(
    work_dir: Path,
    result: dict[str, Any],
    *,
    dataset: Dataset,
    test_samples: list[Sample],
    predictions: dict[str, list[Prediction]],
    ap_results: dict[str, APResult],
    images_shown: int,
) -> Path:
    """Write ``work_dir/report.html`` and its figures under ``work_dir/report/``; return the HTML path.

    ``result`` is the evaluator's result (settings, baseline, variants, bootstrap, crosscheck); ``predictions`` and
    ``ap_results`` hold each model's test predictions and AP of the first training seed, in ``test_samples`` order.
    """
    figures = _Figures(work_dir / "report", "report")
    # Figures of an earlier attempt would otherwise linger in the copied folder.
    shutil.rmtree(figures.folder, ignore_errors=True)
    figures.folder.mkdir(parents=True)
    sections = [
        _headline(result),
        _pairwise(result),
        _settings(result),
        _map_chart(result, figures),
        _pr_curves(ap_results, dataset.classes, result["settings"]["seeds"], _models(result), figures),
        _per_class_table(result, ap_results, dataset.classes),
        _crosscheck(result),
        _prediction_grid(test_samples, predictions, dataset, images_shown, figures),
        _provenance(dataset, result["settings"], figures),
    ]
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            '<head><meta charset="utf-8"><title>YOLO: baseline vs synthetic-data variants</title>',
            f"<style>{STYLE}</style></head>",
            "<body>",
            "<h1>Does the synthetic data help a YOLO detector?</h1>",
            *sections,
            "</body>",
            "</html>",
            "",
        ]
    )
    html_path = work_dir / "report.html"
    html_path.write_text(page, encoding="utf-8")
    return html_path


# --- numbers and words ----------------------------------------------------------------------------------------------


def _models(result: dict[str, Any]) -> list[str]:
    """The baseline, then the variants in the order the recipe named them."""
    return ["baseline", *result["variants"]]


def _colours(models: list[str]) -> dict[str, str]:
    variants = [model for model in models if model != "baseline"]
    return {"baseline": BASELINE_COLOUR} | {
        name: VARIANT_COLOURS[index % len(VARIANT_COLOURS)] for index, name in enumerate(variants)
    }


def _level(confidence: float) -> str:
    # Rounded so that 0.55 reads "55%", not "55.00000000000001%".
    return f"{round(confidence * 100, 6):g}%"


def _mean_std(entry: dict[str, float]) -> str:
    """'0.512', or '0.512 ± 0.010' when the evaluator had several seeds to take a std over."""
    text = f"{entry['mean']:.3f}"
    return f"{text} ± {entry['std']:.3f}" if "std" in entry else text


def _signed(value: float) -> str:
    css = "up" if value > 0 else "down" if value < 0 else ""
    return f'<span class="{css}">{value:+.3f}</span>' if css else f"{value:+.3f}"


def _delta_text(metric: dict[str, Any]) -> str:
    low, high = metric["delta_ci"]
    return f"{metric['delta']:+.3f} [{low:+.3f}, {high:+.3f}]"


def _verdict_cell(metric: dict[str, Any]) -> str:
    reading = metric["verdict"]["verdict"]
    css = "up" if reading == HELPS else "down" if reading == HURTS else ""
    return f'<span class="{css}">{escape(reading)}</span>' if css else escape(reading)


def _verdict(name: str, metric: dict[str, Any], confidence: float, test_images: int) -> str:
    reading = metric["verdict"]["verdict"]
    level = _level(confidence)
    if reading == HELPS:
        return f"the {level} CI lies above zero: the synthetic data of {name} helped"
    if reading == HURTS:
        return f"the {level} CI lies below zero: the synthetic data of {name} hurt"
    return f"the {level} CI includes zero: no measurable effect at this test-set size ({test_images} test images)"


def _table(header: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    """An HTML table; cells are HTML already (escape data before), columns from ``numeric_from`` right-aligned."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if index >= numeric_from else f"<td>{cell}</td>"
            for index, cell in enumerate(row)
        )
        + "</tr>\n"
        for row in rows
    )
    return f"<table>\n<tr>{head}</tr>\n{body}</table>"


# --- sections -------------------------------------------------------------------------------------------------------


def _headline(result: dict[str, Any]) -> str:
    settings, bootstrap = result["settings"], result["bootstrap"]
    confidence, test_images = bootstrap["confidence"], settings["test_images"]
    seeds = settings["seeds"]
    verdicts = "".join(
        f'<p class="verdict"><strong>{escape(name)}</strong>, mAP50: '
        f"{escape(_delta_text(entry['delta']['map50']))}; "
        f"{escape(_verdict(name, entry['delta']['map50'], confidence, test_images))}.</p>"
        for name, entry in result["variants"].items()
    )
    rows = [
        [
            "baseline",
            "(real only)",
            str(settings["train_images"]["real"]),
            str(settings["model_epochs"]["baseline"]),
            str(settings["optimizer_steps"]["baseline"]),
            _mean_std(result["baseline"]["mAP50"]),
            _mean_std(result["baseline"]["mAP50-95"]),
            "",
            "",
            "",
        ]
    ]
    for name, entry in result["variants"].items():
        rows.append(
            [
                escape(name),
                escape(", ".join(settings["variant_steps"][name])),
                str(settings["train_images"]["real"] + settings["variant_images"][name]),
                str(settings["model_epochs"][name]),
                str(settings["optimizer_steps"][name]),
                _mean_std(entry["mAP50"]),
                _mean_std(entry["mAP50-95"]),
                escape(_delta_text(entry["delta"]["map50"])),
                escape(_delta_text(entry["delta"]["map50_95"])),
                _verdict_cell(entry["delta"]["map50"]),
            ]
        )
    level = _level(confidence)
    header = [
        "model",
        "synthetic samples of",
        "training images",
        "epochs",
        "optimiser steps",
        "mAP50",
        "mAP50-95",
        f"&Delta; mAP50 [{level} CI]",
        f"&Delta; mAP50-95 [{level} CI]",
        "verdict (mAP50)",
    ]
    spread = f"mean ± std over {len(seeds)} training seeds" if len(seeds) > 1 else "one training seed"
    schedule = (
        "the same number of optimiser steps (models with fewer images train for more epochs)"
        if settings["schedule"] == "same_steps"
        else "the same number of epochs, so a model with more images also took more optimiser steps and part of "
        "its difference is training length"
    )
    return (
        "<h2>Headline</h2>"
        + verdicts
        + _table(header, rows, numeric_from=2)
        + f'<p class="note">Every model shares the model definition, settings and training seeds; only their '
        f"training images differ (real alone, or real + the synthetic samples of the steps named). All took "
        f"{schedule}. All are tested on the same {test_images} real test images ({settings['test_boxes']} boxes). "
        f"Model figures are the {spread}. The interval of each difference comes from a two-level bootstrap "
        f"({bootstrap['resamples']} replicates): the test images are redrawn with replacement, the same draw for "
        "every model, and each model's training seeds are redrawn with replacement; the verdict is 'helps' when "
        "the whole interval lies above zero, 'hurts' below, and 'no measurable effect' when it includes zero, "
        "which means this test set and these seeds cannot tell the models apart, not that they are equal. "
        f"Intervals cover {escape(settings['uncertainty'])}.</p>"
    )


def _pairwise(result: dict[str, Any]) -> str:
    """Every two variants against each other: which synthetic data helps more, on the same replicates."""
    if not result["pairwise"]:
        return ""
    level = _level(result["bootstrap"]["confidence"])
    rows = [
        [
            f"{escape(entry['variant'])} &minus; {escape(entry['versus'])}",
            escape(_delta_text(entry["map50"])),
            escape(_delta_text(entry["map50_95"])),
            _verdict_cell(entry["map50"]),
        ]
        for entry in result["pairwise"]
    ]
    header = ["comparison", f"&Delta; mAP50 [{level} CI]", f"&Delta; mAP50-95 [{level} CI]", "verdict (mAP50)"]
    return (
        "<h2>Variants against each other</h2>"
        + _table(header, rows)
        + '<p class="note">The same two-level bootstrap replicates as above; "helps" means the first variant\'s '
        "synthetic data helped more than the second's.</p>"
    )


def _settings(result: dict[str, Any]) -> str:
    settings = result["settings"]
    epochs = ", ".join(f"{escape(model)} {value}" for model, value in settings["model_epochs"].items())
    rows = [
        ["model", escape(str(settings["model"]))],
        ["schedule", escape(settings["schedule"])],
        ["epochs", epochs],
        ["image size", f"{settings['imgsz']} px"],
        ["batch", str(settings["batch"])],
        ["training seeds", escape(", ".join(str(seed) for seed in settings["seeds"]))],
        ["device", escape(str(settings["device"]))],
        ["real training images", str(settings["train_images"]["real"])],
        ["synthetic training images (all steps)", str(settings["train_images"]["synthetic"])],
        ["real validation images", str(settings["val_images"])],
        ["real test images", str(settings["test_images"])],
        ["test boxes", str(settings["test_boxes"])],
    ]
    return "<h2>Settings</h2>" + _table(["setting", "value"], rows, numeric_from=2)


def _map_chart(result: dict[str, Any], figures: _Figures) -> str:
    models = _models(result)
    colours = _colours(models)
    figure, grid = _figure(max(6.0, 1.2 * len(models) + 3.0), 3.6)
    axes = grid[0, 0]
    positions = np.arange(len(METRICS))
    width = 0.8 / len(models)
    first_variant = next(iter(result["variants"].values()))
    for index, model in enumerate(models):
        if model == "baseline":
            values = [first_variant["delta"][key]["baseline"] for _, key in METRICS]
            intervals = [first_variant["delta"][key]["baseline_ci"] for _, key in METRICS]
        else:
            delta = result["variants"][model]["delta"]
            values = [delta[key]["variant"] for _, key in METRICS]
            intervals = [delta[key]["variant_ci"] for _, key in METRICS]
        # A percentile interval need not contain the full-set value; never draw a negative error bar.
        errors = [
            [max(0.0, value - low) for value, (low, _) in zip(values, intervals, strict=True)],
            [max(0.0, high - value) for value, (_, high) in zip(values, intervals, strict=True)],
        ]
        offset = (index - (len(models) - 1) / 2) * width
        bars = axes.bar(positions + offset, values, width, yerr=errors, capsize=3, color=colours[model], label=model)
        axes.bar_label(bars, labels=[f"{value:.3f}" for value in values], label_type="center", fontsize=7)
    axes.set_xticks(positions, [label for label, _ in METRICS])
    # Headroom above 1 keeps a perfect score and its error bar clear of the legend.
    axes.set_ylim(0, 1.2)
    axes.set_yticks(np.linspace(0, 1, 6))
    axes.set_ylabel("mAP")
    bootstrap = result["bootstrap"]
    axes.set_title(
        f"{bootstrap['num_images']} real test images; error bars: {_level(bootstrap['confidence'])} bootstrap CI",
        fontsize=9,
    )
    axes.legend(loc="upper center", ncols=min(len(models), 5), fontsize=8)
    _save(figure, figures.path("map.png"))
    return (
        "<h2>mAP of every model</h2>"
        f'<img src="{figures.src("map.png")}" alt="bar chart of mAP50 and mAP50-95 of every model">'
    )


def _pr_curves(
    ap_results: dict[str, APResult], classes: list[str], seeds: list[int], models: list[str], figures: _Figures
) -> str:
    colours = _colours(models)
    shown = [
        cls
        for cls in range(len(classes))
        if any(ap_results[model].precision_at_recall[cls] is not None for model in models)
    ]
    if not shown:
        return "<h2>Precision-recall curves</h2><p>No class has ground truth in the test split.</p>"
    columns = min(4, len(shown))
    rows = math.ceil(len(shown) / columns)
    figure, grid = _figure(2.8 * columns, 2.5 * rows + 0.4, rows, columns)
    for axes, cls in zip(grid.flat, shown, strict=False):
        for model in models:
            result = ap_results[model]
            curve = result.precision_at_recall[cls]
            if curve is not None:
                label = f"{model} AP50 {result.ap50[cls]:.3f}"
                axes.plot(result.recall_points, curve, color=colours[model], label=label)
        # Class names are data: never let matplotlib read '$...$' in them as mathtext.
        title = f"{classes[cls]} ({ap_results['baseline'].gt_counts[cls]} boxes)"
        axes.set_title(title, fontsize=9, parse_math=False)
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1.05)
        axes.tick_params(labelsize=7)
        axes.legend(loc="lower left", fontsize=6)
    for axes in grid.flat[len(shown) :]:
        axes.set_visible(False)
    figure.supxlabel("recall", fontsize=9)
    figure.supylabel("precision (IoU 0.5)", fontsize=9)
    _save(figure, figures.path("pr_curves.png"))
    seed_note = f" of the first training seed ({seeds[0]})" if len(seeds) > 1 else ""
    return (
        "<h2>Precision-recall curves at IoU 0.5</h2>"
        f'<p class="note">One plot per class with boxes in the test split, every model{seed_note}. Precision is '
        "the interpolated (monotone) precision at each of the 101 COCO recall points; AP50 is the mean of the "
        "curve, so the area under it.</p>"
        f'<img src="{figures.src("pr_curves.png")}" alt="precision-recall curves per class">'
    )


def _per_class_table(result: dict[str, Any], ap_results: dict[str, APResult], classes: list[str]) -> str:
    baseline = result["baseline"]["per_class"]
    variants = result["variants"]
    rows, without_boxes = [], []
    for cls, name in enumerate(classes):
        if name not in baseline:
            without_boxes.append(escape(name))
            continue
        row = [escape(name), str(ap_results["baseline"].gt_counts[cls])]
        for metric in ("AP50", "AP50-95"):
            before = baseline[name][metric]
            row.append(_mean_std(before))
            for entry in variants.values():
                after = entry["per_class"][name][metric]
                row.append(f"{_mean_std(after)} ({_signed(after['mean'] - before['mean'])})")
        rows.append(row)
    header = ["class", "test boxes"]
    for metric in ("AP50", "AP50-95"):
        header += [f"{metric} baseline"] + [f"{metric} {escape(variant)} (difference)" for variant in variants]
    missing = (
        f'<p class="note">No boxes in the test split, so no AP: {", ".join(without_boxes)}.</p>'
        if without_boxes
        else ""
    )
    return "<h2>Average precision per class</h2>" + _table(header, rows) + missing


def _crosscheck(result: dict[str, Any]) -> str:
    rows = []
    for model in _models(result):
        check = result["crosscheck"][model]
        for label, key in METRICS:
            rows.append(
                [
                    escape(model),
                    label,
                    f"{check[key]:.4f}",
                    f"{check[f'coco_{key}']:.4f}",
                    f"{check[f'abs_diff_{key}']:.1g}",
                    f"{check['ultralytics'][label]:.4f}",
                ]
            )
    header = ["model", "metric", "this report", "pycocotools COCOeval", "|report &minus; COCOeval|", "ultralytics val"]
    seeds = result["settings"]["seeds"]
    return (
        "<h2>Cross-check of the mAP computation</h2>"
        f"<p>The same predictions of each model (training seed {seeds[0]}) scored three ways.</p>"
        + _table(header, rows, numeric_from=2)
        + '<p class="note">This report and pycocotools match detections to ground truth greedily in score order '
        "per class and average the interpolated precision at 101 recall points, so they should agree to rounding. "
        "ultralytics' own <code>val</code> runs its own inference and differs slightly by design: it assigns "
        "detections to ground truth one-to-one by descending IoU irrespective of score, integrates a linearly "
        "interpolated precision envelope with the trapezoidal rule instead of averaging step samples, and caps "
        "detections per image across classes rather than per class. A gap of a few hundredths is expected there; "
        "a large one would point to a problem.</p>"
    )


def _prediction_grid(
    test_samples: list[Sample],
    predictions: dict[str, list[Prediction]],
    dataset: Dataset,
    images_shown: int,
    figures: _Figures,
) -> str:
    heading = "<h2>Predictions on test images</h2>"
    if images_shown <= 0:
        return heading + "<p>No images were requested (report_images is 0).</p>"
    models = list(predictions)
    variants = [model for model in models if model != "baseline"]
    # Summed over the variants: how much each one's detections differ from the baseline's on the image.
    disagreements = [
        sum(_disagreement(predictions["baseline"][index], predictions[variant][index]) for variant in variants)
        for index in range(len(test_samples))
    ]
    # Most disagreement first; equal ones keep test-split order, so the choice is deterministic.
    chosen = sorted(range(len(test_samples)), key=lambda index: -disagreements[index])[:images_shown]
    items = []
    for rank, index in enumerate(chosen):
        sample = test_samples[index]
        panels = []
        for number, model in enumerate(models):
            prediction = predictions[model][index]
            kept = sum(score >= SHOWN_SCORE for score in prediction.scores)
            # Files are named by position, not by variant name, so no name from a recipe reaches a file name.
            picture = _picture(
                sample, prediction, dataset, figures, f"predictions/{rank:03d}-{number}.jpg", f"{model} predictions"
            )
            panels.append(f"<div>{picture}<br>{escape(model)}: {_count(kept, 'detection')}</div>")
        items.append(
            f'<figure><div class="panels">{"".join(panels)}</div>'
            f"<figcaption>{escape(sample.id)}: {_count(len(sample.boxes), 'ground-truth box', 'es')}; "
            f"{_count(disagreements[index], 'detection')} not shared with the baseline</figcaption></figure>"
        )
    return (
        heading + f'<p class="note">{len(chosen)} of {len(test_samples)} test images, those where the variants\' '
        f"detections differ most from the baseline's first (a detection is shared when the other model has one of "
        f"the same class overlapping it by IoU ≥ {SAME_DETECTION_IOU}). "
        f'<span class="swatch" style="border-color: {_css(TRUTH_COLOUR)}"></span> ground truth, '
        f'<span class="swatch" style="border-color: {_css(PREDICTION_COLOUR)}"></span> predictions with score '
        f"≥ {SHOWN_SCORE}, labelled with class and score.</p>" + _grid(items)
    )


def _provenance(dataset: Dataset, settings: dict[str, Any], figures: _Figures) -> str:
    heading = "<h2>Where the synthetic training data came from</h2>"
    synthetic = [(sample, sample.provenance) for sample in dataset if sample.provenance is not None]
    if not synthetic:
        return heading + "<p>The dataset holds no synthetic samples.</p>"
    # In dataset order, which is the order the steps ran in.
    groups: dict[tuple[str, str, int, str], list[Provenance]] = {}
    for sample, provenance in synthetic:
        groups.setdefault((provenance.generator, provenance.step, provenance.seed, sample.split), []).append(provenance)
    rows = [
        [
            escape(generator),
            escape(step),
            str(seed),
            escape(split),
            str(len(members)),
            str(len({p.parent for p in members if p.parent is not None})),
        ]
        for (generator, step, seed, split), members in groups.items()
    ]
    steps = dict.fromkeys((step, generator) for generator, step, _, _ in groups)
    made_by = ", ".join(f"{escape(step)} (generator {escape(generator)})" for step, generator in steps)
    return (
        heading + f"<p>Each variant trained on the synthetic images of its steps in the training split "
        f"({settings['train_images']['synthetic']} in all) besides the {settings['train_images']['real']} real "
        f"ones. The dataset's synthetic samples were made by the steps {made_by}:</p>"
        + _table(["generator", "step", "seed", "split", "samples", "parent images"], rows, numeric_from=4)
        + '<p class="note">Examples: each synthetic sample beside the image it was made from, '
        f'<span class="swatch" style="border-color: {_css(TRUTH_COLOUR)}"></span> its boxes.</p>'
        + _grid(_provenance_examples(synthetic, dataset, figures))
    )


def _provenance_examples(synthetic: list[tuple[Sample, Provenance]], dataset: Dataset, figures: _Figures) -> list[str]:
    """Figures of the first few synthetic samples of each step, each beside its parent image."""
    by_id = {sample.id: sample for sample in dataset}
    shown_per_step: dict[tuple[str, str], int] = {}
    items: list[str] = []
    for sample, provenance in synthetic:
        step = (provenance.generator, provenance.step)
        if shown_per_step.get(step, 0) >= SYNTHETIC_EXAMPLES_PER_STEP:
            continue
        shown_per_step[step] = shown_per_step.get(step, 0) + 1
        number = len(items)
        parent = by_id.get(provenance.parent) if provenance.parent is not None else None
        if parent is not None:
            parent_picture = _picture(
                parent, None, dataset, figures, f"synthetic/{number:03d}-parent.jpg", "parent image"
            )
            origin = f" from {escape(parent.id)}"
        elif provenance.parent is not None:
            parent_picture = "(parent not in the dataset)"
            origin = f" from {escape(provenance.parent)}"
        else:
            parent_picture, origin = "(no parent recorded)", ""
        synthetic_picture = _picture(
            sample, None, dataset, figures, f"synthetic/{number:03d}-synthetic.jpg", "synthetic sample"
        )
        items.append(
            f'<figure><div class="panels"><div>{parent_picture}<br>parent</div>'
            f"<div>{synthetic_picture}<br>synthetic</div></div>"
            f"<figcaption>{escape(sample.id)}{origin} (step {escape(provenance.step)}, seed {provenance.seed})"
            "</figcaption></figure>"
        )
        if len(items) >= SYNTHETIC_EXAMPLES_TOTAL:
            break
    return items


# --- pictures -------------------------------------------------------------------------------------------------------


def _figure(width: float, height: float, rows: int = 1, columns: int = 1) -> tuple[Figure, np.ndarray]:
    """A figure and its (rows, columns) array of axes."""
    # Its own Agg canvas instead of pyplot: no global backend switch inside the evaluator's process.
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, columns, squeeze=False)


def _save(figure: Figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path)


def _grid(items: list[str]) -> str:
    return '<div class="grid">\n' + "\n".join(items) + "\n</div>"


def _count(number: int, noun: str, plural_suffix: str = "s") -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}{plural_suffix}"


def _css(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def _shown(prediction: Prediction) -> list[tuple[float, list[float], int]]:
    """(score, box, class) of the detections with score >= SHOWN_SCORE, highest score first."""
    kept = [
        (score, box, cls)
        for box, score, cls in zip(prediction.boxes, prediction.scores, prediction.classes, strict=True)
        if score >= SHOWN_SCORE
    ]
    kept.sort(key=lambda item: -item[0])
    return kept


def _disagreement(first: Prediction, second: Prediction) -> int:
    """How many shown detections of either model have no counterpart in the other (greedy, in score order)."""
    mine, theirs = _shown(first), _shown(second)
    taken: set[int] = set()
    for _, box, cls in mine:
        best, best_iou = None, SAME_DETECTION_IOU
        for index, (_, other, other_cls) in enumerate(theirs):
            if index not in taken and other_cls == cls and (overlap := box_iou(box, other)) >= best_iou:
                best, best_iou = index, overlap
        if best is not None:
            taken.add(best)
    return len(mine) + len(theirs) - 2 * len(taken)


def _picture(
    sample: Sample, prediction: Prediction | None, dataset: Dataset, figures: _Figures, name: str, alt: str
) -> str:
    """An <img> of the sample's thumbnail with its boxes (and the prediction's), or a note if it cannot be read."""
    try:
        rgb = load_rgb(sample.image)
    except CorruptImage:
        return "(image could not be read)"
    image = Image.fromarray(rgb)
    # Fitted to the thumbnail box both ways: small images are enlarged so that boxes and labels stay legible.
    scale = min(THUMBNAIL_SIDE / image.width, THUMBNAIL_SIDE / image.height)
    if scale != 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(image)
    for box in sample.boxes:
        # Wider than prediction outlines, which are drawn over them: a matching prediction leaves a band visible.
        draw.rectangle(_scaled(box, scale), outline=TRUTH_COLOUR, width=4)
    if prediction is not None:
        font = ImageFont.load_default()
        # Pillow built without FreeType falls back to a bitmap font that can only draw Latin-1.
        latin1_only = not isinstance(font, ImageFont.FreeTypeFont)
        # Lowest score first, so the labels of the surest detections end up on top.
        for score, box, cls in reversed(_shown(prediction)):
            corners = [value * scale for value in box]
            draw.rectangle(corners, outline=PREDICTION_COLOUR, width=2)
            label = f"{dataset.class_name(cls)} {score:.2f}"
            if latin1_only:
                label = label.encode("latin-1", "replace").decode("latin-1")
            left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
            text_height = bottom - top + 2
            # Above the box where there is room, inside it otherwise; shifted left rather than cut off at the edge.
            origin = (
                max(0.0, min(corners[0] + 1, image.width - (right - left) - 1)),
                corners[1] - text_height if corners[1] >= text_height else corners[1] + 1,
            )
            draw.rectangle(draw.textbbox(origin, label, font=font), fill=PREDICTION_COLOUR)
            draw.text(origin, label, fill=(0, 0, 0), font=font)
    image.save(figures.path(name), quality=85)
    return f'<img src="{figures.src(name)}" alt="{escape(alt)}" width="{image.width}" height="{image.height}">'


def _scaled(box: Box, scale: float) -> list[float]:
    return [box.x1 * scale, box.y1 * scale, box.x2 * scale, box.y2 * scale]
