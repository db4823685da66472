"""The DRAEM benchmarks run and print the bench envelope; the numbers themselves belong in BENCHMARKS.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from click.testing import CliRunner

from fewgen.bench import ENVELOPE_KEYS
from fewgen.cli import cli

# Stands in for a peer script: prints one JSON line, whatever its arguments.
FAKE_PEER = (
    "import json, sys\nprint(json.dumps({'args': sys.argv[1:], 'images_per_s': 1.0, 'seconds_per_step': 100.0}))\n"
)


def envelope(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["bench", *args, "--json", "--threads", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert tuple(report) == ENVELOPE_KEYS and report["benchmark"] == args[0]
    return report


def test_draem_synth_reports_images_per_second_and_leaves_out_a_missing_peer() -> None:
    report = envelope("draem-synth", "--size", "32", "--n", "4", "--batch", "2", "--device", "cpu")
    assert report["settings"]["n"] == 4 and report["settings"]["device"] == "cpu"
    fewgen = report["figures"]["fewgen"]
    assert fewgen["images_per_s"] > 0 and 0 < fewgen["mask_fraction"] < 1
    assert report["figures"]["anomalib"] == {"skipped": "no --peer-python and no --peer-script"}
    assert report["target"] == {"speedup_at_least": 3.0} and report["met"] is None


def test_draem_synth_runs_the_peer_script_with_the_peer_python(tmp_path: Path) -> None:
    script = tmp_path / "peer.py"
    script.write_text(FAKE_PEER)
    args = ["--size", "32", "--n", "2", "--batch", "2", "--device", "cpu"]
    report = envelope("draem-synth", *args, "--peer-python", sys.executable, "--peer-script", str(script))
    assert report["figures"]["anomalib"]["args"] == ["2", "32"]
    assert report["figures"]["speedup"] == round(report["figures"]["fewgen"]["images_per_s"], 2)
    assert report["met"] is (report["figures"]["speedup"] >= 3.0)
    only_python = envelope("draem-synth", *args, "--peer-python", sys.executable)
    assert only_python["figures"]["anomalib"] == {"skipped": "no --peer-script"}


def test_a_missing_peer_script_is_a_clear_error(tmp_path: Path) -> None:
    args = ["bench", "draem-synth", "--size", "32", "--n", "2", "--peer-script", str(tmp_path / "absent.py")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "absent.py" in result.output


def test_draem_train_reports_step_time_and_flops(tmp_path: Path) -> None:
    script = tmp_path / "peer.py"
    script.write_text(FAKE_PEER)
    args = ["draem-train", "--size", "32", "--batch", "2", "--preset", "tiny", "--steps", "1", "--device", "cpu"]
    report = envelope(*args, "--peer-python", sys.executable, "--peer-script", str(script))
    assert report["settings"]["preset"] == "tiny"
    figures = report["figures"]
    fewgen = figures["fewgen"]
    assert fewgen["seconds_per_step"] > 0 and fewgen["gflop_per_step"] > 0 and fewgen["gflops"] > 0
    assert fewgen["params"] == 718_181
    assert figures["ceiling"] == {"skipped": "no --ceiling-script"}
    assert figures["anomalib"]["args"] == ["32", "2", "1"]
    # Another width than anomalib's: the ratio is measured, the target not judged.
    assert figures["ratio"] > 0 and figures["same_architecture"] is False and report["met"] is None


def test_draem_anomaly_trains_within_its_budget_and_reports_every_metric(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[3] / "datasets" / "surface_sample"
    args = ["draem-anomaly", "--data", str(sample), "--card", "surface_sample", "--preset", "tiny"]
    report = envelope(*args, "--size", "32", "--minutes", "0.02", "--out", str(tmp_path / "run"))
    figures = report["figures"]
    assert figures["train_images"] == 60 and figures["test_images"] == 60
    fewgen = figures["fewgen"]
    for key in ("image_auroc", "image_ap", "image_f1", "pixel_auroc", "pixel_ap", "pixel_f1", "aupro"):
        assert 0 <= fewgen[key] <= 1, key
    assert set(fewgen["per_type"]) == {"crack", "dent", "scratch", "spot"}
    assert fewgen["training"]["stopped_by"] == "minutes"
    assert figures["anomalib"] == {"skipped": "no --peer-python and no --peer-script"}
    assert report["settings"]["threads_each"] == 1 and report["settings"]["card"] == "surface_sample"
    assert report["met"] is (min(fewgen["image_auroc"], fewgen["pixel_auroc"]) >= 0.9)
    assert (tmp_path / "run" / "reports" / "detect" / "report.html").is_file()


# Stands in for benchmarks/anomalib_draem_train.py: random scores and maps for the job's test images.
FAKE_TRAINING_PEER = """import json, sys
import numpy as np
job = json.load(open(sys.argv[1]))
rng = np.random.default_rng(0)
n, size = len(job["test"]), job["size"]
np.savez(sys.argv[2], scores=rng.random(n), maps=rng.random((n, size, size)).astype(np.float16))
print(json.dumps({"peer": "fake", "steps": 1, "threads": job["threads"]}))
"""


def test_draem_anomaly_scores_the_peer_with_the_same_metric_code(tmp_path: Path) -> None:
    script = tmp_path / "peer.py"
    script.write_text(FAKE_TRAINING_PEER)
    sample = Path(__file__).resolve().parents[3] / "datasets" / "surface_sample"
    args = ["draem-anomaly", "--data", str(sample), "--card", "surface_sample", "--preset", "tiny"]
    args += ["--size", "32", "--minutes", "0.01", "--out", str(tmp_path / "run")]
    report = envelope(*args, "--peer-python", sys.executable, "--peer-script", str(script))
    anomalib = report["figures"]["anomalib"]
    assert anomalib["training"] == {"peer": "fake", "steps": 1, "threads": 1}  # --threads 1: each side
    assert 0 <= anomalib["image_auroc"] <= 1 and 0 <= anomalib["pixel_auroc"] <= 1
    assert set(anomalib["per_type"]) == {"crack", "dent", "scratch", "spot"}
