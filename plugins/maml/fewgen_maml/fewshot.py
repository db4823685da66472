"""N-way K-shot classification with MAML and with the paper's fine-tuning baseline.

This is the procedure the adapter step, the few-shot evaluator and ``fewgen bench maml-omniglot``
share; it knows images by class (uint8 tensors), not fewgen datasets.

* **MAML**: meta-train the conv-4 network on episodes of the base classes, then on each test
  episode adapt to the support set with ``test_inner_steps`` steps of size alpha and classify the
  query set.
* **Fine-tuning baseline** (the paper's "pretrained" comparison, Finn et al. 2017, section 5.2
  and table 1 of the MAML++ paper for the protocol): train the same network as an ordinary
  classifier over all base classes at once; for each test episode replace its last layer with a
  zero-initialised N-way layer and fine-tune every adapted parameter on the support set by
  gradient descent, then classify the query set. Its step size is chosen from a grid on
  validation episodes drawn from classes held out of both trainings, so no test episode
  influences it; the number of fine-tuning steps is fixed.

Test episodes are drawn once from a generator of their own, so MAML and the baseline are scored
on the same episodes, and each accuracy is a mean over episodes with its 95 % confidence
interval (:mod:`fewgen_maml.stats`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from fewgen_maml.backbones import ConvNet
from fewgen_maml.episodes import EpisodeSampler
from fewgen_maml.maml import MAML, MAMLConfig
from fewgen_maml.stats import summary
from fewgen_maml.tasks import TaskBatch

Backbone = Literal["conv4", "conv4-maxpool"]
Progress = Callable[[int, int, dict[str, float]], None]  # (done, total, latest metrics)
FINETUNE_RATES = (0.01, 0.03, 0.1, 0.3, 1.0)  # step sizes tried on the mean cross-entropy


def build_backbone(backbone: Backbone, ways: int, channels: int, size: int, bn_steps: int = 1) -> ConvNet:
    """The paper's conv-4: ``conv4`` is the Omniglot network (64 filters, strided, spatial mean
    before the head, N(0, 1) head), ``conv4-maxpool`` the MiniImagenet one (32 filters, max-pool,
    flattened), for ``channels`` x ``size`` x ``size`` inputs."""
    if backbone == "conv4":
        model = ConvNet(channels, ways, size, channels=64, downsample="stride", head="mean", bn_steps=bn_steps)
        nn.init.normal_(model.head.weight, std=1.0)
        return model
    if backbone == "conv4-maxpool":
        return ConvNet(channels, ways, size, channels=32, downsample="maxpool", head="flatten", bn_steps=bn_steps)
    raise ValueError(f"backbone must be 'conv4' or 'conv4-maxpool', got {backbone!r}")


@dataclass(frozen=True)
class Episodes:
    """The shape of an episode: N ways, K shots, Q queries per class."""

    ways: int
    shots: int
    queries: int


def meta_train_for(
    maml: MAML,
    sampler: EpisodeSampler,
    generator: torch.Generator,
    steps: int,
    minutes: float | None = None,
    checkpoint: Path | None = None,
    checkpoint_every: int = 200,
    on_progress: Progress | None = None,
) -> dict[str, float]:
    """Meta-train until ``steps`` meta-updates are done or ``minutes`` of wall-clock time are spent.

    With ``checkpoint``, an existing file is resumed from (model, optimiser, step count and the
    episode generator's state) and the state is written there every ``checkpoint_every`` updates
    and at the end, so an interrupted step picks up where it stopped. Returns the number of
    meta-updates, the seconds this call spent and the mean query accuracy of the last 100 updates.
    """
    if checkpoint is not None and checkpoint.exists():
        generator.set_state(maml.load_checkpoint(checkpoint)["generator"])
    started = time.perf_counter()
    deadline = None if minutes is None else started + 60.0 * minutes
    recent: list[float] = []
    while maml.meta_steps < steps and (deadline is None or time.perf_counter() < deadline):
        metrics = maml.meta_step(sampler.sample(maml.config.meta_batch_size, generator))
        recent = [*recent[-99:], metrics.get("query_accuracy", math.nan)]
        if checkpoint is not None and maml.meta_steps % checkpoint_every == 0:
            maml.save_checkpoint(checkpoint, extra={"generator": generator.get_state()})
        if on_progress is not None:
            on_progress(maml.meta_steps, steps, metrics)
    if checkpoint is not None:
        maml.save_checkpoint(checkpoint, extra={"generator": generator.get_state()})
    return {
        "meta_updates": maml.meta_steps,
        "seconds": round(time.perf_counter() - started, 1),
        "train_query_accuracy": round(sum(recent) / len(recent), 4) if recent else math.nan,
    }


def pretrain_classifier(
    model: ConvNet,
    images: Mapping[str, torch.Tensor],
    generator: torch.Generator,
    steps: int,
    minutes: float | None = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    rotate_classes: bool = False,
    on_progress: Progress | None = None,
) -> dict[str, float]:
    """Train ``model`` (its head sized for every class) as an ordinary classifier over ``images``.

    With ``rotate_classes`` each 90° rotation of a class is a class of its own, as in the episodes
    (the head then needs four outputs per class). Adam, cross-entropy, random batches.
    """
    keys = sorted(images, key=str)
    pool = torch.cat([images[key] for key in keys])
    labels = torch.cat([torch.full((images[key].shape[0],), i, dtype=torch.long) for i, key in enumerate(keys)])
    rotations = 4 if rotate_classes else 1
    if model.head.out_features != len(keys) * rotations:
        raise ValueError(f"the head has {model.head.out_features} outputs for {len(keys) * rotations} classes")
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    started = time.perf_counter()
    deadline = None if minutes is None else started + 60.0 * minutes
    done, recent = 0, []
    while done < steps and (deadline is None or time.perf_counter() < deadline):
        index = torch.randint(len(pool), (batch_size,), generator=generator)
        x = pool[index]
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        y = labels[index]
        if rotations > 1:
            turns = torch.randint(rotations, (batch_size,), generator=generator)
            for quarter in range(1, rotations):
                chosen = turns == quarter
                if chosen.any():
                    x[chosen] = torch.rot90(x[chosen], quarter, dims=(-2, -1))
            y = y * rotations + turns
        logits = model(x.to(device))
        loss = F.cross_entropy(logits, y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done += 1
        recent = [*recent[-99:], (logits.argmax(1).cpu() == y).float().mean().item()]
        if on_progress is not None:
            on_progress(done, steps, {"loss": loss.item()})
    return {
        "updates": done,
        "seconds": round(time.perf_counter() - started, 1),
        "train_accuracy": round(sum(recent) / len(recent), 4) if recent else math.nan,
    }


def finetuner(
    pretrained: ConvNet, backbone: Backbone, ways: int, channels: int, size: int, lr: float, steps: int
) -> MAML:
    """The baseline as a MAML object that is never meta-trained: the pretrained body, a zero N-way
    head, and ``steps`` plain gradient steps of size ``lr`` on the support set's mean cross-entropy."""
    model = build_backbone(backbone, ways, channels, size)
    body = {name: value for name, value in pretrained.state_dict().items() if not name.startswith("head.")}
    model.load_state_dict(body, strict=False)
    nn.init.zeros_(model.head.weight)
    nn.init.zeros_(model.head.bias)
    model.to(next(pretrained.parameters()).device)
    config = MAMLConfig(inner_lr=lr, inner_steps=max(steps, 1), test_inner_steps=steps, cross_entropy_scale="mean")
    return MAML(model, config)


def draw_episodes(sampler: EpisodeSampler, tasks: int, seed: int, chunk: int = 50) -> list[TaskBatch]:
    """``tasks`` episodes in chunks, from a generator of their own so every method sees the same ones."""
    generator = torch.Generator().manual_seed(seed)
    return [sampler.sample(min(chunk, tasks - start), generator) for start in range(0, tasks, chunk)]


# Episodes evaluated together: on a CPU, batching 8 tasks' small convolutions was faster than
# both one at a time and 32 or 50 at once (grouped convolutions of many groups are slow).
EVALUATION_CHUNK = 8


def episode_accuracy(maml: MAML, episodes: list[TaskBatch], steps: int) -> torch.Tensor:
    """(tasks, steps + 1) query accuracy of every episode after 0..``steps`` adaptation steps."""
    return torch.cat([maml.evaluate(batch, steps, EVALUATION_CHUNK)["query_accuracy"] for batch in episodes])


def choose_finetune_rate(
    pretrained: ConvNet,
    backbone: Backbone,
    shape: Episodes,
    channels: int,
    size: int,
    steps: int,
    validation: list[TaskBatch],
    rates: tuple[float, ...] = FINETUNE_RATES,
) -> tuple[float, dict[str, float]]:
    """The step size with the best mean validation accuracy after ``steps`` fine-tuning steps."""
    scores = {}
    for rate in rates:
        tuner = finetuner(pretrained, backbone, shape.ways, channels, size, rate, steps)
        scores[rate] = episode_accuracy(tuner, validation, steps)[:, -1].mean().item()
    best = max(rates, key=lambda rate: (scores[rate], -rate))
    return best, {str(rate): round(score, 4) for rate, score in scores.items()}


def accuracy_report(accuracy: torch.Tensor) -> dict[str, object]:
    """Final accuracy with its 95 % CI, and the mean after each adaptation step."""
    return {
        "accuracy": summary(accuracy[:, -1].tolist()),
        "accuracy_by_step": [round(v, 4) for v in accuracy.mean(0).tolist()],
    }


@dataclass(frozen=True)
class Comparison:
    """Everything that defines a MAML vs fine-tuning comparison on one split of classes."""

    shape: Episodes
    maml: MAMLConfig
    backbone: Backbone = "conv4"
    channels: int = 1
    size: int = 28
    rotate_classes: bool = False  # 90° rotations as extra training classes (Omniglot)
    meta_steps: int = 60000
    minutes: float | None = None  # wall-clock cap on meta-training
    pretrain_steps: int = 2000
    pretrain_minutes: float | None = None
    pretrain_batch: int = 64
    finetune_steps: int = 10
    tasks: int = 600
    validation_tasks: int = 100
    validation_share: float = 0.15  # of the base classes, held out of both trainings to pick the baseline's rate
    seed: int = 0


def split_validation(
    keys: list[str], share: float, ways: int, generator: torch.Generator
) -> tuple[list[str], list[str]]:
    """Base classes for training and classes held out for validation (at least ``ways`` of them)."""
    count = max(ways, round(share * len(keys)))
    if len(keys) - count < ways:
        raise ValueError(
            f"{len(keys)} base classes are too few: {count} are held out to choose the baseline's step size "
            f"and {ways}-way training needs {ways} more"
        )
    order = torch.randperm(len(keys), generator=generator).tolist()
    held = sorted(keys[i] for i in order[:count])
    return sorted(keys[i] for i in order[count:]), held


def compare(
    base: Mapping[str, torch.Tensor],
    novel: Mapping[str, torch.Tensor],
    setup: Comparison,
    device: str = "cpu",
    checkpoint_dir: Path | None = None,
    note: Callable[[str], None] = lambda _: None,
    on_progress: Progress | None = None,
) -> tuple[dict[str, object], MAML]:
    """Meta-train MAML and pretrain the baseline on ``base``; score both on episodes of ``novel``.

    Returns the JSON report and the meta-trained model (for labelling). ``checkpoint_dir`` makes
    meta-training resumable (``maml.pt``); the baseline's pretraining, minutes at most, restarts.
    """
    shape = setup.shape
    generator = torch.Generator().manual_seed(setup.seed)
    train_keys, validation_keys = split_validation(sorted(base), setup.validation_share, shape.ways, generator)
    train = {key: base[key] for key in train_keys}
    sampler = EpisodeSampler(train, shape.ways, shape.shots, shape.queries, setup.rotate_classes)
    test_sampler = EpisodeSampler(novel, shape.ways, shape.shots, shape.queries)
    validation_sampler = EpisodeSampler(
        {key: base[key] for key in validation_keys}, shape.ways, shape.shots, shape.queries
    )

    torch.manual_seed(setup.seed)
    model = build_backbone(setup.backbone, shape.ways, setup.channels, setup.size).to(device)
    maml = MAML(model, setup.maml)
    note(f"meta-training MAML on {sampler.classes} classes ({shape.ways}-way {shape.shots}-shot)")
    trained = meta_train_for(
        maml,
        sampler,
        generator,
        setup.meta_steps,
        setup.minutes,
        None if checkpoint_dir is None else checkpoint_dir / "maml.pt",
        on_progress=on_progress,
    )

    rotations = 4 if setup.rotate_classes else 1
    torch.manual_seed(setup.seed + 1)
    classifier = build_backbone(setup.backbone, len(train) * rotations, setup.channels, setup.size).to(device)
    note(f"pretraining the baseline classifier on {len(train) * rotations} classes")
    pretrained = pretrain_classifier(
        classifier,
        train,
        torch.Generator().manual_seed(setup.seed + 2),
        setup.pretrain_steps,
        setup.pretrain_minutes,
        setup.pretrain_batch,
        rotate_classes=setup.rotate_classes,
        on_progress=on_progress,
    )

    note(f"scoring on {setup.tasks} test episodes of {len(novel)} classes")
    validation = draw_episodes(validation_sampler, setup.validation_tasks, setup.seed + 3)
    rate, rate_scores = choose_finetune_rate(
        classifier, setup.backbone, shape, setup.channels, setup.size, setup.finetune_steps, validation
    )
    episodes = draw_episodes(test_sampler, setup.tasks, setup.seed + 4)
    maml_accuracy = episode_accuracy(maml, episodes, setup.maml.test_inner_steps)
    tuner = finetuner(classifier, setup.backbone, shape.ways, setup.channels, setup.size, rate, setup.finetune_steps)
    finetune_accuracy = episode_accuracy(tuner, episodes, setup.finetune_steps)
    report = {
        "ways": shape.ways,
        "shots": shape.shots,
        "queries": shape.queries,
        "chance": round(1.0 / shape.ways, 4),
        "classes": {"train": sampler.classes, "validation": len(validation_keys), "test": len(novel)},
        "maml": {
            **accuracy_report(maml_accuracy),
            **trained,
            "inner_lr": setup.maml.inner_lr,
            "inner_steps": setup.maml.inner_steps,
            "test_inner_steps": setup.maml.test_inner_steps,
            "meta_batch_size": setup.maml.meta_batch_size,
            "first_order": setup.maml.first_order,
        },
        "finetune": {
            **accuracy_report(finetune_accuracy),
            **pretrained,
            "lr": rate,
            "lr_validation_accuracy": rate_scores,
            "steps": setup.finetune_steps,
        },
        "difference": summary((maml_accuracy[:, -1] - finetune_accuracy[:, -1]).tolist()),
    }
    return report, maml
