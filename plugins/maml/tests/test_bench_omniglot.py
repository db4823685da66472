"""`fewgen bench maml-omniglot` on a tiny generated Omniglot-like layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from fewgen.cli import cli
from fewgen.verdicts import VERDICTS


def write_set(root: Path, alphabets: int, characters: int, drawers: int, seed: int) -> None:
    """<alphabet>/<character>/<drawer>.png: each character a random stroke pattern, redrawn with jitter."""
    rng = np.random.default_rng(seed)
    for a in range(alphabets):
        for c in range(characters):
            pattern = rng.random((7, 7)) < 0.35
            folder = root / f"alphabet{a}" / f"character{c:02d}"
            folder.mkdir(parents=True)
            for d in range(drawers):
                image = np.ones((28, 28), np.uint8) * 255
                shift = rng.integers(0, 3, 2)
                block = np.kron(pattern, np.ones((3, 3), bool))
                image[3 + shift[0] : 24 + shift[0], 3 + shift[1] : 24 + shift[1]][block] = 0
                Image.fromarray(image).save(folder / f"{d:02d}.png")


@pytest.fixture(scope="module")
def omniglot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("omniglot")
    write_set(root / "train_set", alphabets=2, characters=5, drawers=4, seed=0)
    write_set(root / "test_set", alphabets=1, characters=6, drawers=4, seed=1)
    return root


def bench(omniglot: Path, *extra: str):
    """The bench on tiny settings, without --json: its progress on stderr, the envelope alone on stdout."""
    args = ["bench", "maml-omniglot", "--data", str(omniglot), "--train", "train_set", "--test", "test_set"]
    tiny = ["--way", "3", "--steps", "3", "--meta-batch", "2", "--pretrain-steps", "2", "--tasks", "5"]
    tiny += ["--validation-tasks", "2", "--finetune-steps", "2", "--threads", "1"]
    return CliRunner().invoke(cli, [*args, *tiny, *extra])


def figures_of(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["figures"]


def test_reports_both_methods_with_confidence_intervals(omniglot: Path) -> None:
    result = bench(omniglot, "--seed", "2")
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.stdout)
    assert envelope["benchmark"] == "maml-omniglot" and envelope["settings"]["seed"] == 2
    # --device auto, resolved as the fewshot evaluator resolves it.
    assert envelope["settings"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert envelope["machine"]["device"] == "auto" and envelope["machine"]["threads"] == 1
    assert envelope["target"] is None and envelope["met"] is None  # the target is for 5-way 1-shot
    report = envelope["figures"]
    assert report["ways"] == 3 and report["shots"] == 1
    # 10 training characters x 4 rotations, 3 held out (as characters, before rotation) for the baseline's rate.
    assert report["classes"] == {"train": 28, "validation": 3, "test": 6}
    for method in ("maml", "finetune", "protonets"):
        assert set(report[method]["accuracy"]) == {"mean", "ci95", "tasks"}
        assert report[method]["accuracy"]["tasks"] == 5
        assert report[method]["seconds"] >= 0
    assert report["maml"]["meta_updates"] == 3
    # Matched compute: the baselines take MAML's 3 gradient steps unless told otherwise (--pretrain-steps 2).
    assert report["compute"]["gradient_steps"] == {"maml": 3, "finetune": 2, "protonets": 3}
    for comparison in report["comparisons"].values():
        assert comparison["n"] == 5 and comparison["verdict"]["verdict"] in VERDICTS
    assert set(report["comparisons"]) == {"maml_vs_finetune", "maml_vs_protonets", "protonets_vs_finetune"}
    assert "maml vs protonets: " in result.stderr  # a verdict line per comparison


def test_proto_train_ways_trains_prototypes_on_wider_episodes(omniglot: Path) -> None:
    report = figures_of(bench(omniglot, "--proto-train-ways", "5", "--proto-steps", "2"))
    assert report["protonets"]["train_ways"] == 5 and report["compute"]["gradient_steps"]["protonets"] == 2
    assert report["ways"] == 3 and report["compute"]["same_episodes_as_maml"]["protonets"] is False


def test_missing_set_and_impossible_episodes_are_clean_errors(omniglot: Path) -> None:
    missing = CliRunner().invoke(cli, ["bench", "maml-omniglot", "--data", str(omniglot), "--train", "nope", "--json"])
    assert missing.exit_code != 0 and "no folder nope" in missing.output and "Traceback" not in missing.output
    too_many = bench(omniglot, "--way", "7")
    assert too_many.exit_code != 0 and "7-way" in too_many.output and "Traceback" not in too_many.output
    bad_device = bench(omniglot, "--device", "gpu")
    assert bad_device.exit_code != 0 and "not one of auto, cpu" in bad_device.output


@pytest.fixture(scope="module")
def full_omniglot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full dataset's layout: images_background and images_evaluation, 16 characters in all."""
    root = tmp_path_factory.mktemp("omniglot_full")
    write_set(root / "images_background", alphabets=2, characters=5, drawers=4, seed=2)
    write_set(root / "images_evaluation", alphabets=1, characters=6, drawers=4, seed=3)
    return root


def test_paper_protocol_pools_both_sets_and_rotates_every_class(full_omniglot: Path) -> None:
    report = figures_of(bench(full_omniglot, "--protocol", "paper", "--train-characters", "10"))
    assert report["data"] == {
        "root": str(full_omniglot),
        "protocol": "paper",
        "train_characters": 10,
        "test_characters": 6,
    }
    # 10 training characters, 3 of them (1/12, at least the 3 ways) held out for the baseline's rate; every
    # character at four rotations, test and validation included.
    assert report["classes"] == {"train": 7 * 4, "validation": 3 * 4, "test": 6 * 4}
    assert report["maml"]["accuracy"]["tasks"] == 5


def test_paper_split_is_a_seeded_partition_of_both_sets(full_omniglot: Path) -> None:
    from fewgen_maml.bench_omniglot import paper_split

    train, test = paper_split(full_omniglot, 10, seed=0)
    assert len(train) == 10 and len(test) == 6 and not set(train) & set(test)
    assert {key.split("/")[0] for key in [*train, *test]} == {"images_background", "images_evaluation"}
    assert len({*train, *test}) == 16
    again, _ = paper_split(full_omniglot, 10, seed=0)
    other, _ = paper_split(full_omniglot, 10, seed=1)
    assert list(again) == list(train) and set(other) != set(train)


def test_paper_protocol_needs_both_full_sets(omniglot: Path, full_omniglot: Path) -> None:
    missing = bench(omniglot, "--protocol", "paper")
    assert missing.exit_code != 0 and "images_background" in missing.output and "Traceback" not in missing.output
    too_many = bench(full_omniglot, "--protocol", "paper")  # 1200 training characters of 16
    assert too_many.exit_code != 0 and "none left to test" in too_many.output


def test_random_batch_pretraining_is_an_option(omniglot: Path) -> None:
    report = figures_of(bench(omniglot, "--pretrain-batches", "random"))
    assert report["finetune"]["pretrain_batches"] == "random" and report["finetune"]["updates"] == 2
    assert report["compute"]["same_episodes_as_maml"]["finetune"] is False
