"""N-way K-shot classification: MAML, the fine-tuning baseline and Prototypical Networks, compared fairly.

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
  validation episodes drawn from classes held out of all trainings, so no test episode
  influences it; the number of fine-tuning steps is fixed.
* **Prototypical Networks** (Snell et al. 2017, :mod:`fewgen_maml.protonets`): the same body as an
  embedding, trained episodically; queries go to the nearest class mean of the support set.

**Matched compute, in gradient steps.** MAML's one meta-update is one step of its meta-optimiser;
the classifier's pretraining and the prototypical network's training take as many steps as MAML
took (fewer when a ``minutes`` cap stopped MAML early), each on a meta-batch of episodes replayed
from MAML's own episode stream: the same images, grouped the same way, in the same order (for
ProtoNets only while it trains with MAML's ways). Wall-clock is not matched (a step of MAML costs
several of the others'); each training's seconds are reported. ``pretrain_batches="random"``
pretrains the classifier instead on random mini-batches of the base images, as many images per
step as a meta-update sees (Chen et al. 2019, *A Closer Look at Few-shot Classification*): the
usual classifier pretraining, which does not overfit the episodes as the replay can.

**One batch-norm treatment.** MAML's network normalises every forward pass with the statistics of
the batch it is given (:mod:`fewgen_maml.backbones`): per episode, the support set while adapting
and the query set when classifying, at training and at test. The fine-tuning baseline is adapted
and scored by the same code (a :class:`MAML` that is never meta-trained), and its pretraining
feeds each episode's support set and query set as separate batches too, so the network meets at
test the batches it was trained on (with ``pretrain_batches="random"`` it normalises each random
batch as a whole in pretraining); ProtoNets embeds support and query sets the same way. No method
has running averages.

Test episodes are drawn once from a generator of their own, so the three methods are scored on the
same episodes: each accuracy is a mean over episodes with its 95 % confidence interval
(:mod:`fewgen_maml.stats`), and each pair of methods is compared by the mean paired difference
over the episodes, with its interval and verdict (:func:`fewgen.verdicts.paired_difference`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import vmap

from fewgen.verdicts import describe, paired_difference
from fewgen_maml.backbones import ConvNet
from fewgen_maml.episodes import EpisodeSampler
from fewgen_maml.maml import MAML, MAMLConfig
from fewgen_maml.protonets import ProtoConfig, PrototypicalNetwork
from fewgen_maml.stats import summary
from fewgen_maml.tasks import TaskBatch
from fewgen_maml.training import meta_train

Backbone = Literal["conv4", "conv4-maxpool"]
PretrainBatches = Literal["episodes", "random"]
Progress = Callable[[int, int, dict[str, float]], None]  # (done, total, latest metrics)
T = TypeVar("T")
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
    """Meta-train until ``steps`` meta-updates are done or ``minutes`` of training are spent, both
    counted over every resume (:func:`fewgen_maml.training.meta_train`).

    With ``checkpoint``, an existing file is resumed from (model, optimiser, step count and the
    episode generator's state) and the state is written there every ``checkpoint_every`` updates
    and at the end, so an interrupted step picks up where it stopped. Returns the number of
    meta-updates, the seconds this call spent and the mean query accuracy of the last 100 updates.
    """
    _, fitted = meta_train(
        maml,
        lambda g: sampler.sample(maml.config.meta_batch_size, g),
        steps,
        generator,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        on_step=None if on_progress is None else lambda step, metrics: on_progress(step, steps, metrics),
        minutes=minutes,
    )
    return {
        "meta_updates": fitted.iterations,
        "seconds": round(fitted.seconds, 1),
        "train_query_accuracy": round(fitted.final.get("query_accuracy", math.nan), 4),
    }


def train_on_episodes(
    update: Callable[[T], dict[str, float]],
    draw: Callable[[], T],
    steps: int,
    on_progress: Progress | None = None,
) -> dict[str, float]:
    """``steps`` updates, each on what ``draw`` returns; the seconds spent and the mean training
    query accuracy of the last 100 updates."""
    started = time.perf_counter()
    recent: list[float] = []
    for done in range(1, steps + 1):
        metrics = update(draw())
        recent = [*recent[-99:], metrics["query_accuracy"]]
        if on_progress is not None:
            on_progress(done, steps, metrics)
    return {
        "updates": steps,
        "seconds": round(time.perf_counter() - started, 1),
        "train_query_accuracy": round(sum(recent) / len(recent), 4) if recent else math.nan,
    }


def episode_logits(model: nn.Module, support_x: torch.Tensor, query_x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(T, N*K, classes) and (T, N*Q, classes) outputs, each episode's support set and query set
    normalised as a batch of its own (MAML's forward passes)."""
    return vmap(lambda sx, qx: (model(sx), model(qx)))(support_x, query_x)


def pretrain_classifier(
    model: ConvNet,
    sampler: EpisodeSampler,
    generator: torch.Generator,
    steps: int,
    tasks_per_step: int,
    lr: float = 1e-3,
    on_progress: Progress | None = None,
    batches: PretrainBatches = "episodes",
) -> dict[str, float]:
    """Train ``model`` (its head sized for all ``sampler.classes``) as an ordinary classifier; Adam.

    ``batches="episodes"``: each update draws ``tasks_per_step`` episodes from ``sampler`` (from
    the generator's state, the draws MAML's meta-update makes) and minimises the cross-entropy of
    every support and query image against its class among all the base classes; batch norm sees
    each episode's support set and query set as separate batches (:func:`episode_logits`).
    ``batches="random"``: each update draws as many images as a meta-update sees (``tasks_per_step``
    x N x (K + Q)) at random from all the base classes (:meth:`EpisodeSampler.sample_images`) and
    normalises them as one batch: the classifier pretraining of Chen et al. 2019.
    ``query_accuracy`` is the training accuracy on the query images, or on the random batch.
    """
    if model.head.out_features != sampler.classes:
        raise ValueError(f"the head has {model.head.out_features} outputs for {sampler.classes} classes")
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()

    def descend(logits: torch.Tensor, labels: torch.Tensor) -> float:
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    if batches == "random":
        size = tasks_per_step * sampler.ways * (sampler.shots + sampler.queries)

        def update_random(drawn: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
            images, labels = drawn[0].to(device), drawn[1].to(device)
            logits = model(images)
            loss = descend(logits, labels)
            return {"loss": loss, "query_accuracy": (logits.argmax(-1) == labels).float().mean().item()}

        return train_on_episodes(update_random, lambda: sampler.sample_images(size, generator), steps, on_progress)

    def update(drawn: tuple[TaskBatch, torch.Tensor]) -> dict[str, float]:
        batch, classes = drawn[0].to(device), drawn[1].to(device)
        support, query = episode_logits(model, batch.support_x, batch.query_x)
        logits = torch.cat([support.flatten(0, 1), query.flatten(0, 1)])
        labels = torch.cat([classes.gather(1, batch.support_y).flatten(), classes.gather(1, batch.query_y).flatten()])
        loss = descend(logits, labels)
        query_hits = query.argmax(-1) == classes.gather(1, batch.query_y)
        return {"loss": loss, "query_accuracy": query_hits.float().mean().item()}

    return train_on_episodes(update, lambda: sampler.sample_with_classes(tasks_per_step, generator), steps, on_progress)


def train_protonet(
    net: PrototypicalNetwork,
    sampler: EpisodeSampler,
    generator: torch.Generator,
    steps: int,
    tasks_per_step: int,
    on_progress: Progress | None = None,
) -> dict[str, float]:
    """``steps`` episodic updates of ``net``, each on ``tasks_per_step`` episodes of ``sampler``."""
    return train_on_episodes(net.train_step, lambda: sampler.sample(tasks_per_step, generator), steps, on_progress)


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


def paired_comparison(treatment: torch.Tensor, baseline: torch.Tensor, digits: int = 4) -> dict[str, object]:
    """Mean paired difference (treatment - baseline) of per-episode accuracies, its 95 % CI and
    verdict (:func:`fewgen.verdicts.paired_difference`, rounded for the report), and a line saying so."""
    result = paired_difference(treatment.tolist(), baseline.tolist(), 0.95)
    return {**_rounded(result, digits), "line": describe(result["verdict"])}


def _rounded(value: object, digits: int) -> object:
    if isinstance(value, float):
        return round(value, digits) + 0.0  # + 0.0: no -0.0 in the report
    if isinstance(value, dict):
        return {key: _rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item, digits) for item in value]
    return value


def matched_steps(maml_updates: int, override: int | None) -> int:
    """A baseline's gradient steps: as many as MAML's meta-updates unless ``override`` says otherwise."""
    return maml_updates if override is None else override


@dataclass(frozen=True)
class Comparison:
    """Everything that defines the comparison of MAML, fine-tuning and ProtoNets on one split of classes."""

    shape: Episodes
    maml: MAMLConfig
    backbone: Backbone = "conv4"
    channels: int = 1
    size: int = 28
    rotate_classes: bool = False  # 90° rotations as extra training classes (Omniglot)
    rotate_test_classes: bool = False  # and as extra validation and test classes (the paper's Omniglot protocol)
    meta_steps: int = 60000
    minutes: float | None = None  # wall-clock cap on meta-training
    pretrain_steps: int | None = None  # None: as many as MAML's meta-updates
    pretrain_batches: PretrainBatches = "episodes"  # MAML's replayed episodes, or random batches of base images
    finetune_steps: int = 10
    proto_steps: int | None = None  # None: as many as MAML's meta-updates
    proto_train_ways: int | None = None  # None: the episodes' ways (Snell et al. found more ways help)
    proto: ProtoConfig = field(default_factory=ProtoConfig)
    tasks: int = 600
    validation_tasks: int = 100
    validation_share: float = 0.15  # of the base classes, held out of all trainings to pick the baseline's rate
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


def replay(state: torch.Tensor) -> torch.Generator:
    """A generator in ``state``: the baselines draw MAML's episode stream from its start."""
    generator = torch.Generator()
    generator.set_state(state)
    return generator


def compare(
    base: Mapping[str, torch.Tensor],
    novel: Mapping[str, torch.Tensor],
    setup: Comparison,
    device: str = "cpu",
    checkpoint_dir: Path | None = None,
    note: Callable[[str], None] = lambda _: None,
    on_progress: Progress | None = None,
) -> tuple[dict[str, object], MAML]:
    """Train MAML, the fine-tuning baseline and ProtoNets on ``base``; score all on episodes of ``novel``.

    Returns the JSON report and the meta-trained model (for labelling). ``checkpoint_dir`` makes
    meta-training resumable (``maml.pt``); the baselines' trainings, cheaper, restart.
    """
    shape = setup.shape
    generator = torch.Generator().manual_seed(setup.seed)
    train_keys, validation_keys = split_validation(sorted(base), setup.validation_share, shape.ways, generator)
    stream = generator.get_state()
    train = {key: base[key] for key in train_keys}
    sampler = EpisodeSampler(train, shape.ways, shape.shots, shape.queries, setup.rotate_classes)
    test_sampler = EpisodeSampler(novel, shape.ways, shape.shots, shape.queries, setup.rotate_test_classes)
    validation_sampler = EpisodeSampler(
        {key: base[key] for key in validation_keys}, shape.ways, shape.shots, shape.queries, setup.rotate_test_classes
    )
    tasks_per_step = setup.maml.meta_batch_size

    torch.manual_seed(setup.seed)
    model = build_backbone(setup.backbone, shape.ways, setup.channels, setup.size, setup.maml.bn_steps).to(device)
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
    maml_updates = int(trained["meta_updates"])

    torch.manual_seed(setup.seed + 1)
    classifier = build_backbone(setup.backbone, sampler.classes, setup.channels, setup.size).to(device)
    pretrain_steps = matched_steps(maml_updates, setup.pretrain_steps)
    note(
        f"pretraining the baseline classifier on {sampler.classes} classes, {pretrain_steps} updates "
        f"on {setup.pretrain_batches} batches"
    )
    pretrained = pretrain_classifier(
        classifier,
        sampler,
        replay(stream),
        pretrain_steps,
        tasks_per_step,
        on_progress=on_progress,
        batches=setup.pretrain_batches,
    )

    proto_ways = setup.proto_train_ways or shape.ways
    proto_sampler = (
        sampler
        if proto_ways == shape.ways
        else EpisodeSampler(train, proto_ways, shape.shots, shape.queries, setup.rotate_classes)
    )
    torch.manual_seed(setup.seed + 5)
    protonet = PrototypicalNetwork(
        build_backbone(setup.backbone, shape.ways, setup.channels, setup.size).to(device), setup.proto
    )
    proto_steps = matched_steps(maml_updates, setup.proto_steps)
    note(f"training the prototypical network on {proto_ways}-way episodes, {proto_steps} updates")
    proto_trained = train_protonet(protonet, proto_sampler, replay(stream), proto_steps, tasks_per_step, on_progress)

    note(f"scoring on {setup.tasks} test episodes of {test_sampler.classes} classes")
    validation = draw_episodes(validation_sampler, setup.validation_tasks, setup.seed + 3)
    rate, rate_scores = choose_finetune_rate(
        classifier, setup.backbone, shape, setup.channels, setup.size, setup.finetune_steps, validation
    )
    episodes = draw_episodes(test_sampler, setup.tasks, setup.seed + 4)
    maml_accuracy = episode_accuracy(maml, episodes, setup.maml.test_inner_steps)
    tuner = finetuner(classifier, setup.backbone, shape.ways, setup.channels, setup.size, rate, setup.finetune_steps)
    finetune_accuracy = episode_accuracy(tuner, episodes, setup.finetune_steps)
    proto_accuracy = torch.cat([protonet.evaluate(batch, EVALUATION_CHUNK) for batch in episodes])
    final = {"maml": maml_accuracy[:, -1], "finetune": finetune_accuracy[:, -1], "protonets": proto_accuracy}
    report = {
        "ways": shape.ways,
        "shots": shape.shots,
        "queries": shape.queries,
        "chance": round(1.0 / shape.ways, 4),
        "classes": {
            "train": sampler.classes,
            "validation": validation_sampler.classes,
            "test": test_sampler.classes,
        },
        "compute": {
            "matched_by": "gradient steps",
            "gradient_steps": {"maml": maml_updates, "finetune": pretrain_steps, "protonets": proto_steps},
            "episodes_per_step": tasks_per_step,
            "same_episodes_as_maml": {
                "finetune": setup.pretrain_batches == "episodes" and pretrain_steps <= maml_updates,
                "protonets": proto_ways == shape.ways and proto_steps <= maml_updates,
            },
        },
        "batch_norm": "batch statistics of each episode's support set (adapting, prototypes) and query set "
        "(classifying), in training and at test, for all three methods"
        + ("" if setup.pretrain_batches == "episodes" else " (the baseline's pretraining: of each random batch)")
        + "; no running averages",
        "maml": {
            **accuracy_report(maml_accuracy),
            **trained,
            **asdict(setup.maml),
        },
        "finetune": {
            **accuracy_report(finetune_accuracy),
            **pretrained,
            "pretrain_batches": setup.pretrain_batches,
            "lr": rate,
            "lr_validation_accuracy": rate_scores,
            "steps": setup.finetune_steps,
        },
        "protonets": {
            "accuracy": summary(proto_accuracy.tolist()),
            **proto_trained,
            "train_ways": proto_ways,
            "lr": setup.proto.lr,
            "lr_halving": setup.proto.lr_halving,
            "distance": "squared euclidean",
        },
        "comparisons": {
            f"{treatment}_vs_{baseline}": paired_comparison(final[treatment], final[baseline])
            for treatment, baseline in COMPARISONS
        },
    }
    return report, maml


# (treatment, baseline): each paired difference is treatment minus baseline on the same episodes.
COMPARISONS = (("maml", "finetune"), ("maml", "protonets"), ("protonets", "finetune"))
