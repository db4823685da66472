"""``fewgen bench psgan`` end to end on a tiny native dataset: one JSON object with every figure."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from fewgen_psgan.bench import psgan_bench

from fewgen.dataset import Dataset


def test_bench_reports_pairs_training_fidelity_and_hog_rates(
    tmp_path: Path, make_street: Callable[..., Dataset]
) -> None:
    make_street(tmp_path / "data", count=8)
    args = ["--data", str(tmp_path / "data"), "--format", "fewgen", "--preset", "tiny", "--iterations", "2"]
    args += ["--min-height", "10", "--threads", "1", "--checkpoint", str(tmp_path / "psgan.pt"), "--json"]
    result = CliRunner().invoke(psgan_bench, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["pairs"]["train_images"] == 6 and report["pairs"]["held_out_images"] == 2
    assert report["pairs"]["held_out"]["used"] == 4
    assert report["training"]["iterations"] == 2 and report["training"]["iterations_per_second"] > 0
    assert report["held_out"]["boxes"] == 4 and 0 < report["held_out"]["l1"] < 1
    assert report["hog_in_place"]["boxes"] == 4 and 0 <= report["hog_in_place"]["synthetic"] <= 1
    assert report["hog_inserted"]["images"] == 2 and 0 <= report["hog_inserted"]["background"] <= 1
    assert report["parameters"]["generator"] == 1_830_563
    assert (tmp_path / "psgan.pt").is_file()


def test_bench_needs_a_budget_and_a_known_preset(tmp_path: Path, make_street: Callable[..., Dataset]) -> None:
    make_street(tmp_path / "data", count=4)
    base = ["--data", str(tmp_path / "data"), "--format", "fewgen"]
    assert "give --minutes, --iterations or both" in CliRunner().invoke(psgan_bench, base).output
    assert (
        "unknown preset 'huge'"
        in CliRunner().invoke(psgan_bench, [*base, "--preset", "huge", "--iterations", "1"]).output
    )
