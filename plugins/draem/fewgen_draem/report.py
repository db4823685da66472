"""The ``anomaly`` evaluator's HTML report: how well defects are found and where the detector looks.

``report.html`` and its pictures under ``report/`` beside it (relative links, so the folder can
be copied whole): DRAEM against the statistical baseline (AUROC deltas, intervals, verdicts),
the metrics tables of both overall and per defect type, ROC curves of both (image and pixel
level), image-score distributions per type with the best-F1 threshold, the training summary,
and heat-map overlays of chosen test images (their ground-truth outline in cyan). Static page,
no JavaScript, same bytes for the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from fewgen.dataset import Sample
from fewgen.verdicts import describe

METRIC_COLUMNS = (
    ("image_auroc", "image AUROC"),
    ("image_ap", "image AP"),
    ("image_f1", "image F1"),
    ("pixel_auroc", "pixel AUROC"),
    ("pixel_ap", "pixel AP"),
    ("pixel_f1", "pixel F1"),
    ("aupro", "AUPRO (FPR≤0.3)"),
)
OUTLINE = np.array([0, 220, 255], dtype=np.uint8)
HEAT_OPACITY = 0.55

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #555; font-size: 0.92em; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; }
figcaption { font-size: 0.85em; color: #444; max-width: 520px; word-break: break-all; }
"""


@dataclass(frozen=True)
class ScoredImages:
    """The test images as the detector saw them, with its output and the ground truth."""

    samples: list[Sample]
    labels: list[str]
    images: np.ndarray  # (N, S, S, 3) uint8
    maps: np.ndarray  # (N, S, S) float in [0, 1]
    masks: np.ndarray  # (N, S, S) bool
    has_truth: np.ndarray  # (N,) bool
    scores: np.ndarray  # (N,)
    baseline_maps: np.ndarray  # (N, S, S) float, the statistical baseline's (unbounded) maps
    baseline_scores: np.ndarray  # (N,)


RocPoints = Callable[[np.ndarray, np.ndarray], list[list[float]]]


def write_report(
    path: Path,
    result: dict[str, Any],
    baseline: dict[str, Any],
    comparison: dict[str, Any],
    training: dict[str, Any],
    settings: dict[str, Any],
    scored: ScoredImages,
    good_label: str,
    shown: int,
    roc_points: RocPoints,
) -> None:
    folder = path.parent / "report"
    folder.mkdir(parents=True, exist_ok=True)
    sections = [
        f"<h1>Anomaly detection: DRAEM ({escape(str(settings.get('preset')))})</h1>",
        _headline(result, baseline),
        "<h2>DRAEM against the statistical baseline</h2>",
        _comparison(comparison, baseline),
        "<h2>Metrics: DRAEM</h2>",
        _metrics_table(result),
        f"<h2>Metrics: statistical baseline, {escape(str(baseline.get('method')))}</h2>",
        _metrics_table(baseline),
        '<p class="note">Per-type rows: that type\'s images against all good test images. Pixel metrics use the '
        f"{int(result.get('pixel_images', 0))} test images with pixel ground truth, at "
        f"{escape(str(settings.get('size')))}x{escape(str(settings.get('size')))} pixels. AUPRO is the mean "
        "per-region overlap integrated up to a 30 % pixel false-positive rate, divided by 0.3.</p>",
        "<h2>ROC curves</h2>",
        _roc_figure(scored, good_label, roc_points, folder / "roc.png"),
        "<h2>Image scores by type</h2>",
        _score_figure(scored, result.get("image_f1_threshold"), folder / "scores.png"),
        "<h2>Heat maps</h2>",
        _overlays(scored, good_label, shown, result.get("image_f1_threshold"), folder),
        "<h2>Training</h2>",
        _key_values({**training, "settings": settings}),
    ]
    page = (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>DRAEM anomaly report</title>\n"
        f"<style>{STYLE}</style></head>\n<body>\n"
    )
    path.write_text(page + "\n".join(sections) + "\n</body></html>\n", encoding="utf-8")


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else escape(str(value))


def _headline(result: dict[str, Any], baseline: dict[str, Any]) -> str:
    return (
        f"<p>{result.get('images', 0)} test images, {result.get('anomalous', 0)} of them defective. "
        f"Image AUROC <b>{_number(result.get('image_auroc'))}</b>, pixel AUROC "
        f"<b>{_number(result.get('pixel_auroc'))}</b>, AUPRO <b>{_number(result.get('aupro'))}</b> "
        f"(statistical baseline: image AUROC {_number(baseline.get('image_auroc'))}, "
        f"pixel AUROC {_number(baseline.get('pixel_auroc'))}).</p>"
    )


COMPARED = (("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC"))


def _comparison(comparison: dict[str, Any], baseline: dict[str, Any]) -> str:
    """One row per compared metric: both figures, the delta with its interval, and the verdict."""
    level = round(100 * comparison["confidence"])
    header = (
        f"<tr><th>metric</th><th>DRAEM</th><th>baseline</th><th>DRAEM - baseline [{level} % CI]</th>"
        "<th>verdict</th></tr>"
    )
    rows = []
    for key, title in COMPARED:
        entry = comparison.get(key)
        if entry is None:
            rows.append(f'<tr><td>{title}</td><td colspan="4">undefined on this test set (one class only)</td></tr>')
            continue
        low, high = entry["delta_ci"]
        rows.append(
            f'<tr><td>{title}</td><td class="num">{_number(entry["draem"])}</td>'
            f'<td class="num">{_number(entry["baseline"])}</td>'
            f'<td class="num">{entry["delta"]:+.3f} [{low:+.3f}, {high:+.3f}]</td>'
            f"<td><b>{escape(entry['verdict']['verdict'])}</b></td></tr>"
        )
    lines = [
        f"<li>{title}: {escape(describe(comparison[key]['verdict']))}</li>"
        for key, title in COMPARED
        if comparison.get(key) is not None
    ]
    return (
        "<table>\n"
        + header
        + "\n"
        + "\n".join(rows)
        + "\n</table>\n"
        + ("<ul>" + "".join(lines) + "</ul>\n" if lines else "")
        + f'<p class="note">Baseline: {escape(str(baseline.get("method")))}, no learning: the mean and standard '
        f"deviation of every pixel feature over the good training images (std floor {baseline.get('std_floor')}), "
        f"map = mean over channels of the squared z-score blurred with sigma {baseline.get('smoothing_sigma')} px, "
        "image score = the maximum of the 21x21 mean-filtered map, as for DRAEM. Verdict: helps when the whole "
        "interval of the delta lies above 0, hurts when below, otherwise no measurable effect. Interval: "
        f"{comparison['resamples']} paired bootstrap resamples of the test images (the same draw for both "
        "methods; at the pixel level an image is drawn with all its pixels); it covers "
        f"{escape(comparison['ci_covers'])}.</p>"
    )


def _metrics_table(result: dict[str, Any]) -> str:
    header = "<tr><th>type</th><th>images</th>" + "".join(f"<th>{escape(t)}</th>" for _, t in METRIC_COLUMNS)
    rows = [("all", result), *sorted(result.get("per_type", {}).items())]
    body = []
    for name, values in rows:
        cells = "".join(f'<td class="num">{_number(values.get(key))}</td>' for key, _ in METRIC_COLUMNS)
        body.append(f'<tr><td>{escape(name)}</td><td class="num">{values.get("images", "")}</td>{cells}</tr>')
    return "<table>\n" + header + "</tr>\n" + "\n".join(body) + "\n</table>"


def _figure(width: float, height: float, columns: int = 1) -> tuple[Figure, Any]:
    # Its own Agg canvas, not pyplot: no process-wide backend switch inside an evaluator.
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(1, columns, squeeze=False)[0]


def _roc_figure(scored: ScoredImages, good_label: str, roc_points: RocPoints, path: Path) -> str:
    figure, (image_axes, pixel_axes) = _figure(10, 4.4, 2)
    good = np.array([label == good_label for label in scored.labels])
    for name in ["all", *sorted(set(scored.labels) - {good_label})]:
        chosen = np.ones_like(good) if name == "all" else good | (np.array(scored.labels) == name)
        truth = ~good[chosen]
        if truth.all() or not truth.any():
            continue
        points = np.array(roc_points(scored.scores[chosen], truth))
        image_axes.plot(points[:, 0], points[:, 1], label=name, linewidth=2.2 if name == "all" else 1.2)
        if name == "all":
            points = np.array(roc_points(scored.baseline_scores[chosen], truth))
            image_axes.plot(points[:, 0], points[:, 1], label="all, baseline", color="#555", linestyle="--")
    image_axes.set_title("image level")
    with_truth = scored.has_truth
    pixel_truth = scored.masks[with_truth].ravel()
    if pixel_truth.any() and not pixel_truth.all():
        points = np.array(roc_points(scored.maps[with_truth].ravel(), pixel_truth))
        pixel_axes.plot(points[:, 0], points[:, 1], label="all pixels", linewidth=2.2)
        points = np.array(roc_points(scored.baseline_maps[with_truth].ravel(), pixel_truth))
        pixel_axes.plot(points[:, 0], points[:, 1], label="all pixels, baseline", color="#555", linestyle="--")
        pixel_axes.axvline(0.3, color="#999", linestyle=":", label="AUPRO limit (FPR 0.3)")
    pixel_axes.set_title("pixel level")
    for axes in (image_axes, pixel_axes):
        axes.plot([0, 1], [0, 1], color="#ccc", linestyle="--", linewidth=1)
        axes.set_xlabel("false-positive rate")
        axes.set_ylabel("true-positive rate")
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1.01)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="lower right", fontsize=8)
    return _save(figure, path)


def _score_figure(scored: ScoredImages, threshold: float | None, path: Path) -> str:
    names = sorted(set(scored.labels))
    figure, (axes,) = _figure(8, 0.5 + 0.45 * len(names))
    labels = np.array(scored.labels)
    spread = np.random.default_rng(0)  # vertical jitter only; fixed so the picture is reproducible
    for row, name in enumerate(names):
        values = scored.scores[labels == name]
        axes.scatter(values, row + spread.uniform(-0.2, 0.2, len(values)), s=10, alpha=0.7)
    if threshold is not None:
        axes.axvline(
            threshold, color="#b42318", linestyle="--", linewidth=1, label=f"best-F1 threshold {threshold:.3f}"
        )
        axes.legend(loc="upper left", fontsize=8)
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("image score (max of the 21x21-averaged anomaly map)")
    return _save(figure, path)


def _save(figure: Figure, path: Path) -> str:
    figure.tight_layout()
    figure.savefig(path)
    return f'<img src="report/{path.name}" alt="{escape(path.stem)}">'


def pick_examples(scored: ScoredImages, good_label: str, count: int) -> list[int]:
    """Indices worth looking at: per defect type the best- and worst-scored images, then the highest-scored good ones.

    Taken round-robin so every type shows up before any type shows twice.
    """
    if count <= 0:
        return []
    queues: list[list[int]] = []
    for name in sorted(set(scored.labels) - {good_label}):
        members = sorted((i for i, label in enumerate(scored.labels) if label == name), key=lambda i: -scored.scores[i])
        # Alternate the most and the least confident: what it gets right and what it misses.
        interleaved = [member for pair in zip(members, reversed(members), strict=True) for member in pair]
        queues.append(list(dict.fromkeys(interleaved)))
    goods = [i for i, label in enumerate(scored.labels) if label == good_label]
    queues.append(sorted(goods, key=lambda i: -scored.scores[i]))  # false alarms first
    chosen: list[int] = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return chosen


def _overlays(scored: ScoredImages, good_label: str, count: int, threshold: float | None, folder: Path) -> str:
    figures = []
    for index in pick_examples(scored, good_label, count):
        picture = np.concatenate(
            [
                outlined(scored.images[index], scored.masks[index]),
                heat_overlay(scored.images[index], scored.maps[index]),
            ],
            axis=1,
        )
        name = f"overlay_{index:05d}.png"
        Image.fromarray(picture).save(folder / name)
        verdict = ""
        if threshold is not None:
            verdict = " (flagged)" if scored.scores[index] >= threshold else " (passed)"
        caption = (
            f"{escape(scored.labels[index])}, score {scored.scores[index]:.3f}{verdict}<br>"
            f"{escape(scored.samples[index].id)}"
        )
        figures.append(
            f'<figure><img src="report/{name}" alt="{escape(name)}"><figcaption>{caption}</figcaption></figure>'
        )
    if not figures:
        return '<p class="note">No images chosen (report_images: 0).</p>'
    return (
        '<p class="note">Left: the test image, ground-truth outline in cyan. Right: the predicted anomaly '
        "probability as a heat map (dark blue 0, yellow 1).</p>\n"
        + '<div class="grid">\n'
        + "\n".join(figures)
        + "\n</div>"
    )


def heat_colours(values: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 colours of values in [0, 1] on a blue-magenta-yellow ramp (ordered in lightness)."""
    stops = np.array([[13, 8, 135], [126, 3, 168], [204, 71, 120], [248, 149, 64], [240, 249, 33]], dtype=float)
    position = np.clip(values, 0, 1) * (len(stops) - 1)
    low = np.floor(position).astype(int).clip(0, len(stops) - 2)
    weight = (position - low)[..., None]
    return (stops[low] * (1 - weight) + stops[low + 1] * weight).round().astype(np.uint8)


def heat_overlay(image: np.ndarray, anomaly_map: np.ndarray) -> np.ndarray:
    colours = heat_colours(anomaly_map).astype(float)
    return (image.astype(float) * (1 - HEAT_OPACITY) + colours * HEAT_OPACITY).round().astype(np.uint8)


def outlined(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with the mask's boundary pixels painted (a pixel of the mask with a 4-neighbour outside it)."""
    if not mask.any():
        return image
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    result = image.copy()
    result[mask & ~inner] = OUTLINE
    return result


def _key_values(values: dict[str, Any]) -> str:
    rows = []
    for key, value in values.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        rows.append(f"<tr><th>{escape(key)}</th><td>{escape(str(value))}</td></tr>")
    return "<table>\n" + "\n".join(rows) + "\n</table>"
