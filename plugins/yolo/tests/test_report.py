"""Tests of fewgen_yolo.report: the page states the numbers, the CI and the verdict, and is safe and reproducible."""

from __future__ import annotations

import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from fewgen.dataset import Box, Dataset, Provenance, Sample

try:
    from fewgen_yolo import evaluator, metrics, report, training
except ImportError:  # the plugin is not installed yet: import it from its source folder
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from fewgen_yolo import evaluator, metrics, report, training

Prediction = training.Prediction

# Class 1 is named like an HTML tag to check escaping; class 2 has no test boxes, so no AP.
CLASSES = ["person", "<b>", "bike & co"]
AGREE, DIFFER, WIDE, LOW = "test/agree", "test/<i>differ", "test/wide", "test/low"


@dataclass
class Run:
    """Everything write_report takes, as the evaluator would pass it."""

    result: dict[str, Any]
    dataset: Dataset
    test_samples: list[Sample]
    predictions: dict[str, list[Prediction]]
    ap_results: dict[str, metrics.APResult]

    def write(self, work_dir: Path, images_shown: int = 4) -> str:
        path = report.write_report(
            work_dir,
            self.result,
            dataset=self.dataset,
            test_samples=self.test_samples,
            predictions=self.predictions,
            ap_results=self.ap_results,
            images_shown=images_shown,
        )
        assert path == work_dir / "report.html"
        return path.read_text(encoding="utf-8")


def sample(
    root: Path, sample_id: str, split: str, boxes: list[Box], size: tuple[int, int] = (64, 48), **extra: Any
) -> Sample:
    """A sample with a plain image of ``size`` written under ``root``."""
    image = root / (re.sub(r"[^a-z]+", "_", sample_id) + ".png")
    Image.new("RGB", size, (90, 100, 160)).save(image)
    return Sample(sample_id, image, size[0], size[1], split, tuple(boxes), **extra)


def build_dataset(root: Path) -> Dataset:
    test = [
        sample(root, AGREE, "test", [Box(0, 5, 5, 30, 40)]),
        sample(root, DIFFER, "test", [Box(1, 10, 10, 50, 40)]),
        sample(root, WIDE, "test", [Box(0, 100, 50, 300, 180), Box(1, 500, 20, 700, 150)], size=(1000, 200)),
        sample(root, LOW, "test", [Box(0, 20, 8, 44, 40)]),
    ]
    train = [
        sample(root, "train/street", "train", [Box(0, 4, 4, 20, 30)]),
        sample(root, "train/road", "train", [Box(1, 30, 10, 60, 40)]),
    ]
    synthetic = [
        sample(
            root,
            "night/train/street",
            "train",
            [Box(0, 4, 4, 20, 30)],
            provenance=Provenance("augment", "night", 0, "train/street"),
        ),
        sample(
            root,
            "night/train/road",
            "train",
            [Box(1, 30, 10, 60, 40)],
            provenance=Provenance("augment", "night", 0, "train/road"),
        ),
        sample(root, "fog/gone", "train", [], provenance=Provenance("augment", "fog", 7, "gone")),
    ]
    return Dataset(train + synthetic + test, list(CLASSES), "tiny")


def predictions_for(seed: int) -> dict[str, list[Prediction]]:
    """Baseline confuses the '<b>' class and has a confident false positive; augmented finds everything;
    the 'copy' variant predicts exactly what the baseline does."""
    low_image_baseline = Prediction([[40, 30, 60, 46], [20, 8, 44, 40]], [0.95, 0.3], [0, 0])
    if seed == 1:  # a second training seed whose baseline lacks the false positive
        low_image_baseline = Prediction([[20, 8, 44, 40]], [0.3], [0])
    baseline = [
        Prediction([[5, 5, 30, 40]], [0.9], [0]),
        Prediction([[10, 10, 50, 40]], [0.8], [0]),
        Prediction([[100, 50, 300, 180]], [0.7], [0]),
        low_image_baseline,
    ]
    return {
        "baseline": baseline,
        "augmented": [
            Prediction([[5, 5, 30, 40]], [0.9], [0]),
            Prediction([[10, 10, 50, 40]], [0.9], [1]),
            Prediction([[100, 50, 300, 180], [500, 20, 700, 150]], [0.95, 0.85], [0, 1]),
            Prediction([[20, 8, 44, 40], [0, 0, 5, 5]], [0.6, 0.1], [0, 0]),
        ],
        "copy": list(baseline),
    }


MODELS = ("baseline", "augmented", "copy")


def build_run(root: Path, seeds: list[int]) -> Run:
    """A run shaped like the evaluator's, with real metrics on the made-up predictions."""
    dataset = build_dataset(root)
    test_samples = dataset.split("test")
    truths = [
        metrics.GroundTruth(s.id, [[b.x1, b.y1, b.x2, b.y2] for b in s.boxes], [b.cls for b in s.boxes])
        for s in test_samples
    ]
    matches: dict[str, list[list[metrics.ImageMatches]]] = {model: [] for model in MODELS}
    per_seed: dict[str, list[dict[str, Any]]] = {model: [] for model in MODELS}
    for seed in seeds:
        for model, found in predictions_for(seed).items():
            detections = [metrics.Detections(p.boxes, p.scores, p.classes) for p in found]
            image_matches = [metrics.match_image(t, d) for t, d in zip(truths, detections, strict=True)]
            matches[model].append(image_matches)
            ap = metrics.average_precision(image_matches, len(CLASSES))
            per_seed[model].append({"seed": seed, **evaluator._ap_summary(ap, CLASSES)})
    first = predictions_for(seeds[0])
    crosscheck = {
        model: {
            "ultralytics": {"mAP50": 0.61, "mAP50-95": 0.42},
            **metrics.coco_crosscheck(
                truths, [metrics.Detections(p.boxes, p.scores, p.classes) for p in first[model]], CLASSES
            ),
        }
        for model in MODELS
    }
    variants = {"augmented": ["night", "fog"], "copy": ["night"]}
    settings = {
        "model": "yolo11n.yaml",
        "epochs": 3,
        "schedule": "same_steps",
        "model_epochs": {"baseline": 6, "augmented": 3, "copy": 3},
        "optimizer_steps": {"baseline": 6, "augmented": 6, "copy": 6},
        "imgsz": 320,
        "batch": 2,
        "seeds": seeds,
        "device": "cpu",
        "train_images": {"real": 2, "synthetic": 3},
        "variant_steps": variants,
        "variant_images": {"augmented": 3, "copy": 2},
        "val_images": 0,
        "test_images": len(test_samples),
        "test_boxes": sum(len(s.boxes) for s in test_samples),
        "uncertainty": evaluator.uncertainty_note(seeds),
    }
    comparison = metrics.bootstrap_deltas(
        matches["baseline"], {name: matches[name] for name in variants}, len(CLASSES), resamples=100
    )
    result = evaluator.summarise(settings, per_seed, comparison, crosscheck)
    ap_results = {model: metrics.average_precision(matches[model][0], len(CLASSES)) for model in MODELS}
    return Run(result, dataset, test_samples, first, ap_results)


@pytest.fixture(scope="module")
def one_seed(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return build_run(tmp_path_factory.mktemp("images"), seeds=[0])


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return build_run(tmp_path_factory.mktemp("images"), seeds=[0, 1])


def referenced_files(page: str) -> list[str]:
    return re.findall(r'src="([^"]+)"', page)


def test_the_headline_states_every_model_the_ci_and_the_verdict(one_seed: Run, tmp_path: Path) -> None:
    page = one_seed.write(tmp_path)
    for name in ("augmented", "copy"):
        delta = one_seed.result["variants"][name]["delta"]
        for key in ("map50", "map50_95"):
            metric = delta[key]
            assert f"{metric['baseline']:.3f}" in page
            assert f"{metric['variant']:.3f}" in page
            low, high = metric["delta_ci"]
            assert f"{metric['delta']:+.3f} [{low:+.3f}, {high:+.3f}]" in page
    augmented = one_seed.result["variants"]["augmented"]
    assert augmented["delta"]["map50"]["delta_ci"][0] > 0  # the augmented model is better on every test image
    assert augmented["verdict"]["verdict"] == "helps"
    assert one_seed.result["variants"]["copy"]["verdict"]["verdict"] == "no measurable effect"
    assert "the 95% CI lies above zero: the synthetic data of augmented helped" in page
    assert "no measurable effect at this test-set size (4 test images)" in page
    assert "one training seed: the intervals cover the sampling of test images only" in page
    assert "±" not in page  # one seed: no std to show
    assert "yolo11n.yaml" in page and "ultralytics val" in page and "0.6100" in page
    assert "the same number of optimiser steps" in page
    pair = one_seed.result["pairwise"][0]
    assert (pair["variant"], pair["versus"]) == ("augmented", "copy")
    low, high = pair["map50"]["delta_ci"]
    assert "augmented &minus; copy</td>" in page and f"{pair['map50']['delta']:+.3f} [{low:+.3f}, {high:+.3f}]" in page


def test_text_from_data_is_escaped(one_seed: Run, tmp_path: Path) -> None:
    page = one_seed.write(tmp_path)
    assert "&lt;b&gt;" in page and "bike &amp; co" in page and "test/&lt;i&gt;differ" in page
    assert "<b>" not in page and "<i>" not in page


def test_every_referenced_figure_exists_and_thumbnails_stay_small(one_seed: Run, tmp_path: Path) -> None:
    page = one_seed.write(tmp_path, images_shown=4)
    sources = referenced_files(page)
    assert "report/map.png" in sources and "report/pr_curves.png" in sources
    assert len([s for s in sources if s.startswith("report/predictions/")]) == 3 * 4
    assert len([s for s in sources if s.startswith("report/synthetic/")]) == 2 * 2 + 1  # one parent is missing
    for source in sources:
        assert source.startswith("report/")
        with Image.open(tmp_path / source) as image:
            if source.endswith(".jpg"):
                assert image.width <= report.THUMBNAIL_SIDE and image.height <= report.THUMBNAIL_SIDE


def test_writing_twice_gives_identical_output(one_seed: Run, tmp_path: Path) -> None:
    first = one_seed.write(tmp_path)
    figures = {path: path.read_bytes() for path in sorted((tmp_path / "report").rglob("*")) if path.is_file()}
    second = one_seed.write(tmp_path)
    assert first == second
    assert {path: path.read_bytes() for path in sorted((tmp_path / "report").rglob("*")) if path.is_file()} == figures


def test_several_seeds_show_mean_and_std(two_seeds: Run, tmp_path: Path) -> None:
    page = two_seeds.write(tmp_path)
    baseline = two_seeds.result["baseline"]["mAP50"]
    assert "std" in baseline and baseline["std"] > 0
    assert f"{baseline['mean']:.3f} ± {baseline['std']:.3f}" in page
    assert "mean ± std over 2 training seeds" in page
    assert "first training seed (0)" in page


@pytest.mark.parametrize(
    ("interval", "verdict"),
    [
        ([0.01, 0.2], "the 95% CI lies above zero: the synthetic data of augmented helped"),
        ([-0.2, -0.01], "the 95% CI lies below zero: the synthetic data of augmented hurt"),
        ([-0.05, 0.1], "the 95% CI includes zero: no measurable effect at this test-set size (4 test images)"),
    ],
)
def test_the_verdict_follows_the_interval(one_seed: Run, tmp_path: Path, interval: list[float], verdict: str) -> None:
    from fewgen.verdicts import verdict as reading

    run = copy.deepcopy(one_seed)
    metric = run.result["variants"]["augmented"]["delta"]["map50"]
    metric["delta_ci"] = interval
    metric["verdict"] = reading(metric["delta"], interval)
    page = run.write(tmp_path, images_shown=0)
    headline = re.search(r"<strong>augmented</strong>([^<]*)</p>", page)
    assert headline is not None and verdict in headline.group(1)


def test_images_where_the_models_differ_most_come_first(one_seed: Run, tmp_path: Path) -> None:
    page = one_seed.write(tmp_path, images_shown=2)
    captions = re.findall(r"<figcaption>(test/[^:]*):", page)
    assert captions == ["test/&lt;i&gt;differ", WIDE]


def test_no_images_requested_writes_no_prediction_pictures(one_seed: Run, tmp_path: Path) -> None:
    page = one_seed.write(tmp_path, images_shown=0)
    assert "No images were requested" in page
    assert not (tmp_path / "report" / "predictions").exists()


def test_provenance_counts_samples_per_step_and_shows_parents(one_seed: Run, tmp_path: Path) -> None:
    page = one_seed.write(tmp_path)
    rows = re.findall(r"<tr>(.*?)</tr>", page)
    assert any(row.startswith("<td>augment</td><td>night</td><td>0</td><td>train</td>") for row in rows)
    night = next(row for row in rows if row.startswith("<td>augment</td><td>night</td>"))
    assert night.endswith('<td class="num">2</td><td class="num">2</td>')
    assert "night (generator augment), fog (generator augment)" in page
    assert "(parent not in the dataset)" in page
