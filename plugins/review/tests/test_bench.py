"""``fewgen bench review-export`` times a real export of a synthetic run and reports it as JSON."""

from __future__ import annotations

import json

from click.testing import CliRunner
from fewgen_review.bench import review_export, write_synthetic_run
from fewgen_review.runfolder import read_run

from fewgen.dataset import Dataset


def test_synthetic_run_is_a_readable_run_folder(tmp_path) -> None:
    run = read_run(write_synthetic_run(tmp_path / "run", samples=20, boxes_per_sample=3))
    assert len(run.dataset) == 20 and sum(s.is_synthetic for s in run.dataset) == 4
    assert all(len(s.boxes) == 3 for s in run.dataset)
    test_ids = {s.id for s in run.dataset if s.split == "test"}
    assert test_ids and [set(p.by_sample) for p in run.detections] == [test_ids, test_ids]
    assert isinstance(Dataset.load(tmp_path / "run" / "dataset"), Dataset)


def test_bench_exports_and_deletes_its_dataset(fiftyone_db: str) -> None:
    import fiftyone as fo

    result = CliRunner().invoke(review_export, ["--samples", "40", "--batch-size", "16", "--threads", "1"])
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.stdout)  # progress goes to stderr
    assert envelope["benchmark"] == "review-export" and "exporting it to FiftyOne" in result.stderr
    assert envelope["settings"]["samples"] == 40 and envelope["settings"]["batch_size"] == 16
    assert envelope["settings"]["seed"] == 0 and envelope["machine"]["threads"] == 1
    assert envelope["target"] is None and envelope["met"] is None
    report = envelope["figures"]
    assert report["samples"] == 40 and report["ground_truth_boxes"] == 160
    assert report["views"]["synthetic only"] == 8
    assert report["seconds"]["end_to_end"] >= report["seconds"]["total"] > 0
    assert report["fiftyone"] == fo.__version__
    assert "review-export-bench-40" not in fo.list_datasets()
