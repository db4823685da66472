"""The benchmarks run end to end on a generated two-domain folder and print their JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from fewgen_munit.bench import munit_bench, munit_speed, split_files

from fewgen.imageio import save_image


def domains(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name, (low, high) in {"day": (120, 255), "night": (0, 60)}.items():
        for index in range(6):
            save_image(rng.integers(low, high, (40, 56, 3), dtype=np.uint8), root / name / f"{index}.jpg")
    return root


def test_split_files_is_seeded_and_holds_out_the_share() -> None:
    files = [Path(f"{i}.jpg") for i in range(10)]
    train, held = split_files(files, 0.2, seed=0)
    assert len(held) == 2 and sorted(train + held) == sorted(files)
    assert split_files(files, 0.2, seed=0) == (train, held) and split_files(files, 0.2, seed=1) != (train, held)


def test_munit_bench_measures_munit_and_the_baseline(tmp_path: Path) -> None:
    args = ["--data", str(domains(tmp_path / "data")), "--size", "32", "--iterations", "2", "--styles", "2"]
    args += ["--classifier-steps", "3", "--out", str(tmp_path / "out"), "--threads", "1", "--json"]
    outcome = CliRunner().invoke(munit_bench, args)
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.stdout.strip().splitlines()[-1])
    assert report["benchmark"] == "munit" and report["settings"]["styles"] == 2 and report["settings"]["seed"] == 0
    result = report["figures"]
    assert result["training"]["iterations"] == 2 and result["held_out_images"] == {"day": 1, "night": 1}
    for method in ("munit", "augment_night", "munit_keep_detail_64px", "augment_night_64px"):
        metrics = result[method]
        assert 0 <= metrics["judged_target_share"] <= 1 and metrics["edge_ssim"]["n"] == 2
        assert metrics["diversity_l1"]["n"] == 1 and metrics["diversity_l1"]["mean"] >= 0
    assert set(result["target_checks"]) == {"judged_target_share", "above_baseline", "edge_ssim"}
    assert report["met"] is all(result["target_checks"].values())
    assert report["target"]["judged_target_share_at_least"] == 0.8 and report["target"]["edge_ssim_at_least"] == 0.5
    assert (tmp_path / "out" / "translations.png").is_file() and (tmp_path / "out" / "munit.pt").is_file()


def test_munit_bench_rejects_a_folder_without_the_domains(tmp_path: Path) -> None:
    (tmp_path / "day").mkdir()
    outcome = CliRunner().invoke(munit_bench, ["--data", str(tmp_path), "--size", "32"])
    assert outcome.exit_code != 0 and "day holds 0 images; at least 5 needed" in outcome.output
    domains(tmp_path / "data")
    outcome = CliRunner().invoke(munit_bench, ["--data", str(tmp_path / "data"), "--domain-b", "fog"])
    assert outcome.exit_code != 0 and "fog is not a folder" in outcome.output


def test_munit_speed_times_an_iteration() -> None:
    args = ["--preset", "tiny", "--size", "32", "--iterations", "1", "--device", "cpu", "--threads", "1", "--json"]
    outcome = CliRunner().invoke(munit_speed, args)
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.stdout)
    assert report["settings"]["device"] == "cpu" and report["machine"]["threads"] == 1 and report["met"] is None
    result = report["figures"]
    assert result["seconds_per_iteration"] > 0 and result["translate_seconds_per_image"] > 0
