"""``fewgen bench psgan`` end to end on a tiny native dataset: the bench envelope with every figure."""

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
    envelope = json.loads(result.stdout.strip().splitlines()[-1])
    assert envelope["benchmark"] == "psgan" and envelope["settings"]["preset"] == "tiny"
    assert envelope["settings"]["threads"] == 1 and envelope["settings"]["seed"] == 0
    report = envelope["figures"]
    assert report["pairs"]["train_images"] == 6 and report["pairs"]["held_out_images"] == 2
    assert report["pairs"]["held_out"]["used"] == 4
    assert report["training"]["iterations"] == 2 and report["training"]["iterations_per_second"] > 0
    assert report["held_out"]["boxes"] == 4 and 0 < report["held_out"]["l1"] < 1
    assert report["hog_in_place"]["boxes"] == 4 and 0 <= report["hog_in_place"]["synthetic"] <= 1
    assert report["hog_inserted"]["images"] == 2 and 0 <= report["hog_inserted"]["background"] <= 1
    assert report["parameters"]["generator"] == 1_830_563
    assert envelope["target"] == {"hog_inserted_ratio_at_least": 0.5}
    ratio = report["hog_inserted"]["ratio"]
    assert envelope["met"] is (None if ratio is None else ratio >= 0.5)
    assert (tmp_path / "psgan.pt").is_file()


def test_bench_needs_a_budget_and_a_known_preset(tmp_path: Path, make_street: Callable[..., Dataset]) -> None:
    make_street(tmp_path / "data", count=4)
    base = ["--data", str(tmp_path / "data"), "--format", "fewgen"]
    assert "give --minutes, --iterations or both" in CliRunner().invoke(psgan_bench, base).output
    assert (
        "unknown preset 'huge'"
        in CliRunner().invoke(psgan_bench, [*base, "--preset", "huge", "--iterations", "1"]).output
    )


def test_the_detection_recipe_is_a_valid_recipe_comparing_psgan_with_copy_paste(tmp_path: Path) -> None:
    import yaml
    from fewgen_psgan.bench_detect import detection_recipe

    from fewgen.plugins import load_registry
    from fewgen.recipe import load_recipe

    street = Path(__file__).parents[3] / "datasets" / "street_sample"
    recipe = detection_recipe(
        street,
        "street_sample",
        0,
        "person",
        preset="tiny",
        iterations=10,
        min_height=12,
        per_image=2,
        epochs=3,
        imgsz=64,
        seeds=[0, 1, 2],
        seed=0,
    )
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    loaded = load_recipe(tmp_path / "recipe.yaml", load_registry())
    detect = loaded.step_params[2]
    assert detect.variants == {"psgan": ["psgan"], "copy_paste": ["paste"]}
    assert detect.schedule == "same_steps" and detect.seeds == [0, 1, 2] and detect.classes == ["person"]
    assert loaded.step_params[1].per_image == loaded.step_params[0].per_image == 2


def test_detection_needs_iterations(tmp_path: Path, make_street: Callable[..., Dataset]) -> None:
    make_street(tmp_path / "data", count=4)
    args = ["--data", str(tmp_path / "data"), "--format", "fewgen", "--minutes", "1", "--detect-epochs", "2"]
    assert "needs --iterations" in CliRunner().invoke(psgan_bench, args).output
