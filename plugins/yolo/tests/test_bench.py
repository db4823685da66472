"""`fewgen bench detect`: its options and, on a few images of the bundled street sample, its envelope."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from fewgen_yolo.bench import detect

from fewgen.cli import cli
from fewgen.verdicts import VERDICTS

# The repository's own small dataset (the test, not the bench, finds it beside the plugins).
STREET_SAMPLE = Path(__file__).resolve().parents[3] / "datasets" / "street_sample"


def test_detect_has_the_common_bench_options_once() -> None:
    options = [option for param in detect.params for option in param.opts]
    for option in ("--json", "--seed", "--threads", "--device", "--seeds", "--out"):
        assert options.count(option) == 1, option


def test_a_bad_where_is_a_usage_error_before_anything_runs(tmp_path: Path) -> None:
    args = ["bench", "detect", "--data", str(STREET_SAMPLE), "--card", "street_sample", "--where", "label"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run.recipe.yaml").exists()


@pytest.mark.slow
def test_detect_runs_its_recipe_and_prints_the_envelope(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEWGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics"))
    args = ["bench", "detect", "--data", str(STREET_SAMPLE), "--card", "street_sample", "--out", str(tmp_path / "run")]
    tiny = ["--train-images", "4", "--val-images", "2", "--test-images", "4", "--epochs", "1", "--imgsz", "64"]
    tiny += ["--batch", "4", "--model", "yolov8n.yaml", "--seeds", "0", "--preset", "flip", "--copies", "1"]
    result = CliRunner().invoke(cli, [*args, *tiny, "--seed", "5", "--threads", "1", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.stdout)
    assert envelope["benchmark"] == "detect"
    settings = envelope["settings"]
    assert settings["seed"] == 5 and settings["threads"] == 1 and settings["device"] == "cpu"
    assert settings["presets"] == ["flip"] and settings["data"] == str(STREET_SAMPLE)
    assert settings["evaluator"]["train_images"] == {"real": 4, "synthetic": 4}
    figures = envelope["figures"]
    assert set(figures["baseline"]) == {"mAP50", "mAP50-95"}
    (variant,) = figures["variants"].values()
    assert set(variant["delta"]) == {"mAP50", "mAP50-95"}
    assert variant["delta"]["mAP50"]["verdict"] in VERDICTS
    assert envelope["target"]["mAP50_delta_verdict"] == "helps"
    assert envelope["met"] == (variant["delta"]["mAP50"]["verdict"] == "helps")
    # The recipe beside the run is the measurement as run: the bench's seed, threads and device are its own.
    recipe = yaml.safe_load(Path(figures["recipe"]).read_text())
    assert (recipe["seed"], recipe["threads"], recipe["device"]) == (5, 1, "cpu")
    assert Path(figures["report"]).is_file() and figures["run_dir"] == str(tmp_path / "run")
