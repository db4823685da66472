"""`fewgen bench draem-synth` runs and reports; the numbers themselves belong in BENCHMARKS.md."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from fewgen.cli import cli


def test_draem_synth_prints_one_json_object() -> None:
    result = CliRunner().invoke(cli, ["bench", "draem-synth", "--size", "32", "--n", "4", "--batch", "2", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["benchmark"] == "draem-synth" and report["n"] == 4
    assert report["fewgen"]["images_per_s"] > 0
    assert 0 < report["fewgen"]["mask_fraction"] < 1


def test_missing_peer_is_a_clear_error(tmp_path: Path) -> None:
    args = ["bench", "draem-synth", "--size", "32", "--n", "2", "--peer", "anomalib"]
    result = CliRunner().invoke(cli, [*args, "--peer-python", str(tmp_path / "no-python")])
    assert result.exit_code == 2 and "peer not available" in result.output


def test_draem_train_reports_step_time_and_flops() -> None:
    args = ["bench", "draem-train", "--size", "32", "--batch", "2", "--preset", "tiny", "--steps", "1", "--no-ceiling"]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["benchmark"] == "draem-train" and report["preset"] == "tiny"
    fewgen = report["fewgen"]
    assert fewgen["seconds_per_step"] > 0 and fewgen["gflop_per_step"] > 0 and fewgen["gflops"] > 0
    assert fewgen["params"] == 718_181


def test_draem_anomaly_trains_within_its_budget_and_reports_every_metric(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[3] / "datasets" / "surface_sample"
    args = ["bench", "draem-anomaly", "--data", str(sample), "--card", "surface_sample", "--preset", "tiny"]
    args += ["--size", "32", "--minutes", "0.02", "--out", str(tmp_path / "run"), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["train_images"] == 60 and report["test_images"] == 60
    fewgen = report["fewgen"]
    for key in ("image_auroc", "image_ap", "image_f1", "pixel_auroc", "pixel_ap", "pixel_f1", "aupro"):
        assert 0 <= fewgen[key] <= 1, key
    assert set(fewgen["per_type"]) == {"crack", "dent", "scratch", "spot"}
    assert fewgen["training"]["stopped_by"] == "minutes"
    assert (tmp_path / "run" / "reports" / "detect" / "report.html").is_file()
