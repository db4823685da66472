"""Reading run folders and the pure conversions, without a database; the plugin as installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fewgen_review.convert import field_key, relative_box, safe_keys
from fewgen_review.runfolder import default_dataset_name, read_anomaly_predictions, read_detection_predictions

from fewgen.errors import UsageError


def _write(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _records(x: float) -> list[dict[str, object]]:
    return [{"sample": "a", "image": "/x.jpg", "boxes": [[x, 1.0, 5.0, 6.0]], "scores": [0.5], "classes": [1]}]


def test_detections_of_the_first_training_seed_are_read(tmp_path: Path) -> None:
    for model in ("baseline", "augmented"):
        _write(tmp_path / "predictions" / f"{model}-seed7.json", _records(7.0))
        _write(tmp_path / "predictions" / f"{model}-seed3.json", _records(3.0))
    (tmp_path / "predictions" / "notes.json").write_text("{}")  # not a model's predictions: ignored
    found = read_detection_predictions(tmp_path, "detect", {"settings": {"seeds": [7, 3]}})
    assert [(p.model, p.seed) for p in found] == [("augmented", 7), ("baseline", 7)]
    (detection,) = found[0].by_sample["a"]
    assert (detection.box, detection.score, detection.cls) == ((7.0, 1.0, 5.0, 6.0), 0.5, 1)
    # Without the evaluator's metrics, the lowest seed stands in for the first.
    assert {p.seed for p in read_detection_predictions(tmp_path, "detect", {})} == {3}


def test_anomaly_predictions_resolve_map_paths_in_the_report(tmp_path: Path) -> None:
    record = {"score": 0.2, "label": "good", "map": "maps/a.png"}
    payload = {"threshold": None, "map_size": 32, "samples": {"a": record}}
    _write(tmp_path / "predictions.json", payload)
    found = read_anomaly_predictions(tmp_path, "inspect")
    assert found is not None and found.threshold is None
    assert found.by_sample["a"].map_path == tmp_path / "maps" / "a.png"
    assert found.by_sample["a"].anomalous is None
    # Another evaluator's predictions.json (a list) is not an anomaly report.
    _write(tmp_path / "other" / "predictions.json", [])
    assert read_anomaly_predictions(tmp_path / "other", "x") is None


def test_unreadable_prediction_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions" / "baseline-seed0.json").write_text("{not json")
    with pytest.raises(UsageError, match=r"cannot read .*baseline-seed0\.json"):
        read_detection_predictions(tmp_path, "detect", {})


def test_boxes_field_names_and_keys_for_fiftyone() -> None:
    assert relative_box(10, 20, 42, 44, 64, 48) == [10 / 64, 20 / 48, 32 / 64, 24 / 48]
    assert field_key("detect.v2", "base-line") == "detect_v2_base_line"
    assert safe_keys({"a.b": {"$x": [{"c.d": 1}], "ok": 2}}) == {"a_b": {"_x": [{"c_d": 1}], "ok": 2}}


def test_dataset_name_is_the_run_folder_name(tmp_path: Path) -> None:
    assert default_dataset_name(tmp_path / "runs" / "night-20261203") == "night-20261203"


def test_installed_plugin_is_listed_and_its_hooks_import_no_fiftyone() -> None:
    fewgen = Path(sys.executable).with_name("fewgen")
    listed = json.loads(subprocess.run([fewgen, "plugins", "--json"], capture_output=True, check=True).stdout)
    (review,) = [plugin for plugin in listed if plugin["name"] == "review"]
    assert review["distribution"] == "fewgen-review"
    assert (review["evaluators"], review["commands"], review["benchmarks"]) == (
        ["fiftyone"],
        ["review"],
        ["review-export"],
    )
    assert "after_run" in review["hooks"]
    probe = "import sys, fewgen_review.hooks as h; h.register_commands(print); print('fiftyone' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.splitlines()[-1] == "False"
