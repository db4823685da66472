"""``fewgen bench maml-omniglot``: N-way K-shot Omniglot, MAML beside fine-tuning and ProtoNets.

Meta-trains on Omniglot characters (every character and its 90° rotations are classes, as in the
paper) within a step or wall-clock budget, trains the fine-tuning baseline and Prototypical
Networks with as many gradient steps on the same episodes, and tests on other characters:
accuracy and 95 % CI over the same test episodes for the three methods and the paired difference
of each pair with its verdict (:mod:`fewgen_maml.fewshot`). Images are inverted and resized to
28x28 as the official code prepares them.

Two protocols. ``sets`` (the default): train on the characters of one folder (``--train``) and
test on those of another (``--test``), as drawn (no rotations); it runs on the small background
subsets. ``paper``: the paper's split (after Santoro et al. 2016, as the official
``data_generator.py`` makes it): the characters of ``images_background`` and
``images_evaluation`` pooled (1623), shuffled by the seed, the first 1200 for training (of which
100 are held out to choose the baseline's step size, the official code's validation characters)
and the other 423 for testing, every character at 0, 90, 180 and 270 degrees a class of its own
in training, validation and test.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from fewgen.bench import Bench, BenchResult, bench_command

TARGET_5WAY_1SHOT = 0.95
PAPER_SETS = ("images_background", "images_evaluation")
PAPER_TRAIN_CHARACTERS = 1200
PAPER_VALIDATION_CHARACTERS = 100  # of the training characters, the official code's num_val


def character_images(folder: Path) -> dict[str, object]:
    """Every ``<alphabet>/<character>`` folder's images, 28x28, strokes bright on black."""
    from fewgen_maml.episodes import load_class_images

    items = [(f"{path.parent.parent.name}/{path.parent.name}", path) for path in sorted(folder.glob("*/*/*.png"))]
    if not items:
        raise click.BadParameter(f"no <alphabet>/<character>/*.png images under {folder}")
    return load_class_images(items, size=(28, 28), channels=1, invert=True)


def paper_split(root: Path, train_characters: int, seed: int) -> tuple[dict[str, object], dict[str, object]]:
    """The paper's Omniglot split: both sets' characters pooled, shuffled by ``seed``, the first
    ``train_characters`` for training and the rest for testing (keys ``<set>/<alphabet>/<character>``)."""
    import torch

    pooled: dict[str, object] = {}
    for name in PAPER_SETS:
        if not (root / name).is_dir():
            raise click.BadParameter(f"--protocol paper needs {' and '.join(PAPER_SETS)} in {root}; no {name}")
        pooled.update({f"{name}/{key}": images for key, images in character_images(root / name).items()})
    keys = sorted(pooled)
    if len(keys) <= train_characters:
        raise click.BadParameter(
            f"{len(keys)} characters in {root}: none left to test on after {train_characters} for training",
            param_hint="--train-characters",
        )
    order = torch.randperm(len(keys), generator=torch.Generator().manual_seed(seed)).tolist()
    shuffled = [keys[i] for i in order]
    return {key: pooled[key] for key in shuffled[:train_characters]}, {
        key: pooled[key] for key in shuffled[train_characters:]
    }


@bench_command("maml-omniglot", device=True)
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The Omniglot folder holding the sets (for --protocol paper: images_background and images_evaluation).",
)
@click.option(
    "--protocol",
    type=click.Choice(["sets", "paper"]),
    default="sets",
    show_default=True,
    help="sets: train on --train, test on --test, test characters as drawn; paper: both full sets pooled, "
    "shuffled by --seed, 1200 characters for training and 423 for testing, rotations as classes throughout.",
)
@click.option(
    "--train-characters",
    type=click.IntRange(min=1),
    default=PAPER_TRAIN_CHARACTERS,
    show_default=True,
    help="With --protocol paper: characters for training (the rest test).",
)
@click.option(
    "--train",
    "train_set",
    default="images_background_small1",
    show_default=True,
    help="Set whose characters MAML is meta-trained on (--protocol sets).",
)
@click.option(
    "--test",
    "test_set",
    default="images_background_small2",
    show_default=True,
    help="Set whose characters the test episodes are drawn from (--protocol sets).",
)
@click.option("--way", type=int, default=5, show_default=True)
@click.option("--shot", type=int, default=1, show_default=True)
@click.option(
    "--queries",
    type=int,
    default=1,
    show_default=True,
    help="Query images per class in training and test episodes (the official code: 1).",
)
@click.option("--minutes", type=float, help="Wall-clock cap on meta-training (the issue: 60 CPU-minutes).")
@click.option("--steps", type=int, default=60000, show_default=True, help="Meta-updates at most (the paper: 60000).")
@click.option(
    "--meta-batch", type=int, help="Episodes per meta-update (default: the paper's, 32 for 5-way, 16 for 20-way)."
)
@click.option("--inner-lr", type=float, help="alpha (default: the paper's, 0.4 for 5-way, 0.1 for 20-way).")
@click.option("--inner-steps", type=int, help="Adaptation steps in training (default: 1 for 5-way, 5 for 20-way).")
@click.option("--test-steps", type=int, help="Adaptation steps at test (default: 3 for 5-way, 5 for 20-way).")
@click.option("--first-order", is_flag=True, help="First-order MAML.")
@click.option(
    "--pretrain-steps",
    type=int,
    help="Baseline classifier updates (default: as many as MAML's meta-updates, on the same episodes).",
)
@click.option(
    "--pretrain-batches",
    type=click.Choice(["episodes", "random"]),
    default="episodes",
    show_default=True,
    help="Baseline pretraining on MAML's episodes, or on random batches of as many training images (Chen et al. 2019).",
)
@click.option("--finetune-steps", type=int, default=10, show_default=True, help="Baseline steps per support set.")
@click.option("--proto-steps", type=int, help="ProtoNets updates (default: as many as MAML's meta-updates).")
@click.option(
    "--proto-train-ways", type=int, help="N of ProtoNets' training episodes (default: --way; Snell et al. used 60)."
)
@click.option("--tasks", type=int, default=600, show_default=True, help="Test episodes.")
@click.option(
    "--validation-tasks",
    type=int,
    default=100,
    show_default=True,
    help="Episodes of held-out training characters that choose the baseline's step size.",
)
@click.option(
    "--checkpoint-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep resumable checkpoints here (an interrupted run continues).",
)
def maml_omniglot(
    bench: Bench,
    data: Path,
    protocol: str,
    train_characters: int,
    train_set: str,
    test_set: str,
    way: int,
    shot: int,
    queries: int,
    minutes: float | None,
    steps: int,
    meta_batch: int | None,
    inner_lr: float | None,
    inner_steps: int | None,
    test_steps: int | None,
    first_order: bool,
    pretrain_steps: int | None,
    pretrain_batches: str,
    finetune_steps: int,
    proto_steps: int | None,
    proto_train_ways: int | None,
    tasks: int,
    validation_tasks: int,
    checkpoint_dir: Path | None,
) -> BenchResult:
    """Omniglot N-way K-shot accuracy of MAML, fine-tuning and ProtoNets, with 95% CIs and verdicts.

    --seed seeds the models, the episodes and (--protocol paper) the split; --threads defaults to
    fewgen's thread policy, no longer torch's one thread per CPU; --device auto trains on CUDA when
    present, as the fewshot evaluator does.
    """
    from fewgen_maml.fewshot import Comparison, Episodes, compare
    from fewgen_maml.maml import PAPER_SETTINGS, MAMLConfig

    counts = (shot, queries, tasks, validation_tasks, finetune_steps, pretrain_steps or 1, proto_steps or 1)
    if min(way - 1, (proto_train_ways or way) - 1, *counts) < 1:
        raise click.BadParameter(
            "need --way, --proto-train-ways >= 2 and --shot, --queries, --tasks, --validation-tasks, "
            "--finetune-steps, --pretrain-steps, --proto-steps >= 1"
        )
    device = bench.resolved_device()  # the resolved one is in the settings
    seed = bench.seed
    paper = PAPER_SETTINGS["omniglot-5way" if way <= 5 else "omniglot-20way"]
    config = MAMLConfig(
        inner_lr=inner_lr if inner_lr is not None else paper.inner_lr,
        inner_steps=inner_steps if inner_steps is not None else paper.inner_steps,
        test_inner_steps=test_steps if test_steps is not None else paper.test_inner_steps,
        meta_batch_size=meta_batch if meta_batch is not None else paper.meta_batch_size,
        first_order=first_order,
    )
    if protocol == "sets":
        for name in (train_set, test_set):
            if not (data / name).is_dir():
                raise click.BadParameter(f"no folder {name} in {data}", param_hint="--train/--test")

    def note(message: str) -> None:
        bench.say(f"maml-omniglot: {message}")

    started = time.perf_counter()
    if protocol == "paper":
        note(f"loading {' and '.join(str(data / name) for name in PAPER_SETS)}")
        base, novel = paper_split(data, train_characters, seed)
        sets = {"protocol": "paper", "train_characters": len(base), "test_characters": len(novel)}
        validation_share = PAPER_VALIDATION_CHARACTERS / PAPER_TRAIN_CHARACTERS
    else:
        note(f"loading {data / train_set} and {data / test_set}")
        base = character_images(data / train_set)
        novel = character_images(data / test_set)
        sets = {"protocol": "sets", "train": train_set, "test": test_set}
        validation_share = Comparison.validation_share
    setup = Comparison(
        shape=Episodes(way, shot, queries),
        maml=config,
        rotate_classes=True,
        rotate_test_classes=protocol == "paper",
        validation_share=validation_share,
        meta_steps=steps,
        minutes=minutes,
        pretrain_steps=pretrain_steps,
        pretrain_batches=pretrain_batches,  # type: ignore[arg-type]
        finetune_steps=finetune_steps,
        proto_steps=proto_steps,
        proto_train_ways=proto_train_ways,
        tasks=tasks,
        validation_tasks=validation_tasks,
        seed=seed,
    )
    last_report = [0.0]

    def progress(done: int, total: int, metrics: dict[str, float]) -> None:
        now = time.perf_counter()
        if now - last_report[0] > 30 or done == total:
            last_report[0] = now
            shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k in ("query_accuracy", "loss"))
            note(f"{done}/{total} updates, {now - started:.0f} s, {shown}")

    try:
        report, _ = compare(base, novel, setup, device, checkpoint_dir, note, progress)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    for name, comparison in report["comparisons"].items():  # type: ignore[union-attr]
        note(f"{name.replace('_', ' ')}: {comparison['line']}")
    figures = {"data": {"root": str(data), **sets}, **report, "seconds": round(time.perf_counter() - started, 1)}
    target, met = None, None
    if way == 5 and shot == 1:  # the target is for 5-way 1-shot
        target = {"what": "MAML, 5-way 1-shot, mean test accuracy", "accuracy_at_least": TARGET_5WAY_1SHOT}
        met = report["maml"]["accuracy"]["mean"] >= TARGET_5WAY_1SHOT  # type: ignore[index]
    return BenchResult(figures, target=target, met=met, settings={"device": device})
