"""Meta-training with checkpoints: a resumed run is the uninterrupted run."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import torch
from fewgen_maml.backbones import ConvNet
from fewgen_maml.episodes import EpisodeSampler
from fewgen_maml.maml import MAML, MAMLConfig, config_from_dict
from fewgen_maml.training import meta_train

from fewgen.training import CheckpointMismatch

CONFIG = MAMLConfig(
    inner_lr=0.1,
    inner_steps=2,
    test_inner_steps=3,
    meta_batch_size=2,
    multi_step_loss=True,
    multi_step_loss_anneal=3,
    learn_inner_lr=True,
    per_step_bn=True,
    cosine_meta_lr=True,
    cosine_steps=6,
)


def build(seed: int) -> MAML:
    torch.manual_seed(seed)
    return MAML(ConvNet(1, 3, image_size=6, channels=3, blocks=2, bn_steps=3), CONFIG)


def sampler() -> EpisodeSampler:
    generator = torch.Generator().manual_seed(0)
    images = {c: torch.rand(4, 1, 6, 6, generator=generator) for c in range(5)}
    return EpisodeSampler(images, ways=3, shots=1, queries=2)


def test_resumed_training_equals_uninterrupted_training(tmp_path: Path) -> None:
    sample = partial(sampler().sample, CONFIG.meta_batch_size)
    straight = build(0)
    history, _ = meta_train(straight, sample, 6, torch.Generator().manual_seed(7))

    checkpoint = tmp_path / "maml.pt"
    first = build(0)
    first_half, _ = meta_train(first, sample, 3, torch.Generator().manual_seed(7), checkpoint=checkpoint)
    # A fresh process: another initialisation and generator seed, both replaced by the checkpoint.
    resumed = build(1)
    second_half, summary = meta_train(resumed, sample, 6, torch.Generator().manual_seed(123), checkpoint=checkpoint)

    assert first_half + second_half == history
    assert (summary.resumed_from, summary.iterations) == (3, 6)
    assert resumed.meta_steps == 6
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert torch.equal(straight.inner_lrs, resumed.inner_lrs)
    assert straight.optimizer.param_groups[0]["lr"] == resumed.optimizer.param_groups[0]["lr"]


def test_checkpoints_are_written_atomically_and_load_without_pickled_code(tmp_path: Path) -> None:
    checkpoint = tmp_path / "deep" / "maml.pt"
    maml = build(0)
    steps: list[int] = []
    meta_train(
        maml,
        partial(sampler().sample, 2),
        3,
        torch.Generator().manual_seed(0),
        checkpoint=checkpoint,
        checkpoint_every=2,
        on_step=lambda step, metrics: steps.append(step),
    )
    assert steps == [1, 2, 3]
    assert [p.name for p in checkpoint.parent.iterdir()] == ["maml.pt"]  # no partial files left behind
    payload = torch.load(checkpoint, weights_only=True)
    assert payload["iteration"] == payload["state"]["maml"]["meta_steps"] == 3
    assert config_from_dict(payload["state"]["maml"]["config"]) == CONFIG


def trained_checkpoint(tmp_path: Path, config: MAMLConfig = CONFIG) -> Path:
    checkpoint = tmp_path / "maml.pt"
    torch.manual_seed(0)
    maml = MAML(ConvNet(1, 3, image_size=6, channels=3, blocks=2, bn_steps=3), config)
    meta_train(maml, partial(sampler().sample, 2), 1, torch.Generator().manual_seed(0), checkpoint=checkpoint)
    return checkpoint


def resume(checkpoint: Path, config: MAMLConfig) -> MAML:
    torch.manual_seed(0)
    maml = MAML(ConvNet(1, 3, image_size=6, channels=3, blocks=2, bn_steps=3), config)
    meta_train(maml, partial(sampler().sample, 2), 2, torch.Generator().manual_seed(0), checkpoint=checkpoint)
    return maml


def test_a_checkpoint_of_another_configuration_is_refused(tmp_path: Path) -> None:
    checkpoint = trained_checkpoint(tmp_path)
    with pytest.raises(CheckpointMismatch, match=r"inner_lr.*0\.1.*0\.2") as refused:
        resume(checkpoint, replace(CONFIG, inner_lr=0.2))
    assert "\n" not in str(refused.value)
    # Evaluation settings may differ.
    assert resume(checkpoint, replace(CONFIG, test_inner_steps=10, bn_eval_statistics="running")).meta_steps == 2


def test_new_fields_and_the_old_loss_scale_are_part_of_the_checkpoints_identity(tmp_path: Path) -> None:
    checkpoint = trained_checkpoint(tmp_path)
    with pytest.raises(CheckpointMismatch, match=r"first_order_until"):
        resume(checkpoint, replace(CONFIG, first_order_until=5))
    # Format 1 had the query loss on another scale (N x the mean, whatever Q and K): not resumed.
    payload = torch.load(checkpoint, weights_only=True)
    identity = json.loads(payload["identity"])
    identity["format"] = 1
    payload["identity"] = json.dumps(identity, sort_keys=True)
    torch.save(payload, checkpoint)
    with pytest.raises(CheckpointMismatch, match=r"format: 1 saved, 2 now"):
        resume(checkpoint, CONFIG)
