"""The fair comparison: matched gradient steps on MAML's episodes, one batch-norm treatment, paired verdicts."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from fewgen_maml import fewshot
from fewgen_maml.backbones import ConvNet, TaskBatchNorm
from fewgen_maml.episodes import EpisodeSampler
from fewgen_maml.fewshot import (
    Comparison,
    Episodes,
    build_backbone,
    compare,
    episode_logits,
    finetuner,
    matched_steps,
    meta_train_for,
    paired_comparison,
    pretrain_classifier,
    replay,
    train_protonet,
)
from fewgen_maml.maml import MAML, MAMLConfig
from fewgen_maml.protonets import PrototypicalNetwork
from fewgen_maml.tasks import TaskBatch
from torch.func import functional_call

from fewgen.verdicts import HELPS, HURTS, NO_EFFECT, VERDICTS

SIZE = 8


def class_images(count: int, per_class: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        f"c{c:02d}": torch.randint(0, 256, (per_class, 1, SIZE, SIZE), generator=generator, dtype=torch.uint8)
        for c in range(count)
    }


def network(ways: int, seed: int = 0) -> ConvNet:
    torch.manual_seed(seed)
    return ConvNet(1, ways, SIZE, channels=4, blocks=2)


class RecordingSampler(EpisodeSampler):
    """Remembers the support images of every meta-batch it draws."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.seen: list[torch.Tensor] = []

    def sample_with_classes(self, tasks: int, generator: torch.Generator) -> tuple[TaskBatch, torch.Tensor]:
        drawn = super().sample_with_classes(tasks, generator)
        self.seen.append(drawn[0].support_x)
        return drawn


def test_matched_steps_follow_maml_unless_overridden() -> None:
    assert matched_steps(500, None) == 500
    assert matched_steps(37, None) == 37  # a minutes cap that stopped MAML early stops the baselines there too
    assert matched_steps(500, 20) == 20


def test_baselines_take_mamls_gradient_steps_on_mamls_episodes() -> None:
    images = class_images(6)
    state = torch.Generator().manual_seed(3).get_state()
    samplers = [RecordingSampler(images, 3, 1, 2, rotate_classes=True) for _ in range(3)]
    maml = MAML(network(3), MAMLConfig(inner_lr=0.1, meta_batch_size=2))
    trained = meta_train_for(maml, samplers[0], replay(state), steps=4)
    classifier = network(samplers[1].classes)
    pretrained = pretrain_classifier(classifier, samplers[1], replay(state), matched_steps(maml.meta_steps, None), 2)
    protonet = PrototypicalNetwork(network(3))
    proto = train_protonet(protonet, samplers[2], replay(state), matched_steps(maml.meta_steps, None), 2)
    assert trained["meta_updates"] == pretrained["updates"] == proto["updates"] == protonet.updates == 4
    assert [len(sampler.seen) for sampler in samplers] == [4, 4, 4]  # one meta-batch per gradient step
    for maml_batch, pretrain_batch, proto_batch in zip(*(sampler.seen for sampler in samplers), strict=True):
        assert torch.equal(maml_batch, pretrain_batch) and torch.equal(maml_batch, proto_batch)
    with pytest.raises(ValueError, match="outputs for 24 classes"):
        pretrain_classifier(network(6), samplers[1], replay(state), 1, 2)  # 6 classes x 4 rotations


def test_random_batch_pretraining_sees_as_many_images_as_a_meta_update_in_one_batch() -> None:
    # Chen et al. 2019's baseline: ordinary mini-batches over all base classes, batch norm over each.
    sampler = EpisodeSampler(class_images(6), 3, 1, 2, rotate_classes=True)
    classifier = network(sampler.classes)
    batches: list[tuple[int, ...]] = []
    classifier.register_forward_hook(lambda module, inputs, output: batches.append(tuple(inputs[0].shape)))
    drawn: list[torch.Tensor] = []
    original = sampler.sample_images

    def recording(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = original(count, generator)
        drawn.append(labels)
        return images, labels

    sampler.sample_images = recording  # type: ignore[method-assign]
    trained = pretrain_classifier(classifier, sampler, torch.Generator().manual_seed(0), 3, 4, batches="random")
    assert trained["updates"] == 3
    assert batches == [(4 * 3 * (1 + 2), 1, SIZE, SIZE)] * 3  # one forward pass over the whole random batch
    assert len(drawn) == 3 and len(set(torch.cat(drawn).tolist())) > 3  # many classes in one batch, not 3


def test_pretraining_normalises_each_episodes_support_and_query_sets_apart() -> None:
    model = network(5)
    batch = EpisodeSampler(class_images(5), 5, 1, 2).sample(3, torch.Generator().manual_seed(0))
    with torch.no_grad():
        support, query = episode_logits(model, batch.support_x, batch.query_x)
        for t in range(batch.tasks):
            assert torch.allclose(support[t], model(batch.support_x[t]), atol=1e-5)
            assert torch.allclose(query[t], model(batch.query_x[t]), atol=1e-5)
        # The old baseline's batches mixed everything: statistics over the whole meta-batch differ.
        pooled = model(batch.support_x.flatten(0, 1)).reshape(support.shape)
        assert not torch.allclose(pooled, support, atol=1e-3)


def by_hand(
    model: ConvNet, batch: TaskBatch, t: int, lr: float, steps: int, scale: float, query_scale: float
) -> torch.Tensor:
    """One task adapted as the paper's code does: every pass normalised by its own batch (support, then query);
    ``scale`` and ``query_scale`` multiply the mean cross-entropy of the support and the query set."""
    norms = {id(p) for m in model.modules() if isinstance(m, TaskBatchNorm) for p in m.parameters()}
    params = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters() if id(p) not in norms}
    for _ in range(steps):
        loss = scale * F.cross_entropy(functional_call(model, params, (batch.support_x[t],)), batch.support_y[t])
        grads = torch.autograd.grad(loss, list(params.values()))
        params = {n: (p - lr * g).detach().requires_grad_() for (n, p), g in zip(params.items(), grads, strict=True)}
    with torch.no_grad():
        return query_scale * F.cross_entropy(functional_call(model, params, (batch.query_x[t],)), batch.query_y[t])


def test_fine_tuning_at_test_treats_batch_norm_as_maml_does() -> None:
    ways, steps = 3, 2
    batch = EpisodeSampler(class_images(4), ways, 1, 2).sample(3, torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    tuner = finetuner(build_backbone("conv4", 12, 1, SIZE), "conv4", ways, 1, SIZE, lr=0.3, steps=steps)
    torch.manual_seed(2)
    maml = MAML(build_backbone("conv4", ways, 1, SIZE), MAMLConfig(inner_lr=0.1, test_inner_steps=steps))
    # The baseline steps on the mean cross-entropy; MAML on the official sum / K: N on the support set of
    # K = 1, N * Q / K = 2N on the query set of Q = 2.
    for method, scale, query_scale in ((tuner, 1.0, 1.0), (maml, float(ways), 2.0 * ways)):
        assert method.config.bn_eval_statistics == "batch" and not method.config.per_step_bn
        layers = [m for m in method.model.modules() if isinstance(m, TaskBatchNorm)]
        assert layers and all(not layer.per_step and not hasattr(layer, "running_mean") for layer in layers)
        losses = method.evaluate(batch, steps)["query_loss"][:, -1]
        for t in range(batch.tasks):
            expected = by_hand(method.model, batch, t, method.config.inner_lr, steps, scale, query_scale)
            assert losses[t].item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-5)


def test_finetuner_has_no_running_statistics_and_a_zero_head() -> None:
    tuner = finetuner(ConvNet(1, 40, 28, channels=64, head="mean"), "conv4", 5, 1, 28, lr=0.1, steps=3)
    assert tuner.config.bn_eval_statistics == MAMLConfig().bn_eval_statistics == "batch"
    assert not any(name.startswith("running") for name, _ in tuner.model.named_buffers())
    assert torch.count_nonzero(tuner.model.head.weight) == 0 and tuner.config.test_inner_steps == 3


def test_paired_comparison_reports_difference_interval_and_verdict() -> None:
    ones, zeros = torch.ones(10), torch.zeros(10)
    mixed = torch.tensor([1.0, 0.0] * 5)
    helps = paired_comparison(ones, zeros)
    assert helps["mean"] == 1.0 and helps["ci"] == [1.0, 1.0] and helps["n"] == 10
    assert helps["verdict"]["verdict"] == HELPS and helps["line"].startswith("helps: +1.000")
    assert paired_comparison(zeros, ones)["verdict"]["verdict"] == HURTS
    even = paired_comparison(mixed, torch.tensor([0.0, 1.0] * 5))
    assert even["mean"] == 0.0 and even["verdict"]["verdict"] == NO_EFFECT
    low, high = even["ci"]
    assert low < 0 < high and high == pytest.approx(1.959964 * (10 / 9) ** 0.5 / 10**0.5, abs=1e-4)


def test_compare_reports_three_methods_and_three_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[RecordingSampler] = []

    def recording(*args: object, **kwargs: object) -> RecordingSampler:
        made.append(RecordingSampler(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(fewshot, "EpisodeSampler", recording)
    setup = Comparison(
        shape=Episodes(3, 1, 1),
        maml=MAMLConfig(inner_lr=0.4, test_inner_steps=1, meta_batch_size=2),
        size=SIZE,
        meta_steps=2,
        finetune_steps=1,
        tasks=4,
        validation_tasks=2,
        validation_share=0.3,
    )
    base, novel = class_images(9, seed=0), class_images(4, seed=1)
    report, _ = compare(base, novel, setup)
    training = made[0].seen  # MAML's two meta-batches, then the classifier's, then ProtoNets'
    assert len(training) == 6 and all(torch.equal(training[i], training[i % 2]) for i in range(6))
    assert report["compute"]["matched_by"] == "gradient steps"
    assert report["compute"]["gradient_steps"] == {"maml": 2, "finetune": 2, "protonets": 2}
    assert report["protonets"]["accuracy"]["tasks"] == 4 and report["protonets"]["train_ways"] == 3
    assert set(report["comparisons"]) == {"maml_vs_finetune", "maml_vs_protonets", "protonets_vs_finetune"}
    for entry in report["comparisons"].values():
        assert entry["n"] == 4 and entry["verdict"]["verdict"] in VERDICTS
    difference = report["comparisons"]["maml_vs_protonets"]["mean"]
    assert difference == pytest.approx(
        report["maml"]["accuracy"]["mean"] - report["protonets"]["accuracy"]["mean"], abs=1e-3
    )
    assert report["finetune"]["pretrain_batches"] == "episodes"
    wider, _ = compare(base, novel, replace(setup, proto_train_ways=4, pretrain_steps=1))
    assert wider["protonets"]["train_ways"] == 4 and wider["compute"]["gradient_steps"]["finetune"] == 1
    assert wider["compute"]["same_episodes_as_maml"] == {"finetune": True, "protonets": False}
    made.clear()
    random, _ = compare(base, novel, replace(setup, pretrain_batches="random"))
    assert len(made[0].seen) == 4  # MAML's and ProtoNets' episodes: the classifier drew random batches
    assert random["finetune"]["pretrain_batches"] == "random" and random["finetune"]["updates"] == 2
    assert random["compute"]["same_episodes_as_maml"]["finetune"] is False


def test_compare_meta_trains_with_the_maml_plus_plus_switches() -> None:
    config = MAMLConfig(
        inner_lr=0.4,
        inner_steps=2,
        test_inner_steps=3,
        meta_batch_size=2,
        first_order_until=1,
        grad_clip=10.0,
        multi_step_loss=True,
        multi_step_loss_anneal=4,
        learn_inner_lr=True,
        per_step_bn=True,
        bn_eval_statistics="running",
    )
    setup = Comparison(
        shape=Episodes(3, 1, 1), maml=config, size=SIZE, meta_steps=2, finetune_steps=1, tasks=4, validation_tasks=2
    )
    report, maml = compare(class_images(9, seed=0), class_images(4, seed=1), setup)
    assert maml.config == config and maml.inner_lrs is not None
    assert all(layer.steps == 3 for layer in maml.norm_layers)  # the network was built for per-step batch norm
    assert report["maml"]["per_step_bn"] and report["maml"]["first_order_until"] == 1
    assert report["maml"]["accuracy"]["tasks"] == 4
