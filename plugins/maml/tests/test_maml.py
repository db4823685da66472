"""The batched (vmap) MAML against a plain per-task loop, and the MAML++ switches."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from fewgen_maml.backbones import MLP, ConvNet, NormMode, miniimagenet_conv4, omniglot_conv4
from fewgen_maml.maml import MAML, PAPER_SETTINGS, MAMLConfig, multi_step_loss_weights
from fewgen_maml.tasks import SinusoidTasks, TaskBatch
from torch.func import functional_call

WAYS = 3


def tiny_mlp() -> MLP:
    torch.manual_seed(0)
    model = MLP((1, 6, 6, 1))
    for layer in model.layers:  # larger than the paper's 0.01 so that second-order terms are visible
        torch.nn.init.normal_(layer.weight, std=0.5)
        torch.nn.init.normal_(layer.bias, std=0.1)
    return model


def tiny_convnet(bn_steps: int = 1, downsample: str = "stride") -> ConvNet:
    torch.manual_seed(0)
    return ConvNet(1, WAYS, image_size=6, channels=3, blocks=2, downsample=downsample, bn_steps=bn_steps)


def sinusoid_batch(tasks: int = 3) -> TaskBatch:
    return SinusoidTasks(shots=4, queries=5).sample(tasks, torch.Generator().manual_seed(1))


def image_batch(tasks: int = 3, shots: int = 2, queries: int = 2) -> TaskBatch:
    generator = torch.Generator().manual_seed(2)
    labels = torch.arange(WAYS).repeat_interleave(shots).expand(tasks, -1)
    query_labels = torch.arange(WAYS).repeat_interleave(queries).expand(tasks, -1)
    return TaskBatch(
        torch.rand(tasks, WAYS * shots, 1, 6, 6, generator=generator),
        labels.clone(),
        torch.rand(tasks, WAYS * queries, 1, 6, 6, generator=generator),
        query_labels.clone(),
    )


def reference_meta_gradients(maml: MAML, batch: TaskBatch) -> list[torch.Tensor]:
    """The meta-gradient computed task by task with torch.autograd.grad, as textbooks write MAML."""
    config = maml.config
    model = maml.model

    def loss_fn(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if config.loss == "mse":
            return ((output - target) ** 2).mean()
        if config.cross_entropy_scale == "mean":
            return F.cross_entropy(output, target)
        # The official utils.xent: each example's cross-entropy / K, summed over the set.
        shots = batch.support_x.shape[1] / output.shape[-1]
        return sum(F.cross_entropy(output[i : i + 1], target[i : i + 1]) / shots for i in range(len(target)))

    steps = config.inner_steps
    first_order = maml.first_order_now()
    weights = maml._step_weights() or [0.0] * (steps - 1) + [1.0]
    total = torch.zeros(())
    for t in range(batch.tasks):
        fast = maml.initial_params()
        task_objective = torch.zeros(())
        for step in range(steps):
            output = functional_call(model, fast, (batch.support_x[t],), {"norm": NormMode(step)})
            grads = torch.autograd.grad(
                loss_fn(output, batch.support_y[t]), list(fast.values()), create_graph=not first_order
            )
            fast = {
                name: value - (config.inner_lr if maml.inner_lrs is None else maml.inner_lrs[i, step]) * g
                for i, ((name, value), g) in enumerate(zip(fast.items(), grads, strict=True))
            }
            query = functional_call(model, fast, (batch.query_x[t],), {"norm": NormMode(step + 1)})
            task_objective = task_objective + weights[step] * loss_fn(query, batch.query_y[t])
        total = total + task_objective
    parameters = maml.meta_parameters()
    return list(torch.autograd.grad(total / batch.tasks, parameters, allow_unused=True))


def batched_meta_gradients(maml: MAML, batch: TaskBatch) -> list[torch.Tensor]:
    maml.meta_step(batch)
    return [p.grad for p in maml.meta_parameters()]


def assert_same_gradients(maml: MAML, batch: TaskBatch) -> list[torch.Tensor]:
    reference_maml = copy.deepcopy(maml)
    expected = reference_meta_gradients(reference_maml, batch)
    actual = batched_meta_gradients(maml, batch)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        e = torch.zeros_like(a) if e is None else e
        torch.testing.assert_close(a, e, atol=1e-5, rtol=1e-4)
    return actual


@pytest.mark.parametrize("first_order", [False, True])
def test_mlp_meta_gradient_matches_the_per_task_loop(first_order: bool) -> None:
    config = MAMLConfig(loss="mse", inner_lr=0.05, inner_steps=2, first_order=first_order)
    assert_same_gradients(MAML(tiny_mlp(), config), sinusoid_batch())


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("downsample", ["stride", "maxpool"])
def test_convnet_with_batch_norm_meta_gradient_matches_the_per_task_loop(first_order: bool, downsample: str) -> None:
    config = MAMLConfig(inner_lr=0.1, inner_steps=2, first_order=first_order)
    assert_same_gradients(MAML(tiny_convnet(downsample=downsample), config), image_batch())


def test_maml_plus_plus_meta_gradient_matches_the_per_task_loop() -> None:
    config = MAMLConfig(
        inner_lr=0.1,
        inner_steps=3,
        multi_step_loss=True,
        multi_step_loss_anneal=10,
        learn_inner_lr=True,
        per_step_bn=True,
    )
    maml = MAML(tiny_convnet(bn_steps=4), config)
    maml.meta_steps = 4  # part-way through the annealing: every step's loss weighs something
    gradients = assert_same_gradients(maml, image_batch())
    assert gradients[-1].abs().sum() > 0  # the learning rates get a gradient


@pytest.mark.parametrize("backbone", ["omniglot", "miniimagenet"])
def test_paper_backbones_meta_gradient_matches_the_per_task_loop(backbone: str) -> None:
    # Float64: in float32 these deep, small-batch networks round differently along the two paths
    # (max-pool near-ties, batch norm over five images) by up to a per cent; in float64 they agree.
    torch.manual_seed(0)
    if backbone == "omniglot":
        model, channels, side, inner_lr = omniglot_conv4(ways=5), 1, 28, 0.4
    else:
        model, channels, side, inner_lr = miniimagenet_conv4(ways=5), 3, 84, 0.01
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(5).expand(2, -1).clone()
    images = torch.rand(2, 2, 5, channels, side, side, generator=generator, dtype=torch.float64)
    batch = TaskBatch(images[0], labels, images[1], labels)
    maml = MAML(model.double(), MAMLConfig(inner_lr=inner_lr, inner_steps=1))
    expected = reference_meta_gradients(copy.deepcopy(maml), batch)
    actual = batched_meta_gradients(maml, batch)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, atol=1e-9, rtol=1e-7)


def test_first_order_differs_from_second_order() -> None:
    batch = sinusoid_batch()
    second = batched_meta_gradients(MAML(tiny_mlp(), MAMLConfig(loss="mse", inner_lr=0.1)), batch)
    first = batched_meta_gradients(MAML(tiny_mlp(), MAMLConfig(loss="mse", inner_lr=0.1, first_order=True)), batch)
    difference = sum((s - f).abs().sum() for s, f in zip(second, first, strict=True))
    assert difference > 1e-3 * sum(s.abs().sum() for s in second)


def test_first_order_gradient_is_the_query_gradient_at_the_adapted_parameters() -> None:
    maml = MAML(tiny_mlp(), MAMLConfig(loss="mse", inner_lr=0.1, first_order=True))
    batch = sinusoid_batch(tasks=1)
    adapted = {
        name: value[0].clone().requires_grad_()
        for name, value in maml.adapt(None, batch.support_x, batch.support_y, 1).items()
    }
    loss = ((functional_call(maml.model, adapted, (batch.query_x[0],)) - batch.query_y[0]) ** 2).mean()
    expected = torch.autograd.grad(loss, list(adapted.values()))
    actual = batched_meta_gradients(maml, batch)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, atol=1e-6, rtol=1e-5)


def test_official_scaling_is_a_larger_step_on_the_mean_loss() -> None:
    # The official loss, sum over the support set / shots, is N x the mean: alpha on it equals N alpha on the mean.
    batch = image_batch(tasks=2)
    official = MAML(tiny_convnet(), MAMLConfig(inner_lr=0.1, cross_entropy_scale="shots"))
    mean = MAML(tiny_convnet(), MAMLConfig(inner_lr=0.1 * WAYS, cross_entropy_scale="mean"))
    a = official.adapt(None, batch.support_x, batch.support_y, 2)
    b = mean.adapt(None, batch.support_x, batch.support_y, 2)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=1e-5)


def test_learned_inner_learning_rates_change_and_fixed_ones_do_not_exist() -> None:
    batch = image_batch()
    fixed = MAML(tiny_convnet(), MAMLConfig(inner_lr=0.1, inner_steps=2))
    assert fixed.inner_lrs is None
    learned = MAML(tiny_convnet(), MAMLConfig(inner_lr=0.1, inner_steps=2, learn_inner_lr=True))
    assert learned.inner_lrs is not None
    assert learned.inner_lrs.shape == (len(learned.adapted_names), 2)
    before = learned.inner_lrs.detach().clone()
    for _ in range(2):
        learned.meta_step(batch)
    assert not torch.equal(learned.inner_lrs.detach(), before)
    assert any(learned.inner_lrs is p for group in learned.optimizer.param_groups for p in group["params"])


def test_batch_norm_weights_are_meta_learned_but_not_adapted() -> None:
    maml = MAML(tiny_convnet(), MAMLConfig())
    assert all("norm" not in name for name in maml.adapted_names)
    assert "head.weight" in maml.adapted_names
    norm = maml.model.blocks[0].norm
    before = norm.bias.detach().clone()
    maml.meta_step(image_batch())
    assert not torch.equal(norm.bias.detach(), before)


def test_per_step_batch_norm_collects_running_statistics_for_every_step() -> None:
    maml = MAML(tiny_convnet(bn_steps=3), MAMLConfig(inner_steps=2, per_step_bn=True, bn_eval_statistics="running"))
    maml.meta_step(image_batch())
    for block in maml.model.blocks:
        assert (block.norm.running_mean != 0).all(dim=1).all()  # every step's set moved
    transductive = MAML(copy.deepcopy(maml.model), MAMLConfig(inner_steps=2, per_step_bn=True))
    batch = image_batch()
    assert not torch.allclose(maml.evaluate(batch, 2)["query_loss"], transductive.evaluate(batch, 2)["query_loss"])


def test_batch_norm_sets_must_match_the_configuration() -> None:
    with pytest.raises(ValueError, match="bn_steps=3"):
        MAML(tiny_convnet(), MAMLConfig(inner_steps=2, per_step_bn=True))
    with pytest.raises(ValueError, match="bn_steps=1"):
        MAML(tiny_convnet(bn_steps=3), MAMLConfig(inner_steps=2))


def test_multi_step_loss_weights_follow_maml_plus_plus() -> None:
    assert multi_step_loss_weights(5, 0.0) == pytest.approx([0.2] * 5)
    end = multi_step_loss_weights(5, 1.0)
    assert end[:4] == pytest.approx([0.006] * 4)
    assert end[4] == pytest.approx(1 - 4 * 0.006)
    for progress in (0.0, 0.3, 0.7, 1.0, 2.0):
        assert sum(multi_step_loss_weights(5, progress)) == pytest.approx(1.0)
    maml = MAML(tiny_mlp(), MAMLConfig(loss="mse", inner_steps=3, multi_step_loss=True, multi_step_loss_anneal=4))
    assert maml._step_weights() == pytest.approx([1 / 3] * 3)
    maml.meta_steps = 4
    assert maml._step_weights() is None  # annealed: the last step's loss alone


def test_cosine_meta_learning_rate_falls_to_its_minimum() -> None:
    config = MAMLConfig(loss="mse", meta_lr=1e-2, cosine_meta_lr=True, cosine_steps=4, min_meta_lr=1e-4)
    maml = MAML(tiny_mlp(), config)
    rates = []
    for _ in range(4):
        rates.append(maml.optimizer.param_groups[0]["lr"])
        maml.meta_step(sinusoid_batch())
    assert rates[0] == pytest.approx(1e-2)
    assert rates[2] == pytest.approx(1e-4 + (1e-2 - 1e-4) * (1 + math.cos(math.pi / 2)) / 2)
    assert maml.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)


def test_query_loss_is_the_official_sum_over_the_query_set_divided_by_shots() -> None:
    # 1 shot, 3 queries per class: the official meta-loss is 3 x 3 / 1 = 9 times the mean cross-entropy.
    batch = image_batch(tasks=2, shots=1, queries=3)
    assert_same_gradients(MAML(tiny_convnet(), MAMLConfig(inner_lr=0.1, inner_steps=2)), batch)
    maml = MAML(tiny_convnet(), MAMLConfig(inner_lr=0.1))
    logits = maml.predict(
        {name: p.detach()[None].expand(2, *p.shape) for name, p in maml.initial_params().items()}, batch.query_x, step=0
    )
    mean = torch.stack([F.cross_entropy(logits[t], batch.query_y[t]) for t in range(2)])
    torch.testing.assert_close(maml.evaluate(batch, 0)["query_loss"][:, 0], 9 * mean)


@pytest.mark.parametrize("scale", ["shots", "mean"])
def test_gradient_clipping_clamps_the_meta_gradient_of_the_official_loss(scale: str) -> None:
    # cbfinn/maml: tf.clip_by_value of the gradient of sum(CE / K) / tasks; MAML++: clamp_ of the gradient
    # of the mean over tasks of the mean cross-entropy. Both clamp each element after the backward pass.
    batch = image_batch(tasks=2, shots=1, queries=3)
    config = MAMLConfig(inner_lr=0.1 if scale == "shots" else 0.1 * WAYS, cross_entropy_scale=scale)
    unclipped = reference_meta_gradients(MAML(tiny_convnet(), config), batch)
    threshold = torch.cat([g.abs().flatten() for g in unclipped]).median().item()
    clipped = batched_meta_gradients(MAML(tiny_convnet(), replace(config, grad_clip=threshold)), batch)
    for actual, expected in zip(clipped, unclipped, strict=True):
        torch.testing.assert_close(actual, expected.clamp(-threshold, threshold), atol=1e-6, rtol=1e-4)
    assert sum(int((g.abs() > threshold).sum()) for g in unclipped) > 0  # some elements were clipped


def test_official_meta_gradient_is_queries_over_shots_times_ways_larger_than_maml_plus_plus() -> None:
    # With the same inner steps (alpha x N on the mean), only the meta-loss scale differs: N Q / K = 9 here,
    # which is why a clipping threshold of 10 means different things on the two scales.
    batch = image_batch(tasks=2, shots=1, queries=3)
    official = batched_meta_gradients(MAML(tiny_convnet(), MAMLConfig(inner_lr=0.1)), batch)
    plus_plus = batched_meta_gradients(
        MAML(tiny_convnet(), MAMLConfig(inner_lr=0.1 * WAYS, cross_entropy_scale="mean")), batch
    )
    for a, b in zip(official, plus_plus, strict=True):
        torch.testing.assert_close(a, 9 * b, atol=1e-5, rtol=1e-4)


def test_gradient_clipping_leaves_learned_inner_rates_alone() -> None:
    # MAML++ clamps the classifier's parameters only, not its learned per-layer per-step learning rates.
    config = MAMLConfig(inner_lr=0.1, inner_steps=2, learn_inner_lr=True, grad_clip=1e-6)
    maml = MAML(tiny_convnet(), config)
    batched_meta_gradients(maml, image_batch())
    assert max(p.grad.abs().max().item() for p in maml.model.parameters()) <= 1e-6
    assert maml.inner_lrs is not None and maml.inner_lrs.grad.abs().max().item() > 1e-5


def test_derivative_order_annealing_is_first_order_then_second_order() -> None:
    batch = sinusoid_batch()
    base = MAMLConfig(loss="mse", inner_lr=0.1, inner_steps=2)
    first = batched_meta_gradients(MAML(tiny_mlp(), replace(base, first_order=True)), batch)
    second = batched_meta_gradients(MAML(tiny_mlp(), base), batch)
    assert sum((s - f).abs().sum() for s, f in zip(second, first, strict=True)) > 1e-3
    for done, expected in ((0, first), (1, first), (2, second), (5, second)):
        annealed = MAML(tiny_mlp(), replace(base, first_order_until=2))
        annealed.meta_steps = done
        assert annealed.first_order_now() == (done < 2)
        for a, e in zip(batched_meta_gradients(annealed, batch), expected, strict=True):
            torch.testing.assert_close(a, e, atol=1e-6, rtol=1e-5)
    annealed = MAML(tiny_mlp(), replace(base, first_order_until=2))
    for _ in range(2):
        annealed.meta_step(batch)
    assert not annealed.first_order_now()  # switched after two real meta-updates
    assert MAML(tiny_mlp(), replace(base, first_order=True)).first_order_now()


def test_gradient_clipping_bounds_every_element() -> None:
    maml = MAML(tiny_mlp(), MAMLConfig(loss="mse", inner_lr=0.1, grad_clip=1e-3))
    gradients = batched_meta_gradients(maml, sinusoid_batch())
    largest = max(g.abs().max().item() for g in gradients)
    assert largest == pytest.approx(1e-3)  # float32 1e-3: clipping happened, and went no further


def test_evaluate_changes_nothing_and_reports_every_step() -> None:
    maml = MAML(tiny_convnet(), MAMLConfig(inner_lr=0.5, test_inner_steps=4))
    before = copy.deepcopy(maml.model.state_dict())
    batch = image_batch(tasks=2)
    result = maml.evaluate(batch)
    assert result["query_loss"].shape == (2, 5)
    assert result["query_accuracy"].shape == (2, 5)
    assert ((result["query_accuracy"] >= 0) & (result["query_accuracy"] <= 1)).all()
    for name, value in maml.model.state_dict().items():
        assert torch.equal(value, before[name])
    # The support set is the query set here, so adapting on it must lower its loss.
    same = TaskBatch(batch.support_x, batch.support_y, batch.support_x, batch.support_y)
    losses = maml.evaluate(same)["query_loss"]
    assert (losses[:, -1] < losses[:, 0]).all()


def test_evaluating_in_chunks_changes_nothing() -> None:
    maml = MAML(tiny_convnet(), MAMLConfig(inner_lr=0.5, test_inner_steps=2))
    batch = image_batch(tasks=5)
    whole = maml.evaluate(batch)
    chunked = maml.evaluate(batch, chunk_size=2)
    for name, value in whole.items():
        torch.testing.assert_close(chunked[name], value)
    adapted = maml.adapt(None, batch.support_x, batch.support_y, chunk_size=2)
    torch.testing.assert_close(
        maml.predict(adapted, batch.query_x, 2, chunk_size=3), maml.predict(adapted, batch.query_x, 2)
    )


def test_adapt_and_predict_agree_with_evaluate() -> None:
    maml = MAML(tiny_convnet(), MAMLConfig(inner_lr=0.5, cross_entropy_scale="mean"))
    batch = image_batch(tasks=2)
    adapted = maml.adapt(None, batch.support_x, batch.support_y, 3)
    assert all(value.shape[0] == 2 and not value.requires_grad for value in adapted.values())
    logits = maml.predict(adapted, batch.query_x, step=3)
    assert logits.shape == (2, WAYS * 2, WAYS)
    losses = torch.stack([F.cross_entropy(logits[t], batch.query_y[t]) for t in range(2)])
    torch.testing.assert_close(losses, maml.evaluate(batch, 3)["query_loss"][:, -1], atol=1e-5, rtol=1e-5)


def test_meta_training_on_sinusoids_makes_one_step_of_adaptation_useful() -> None:
    torch.manual_seed(0)
    maml = MAML(MLP((1, 40, 40, 1)), MAMLConfig(loss="mse", inner_lr=0.01, meta_lr=1e-2))
    tasks = SinusoidTasks(shots=10, queries=10)
    generator = torch.Generator().manual_seed(0)
    held_out = tasks.sample(100, torch.Generator().manual_seed(99))
    before = maml.evaluate(held_out, 1)["query_loss"].mean(0)
    for _ in range(200):
        maml.meta_step(tasks.sample(10, generator))
    after = maml.evaluate(held_out, 1)["query_loss"].mean(0)
    assert after[1] < 0.9 * before[1]  # better after one step than the initialisation was
    assert after[1] < 0.95 * after[0]  # and the one step now helps


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"inner_steps": 0}, "inner_steps"),
        ({"loss": "hinge"}, "loss"),
        ({"bn_eval_statistics": "running"}, "per_step_bn"),
        ({"cosine_meta_lr": True}, "cosine_steps"),
        ({"grad_clip": 0.0}, "grad_clip"),
        ({"cross_entropy_scale": "sum"}, "cross_entropy_scale"),
        ({"first_order_until": -1}, "first_order_until"),
    ],
)
def test_bad_configurations_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MAMLConfig(**changes)


def test_paper_settings() -> None:
    assert PAPER_SETTINGS["sinusoid"].inner_lr == 0.01 and PAPER_SETTINGS["sinusoid"].loss == "mse"
    assert PAPER_SETTINGS["omniglot-5way"].inner_lr == 0.4 and PAPER_SETTINGS["omniglot-5way"].meta_batch_size == 32
    assert PAPER_SETTINGS["omniglot-20way"].inner_steps == 5
    assert (
        PAPER_SETTINGS["miniimagenet-1shot"].inner_lr == 0.01 and PAPER_SETTINGS["miniimagenet-1shot"].grad_clip == 10
    )
