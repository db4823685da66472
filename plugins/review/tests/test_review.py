"""``fewgen review`` on a finished run: the FiftyOne dataset holds every sample with its labels,
provenance, predictions, evaluations and saved views, in a private database."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner, Result

from fewgen.dataset import Dataset


def fewgen(*args: str) -> Result:
    from fewgen.cli import cli
    from fewgen.plugins import reset_registry

    reset_registry(None)  # the CLI loads the installed plugins, as `fewgen` does
    try:
        return CliRunner().invoke(cli, list(args))
    finally:
        reset_registry(None)


@pytest.fixture(scope="module")
def reviewed(finished_run: Path) -> Iterator[Any]:
    """The dataset `fewgen review RUN_DIR --no-launch` made, and the command's output."""
    import fiftyone as fo

    # A process of its own, as a user runs it: FiftyOne's loggers write to the real stdout, which
    # an in-process runner would not see.
    fewgen = Path(sys.executable).with_name("fewgen")
    result = subprocess.run(
        [fewgen, "review", str(finished_run), "--no-launch", "--no-progress"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    yield fo.load_dataset("night-run"), result.stdout


def by_fewgen_id(dataset: Any) -> dict[str, Any]:
    return {sample.fewgen_id: sample for sample in dataset}


def test_no_launch_prints_name_and_count_and_holds_every_sample(reviewed: Any, finished_run: Path) -> None:
    dataset, output = reviewed
    run = Dataset.load(finished_run / "dataset")
    # stdout holds the summary and nothing else (FiftyOne's own progress messages are kept off it).
    assert output.splitlines()[:2] == [
        "FiftyOne dataset 'night-run': 12 samples (8 real, 4 synthetic), 12 ground-truth boxes",
        "  evaluations: eval_detect_augmented, eval_detect_baseline, eval_detect_copy_paste",
    ]
    assert all(line.startswith("  saved view '") for line in output.splitlines()[2:])
    assert sorted(by_fewgen_id(dataset)) == sorted(s.id for s in run)
    assert dataset.persistent


def test_provenance_fields_and_tags(reviewed: Any, finished_run: Path) -> None:
    dataset, _ = reviewed
    samples = by_fewgen_id(dataset)
    manifest = json.loads((finished_run / "manifest.json").read_text())
    seed = next(step["seed"] for step in manifest["steps"] if step["name"] == "recolour")
    for sample in Dataset.load(finished_run / "dataset"):
        found = samples[sample.id]
        assert found.filepath == str(sample.image)
        assert (found.split, found.domain) == (sample.split, sample.domain)
        if sample.is_synthetic:
            assert found.tags == ["synthetic", "recolour"]
            assert (found.generator, found.step, found.seed) == ("recolour", "recolour", seed)
            assert found.parent == sample.id.removeprefix("recolour/")
        else:
            assert found.tags == ["real"]
            assert found.generator is None and found.parent is None


def test_ground_truth_boxes_are_relative_xywh(reviewed: Any, finished_run: Path) -> None:
    dataset, _ = reviewed
    samples = by_fewgen_id(dataset)
    for sample in Dataset.load(finished_run / "dataset"):
        (box,) = sample.boxes
        (detection,) = samples[sample.id].ground_truth.detections
        expected = [box.x1 / 64, box.y1 / 48, (box.x2 - box.x1) / 64, (box.y2 - box.y1) / 48]
        assert detection.bounding_box == pytest.approx(expected)
        assert detection.label == ("person", "car")[box.cls]
    assert dataset.default_classes == ["person", "car"]


def test_masks_and_anomaly_maps_are_referenced_by_path(
    reviewed: Any, finished_run: Path, facts: SimpleNamespace
) -> None:
    dataset, _ = reviewed
    samples = by_fewgen_id(dataset)
    for sample_id in facts.test_ids:
        sample = samples[sample_id]
        assert Path(sample.ground_truth_mask.mask_path).is_file() and sample.ground_truth_mask.mask is None
        assert Path(sample.inspect_map.map_path).parent == finished_run / "reports" / "inspect" / "maps"
        assert sample.inspect_map.range == [0, 255]
        assert sample.inspect_anomalous == (sample_id == facts.anomalous)
    assert samples["img0"].ground_truth_mask is None


def test_predictions_of_every_model_are_evaluated_under_eval_keys(reviewed: Any, facts: SimpleNamespace) -> None:
    dataset, _ = reviewed
    assert sorted(dataset.list_evaluations()) == [
        "eval_detect_augmented",
        "eval_detect_baseline",
        "eval_detect_copy_paste",
    ]
    samples = by_fewgen_id(dataset)
    for sample_id in facts.test_ids:
        augmented = samples[sample_id].detect_augmented.detections
        # Seed 0's boxes lie on the ground truth; seed 1's are shifted. The review shows seed 0.
        assert [d.eval_detect_augmented for d in augmented] == ["tp"]
        assert augmented[0].confidence == pytest.approx(0.9)
    # The baseline's only box on img7 scores 0.1, under the review's 0.25 threshold.
    assert samples[facts.missed_by_baseline].detect_baseline.detections == []
    assert samples[facts.missed_by_baseline].eval_detect_baseline_fn == 1
    assert samples["img0"].detect_baseline is None
    info = dataset.info
    assert info["predictions"]["detect_baseline"]["training_seed"] == 0
    assert info["min_confidence"] == 0.25


def test_saved_views_have_the_right_samples(reviewed: Any, facts: SimpleNamespace) -> None:
    dataset, output = reviewed
    assert set(dataset.list_saved_views()) == {
        "synthetic only",
        "real only",
        "detect: baseline misses the augmented model found",
        "detect: baseline misses the copy_paste model found",
        "translated images whose objects vanished",
        "inspect: predicted anomalous",
    }

    def ids(view_name: str) -> list[str]:
        return sorted(dataset.load_saved_view(view_name).values("fewgen_id"))

    assert ids("synthetic only") == ["recolour/img0", "recolour/img1", "recolour/img4", "recolour/img5"]
    assert len(ids("real only")) == 8
    missed = dataset.load_saved_view("detect: baseline misses the augmented model found")
    assert missed.values("fewgen_id") == [facts.missed_by_baseline]
    assert missed.count("ground_truth.detections") == 1
    assert ids("detect: baseline misses the copy_paste model found") == [facts.missed_by_baseline]
    assert ids("translated images whose objects vanished") == [facts.vanished]
    assert ids("inspect: predicted anomalous") == [facts.anomalous]
    assert "  saved view 'translated images whose objects vanished': 1 samples" in output


def test_info_records_the_run_and_versions(reviewed: Any, finished_run: Path) -> None:
    import fiftyone as fo

    dataset, _ = reviewed
    run = dataset.info["fewgen_run"]
    assert run["path"] == str(finished_run) and run["recipe"] == "review_fixture" and run["seed"] == 3
    assert dataset.info["fiftyone"] == fo.__version__
    assert [step["name"] for step in dataset.info["steps"]] == ["recolour", "detect", "inspect", "export"]


def test_attributes_written_by_steps_are_a_field(reviewed: Any, facts: SimpleNamespace) -> None:
    dataset, _ = reviewed
    samples = by_fewgen_id(dataset)
    drift = samples[facts.vanished].attributes["recolour"]["label_drift"]
    assert drift == {"objects": 1, "found_source": 1, "found_translated": 0, "kept": 0, "vanished": True}
    assert samples["img0"].attributes is None


def test_review_again_replaces_the_dataset_and_list_shows_it_once(reviewed: Any, finished_run: Path) -> None:
    import fiftyone as fo

    before, _ = reviewed
    again = fewgen("review", str(finished_run), "--no-launch", "--no-progress")
    assert again.exit_code == 0, again.output
    dataset = fo.load_dataset("night-run")
    assert len(dataset) == 12 and dataset.count("ground_truth.detections") == 12
    assert not any(".partial-" in name for name in fo.list_datasets())
    listing = fewgen("review", "--list", "--json")
    assert listing.exit_code == 0, listing.output
    entries = [entry for entry in json.loads(listing.output) if entry["name"] == "night-run"]
    assert entries == [
        {"name": "night-run", "samples": 12, "run": str(finished_run), "exported": dataset.info["exported"]}
    ]
    text = fewgen("review", "--list")
    assert f"night-run\t12 samples\t{finished_run}" in text.output.splitlines()
    assert before.name == "night-run"


def test_a_name_holding_another_run_needs_overwrite(finished_run: Path, tmp_path: Path) -> None:
    import shutil

    import fiftyone as fo

    other = tmp_path / "other"
    shutil.copytree(finished_run, other)
    refused = fewgen("review", str(other), "--no-launch", "--name", "night-run", "--no-progress")
    assert refused.exit_code == 2
    assert refused.output.strip() == (
        f"Error: FiftyOne dataset 'night-run' already holds the run {finished_run}; choose another name or overwrite it"
    )
    assert fo.load_dataset("night-run").info["fewgen_run"]["path"] == str(finished_run)
    named = fewgen("review", str(other), "--no-launch", "--name", "other-copy", "--no-progress")
    assert named.exit_code == 0 and fo.load_dataset("other-copy").info["fewgen_run"]["path"] == str(other)
    fo.delete_dataset("other-copy")


def test_recipe_step_exported_the_run_and_reported_metrics(finished_run: Path) -> None:
    import fiftyone as fo

    reported = json.loads((finished_run / "manifest.json").read_text())["after_run"]
    assert reported["export"]["dataset"] == "from-recipe" and reported["export"]["samples"] == 12
    assert "dataset" not in json.loads((finished_run / "metrics.json").read_text())["export"]
    dataset = fo.load_dataset("from-recipe")
    assert len(dataset) == 12 and dataset.info["fewgen_run"]["path"] == str(finished_run)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["review", "/no/such/run", "--no-launch"], "Error: run folder not found: /no/such/run"),
        (["review"], "Error: give a RUN_DIR to review, or --list"),
        (["review", "x", "--list"], "Error: --list takes no RUN_DIR"),
    ],
)
def test_user_errors_are_one_line(fiftyone_db: str, args: list[str], message: str) -> None:
    result = fewgen(*args)
    assert result.exit_code == 2 and result.output.strip() == message


def test_a_folder_that_is_no_run_is_refused(fiftyone_db: str, tmp_path: Path) -> None:
    result = fewgen("review", str(tmp_path), "--no-launch")
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {tmp_path} is not a fewgen run folder")


def test_a_port_in_use_is_refused_before_the_export(finished_run: Path) -> None:
    import fiftyone as fo

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = fewgen("review", str(finished_run), "--name", "never-made", "--port", str(port))
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"Error: cannot serve the App on 127.0.0.1:{port} (Address already in use); choose another --port"
    )
    assert not fo.dataset_exists("never-made")
