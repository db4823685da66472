"""Prototypical Networks: prototype and distance arithmetic, per-set batch norm, learning a tiny task."""

from __future__ import annotations

import pytest
import torch
from fewgen_maml.backbones import ConvNet
from fewgen_maml.episodes import EpisodeSampler
from fewgen_maml.protonets import ProtoConfig, PrototypicalNetwork, prototypes, squared_distances


def test_prototypes_are_class_means_and_logits_minus_squared_distances() -> None:
    support = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0, 1, 1])
    centres = prototypes(support, labels, 2)
    assert torch.equal(centres, torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
    shuffled = torch.tensor([2, 0, 3, 1])
    assert torch.equal(prototypes(support[shuffled], labels[shuffled], 2), centres)  # order does not matter
    queries = torch.tensor([[1.0, 1.0], [0.0, 3.0], [3.0, 3.0]])
    # (1,1): 0 + 1 to (1,0), 1 + 4 to (0,3); (0,3): 1 + 9 and 0; (3,3): 4 + 9 and 9 + 0
    assert torch.equal(squared_distances(queries, centres), torch.tensor([[1.0, 5.0], [10.0, 0.0], [13.0, 9.0]]))


def tiny_network(seed: int = 0) -> PrototypicalNetwork:
    torch.manual_seed(seed)
    return PrototypicalNetwork(ConvNet(1, 3, 8, channels=16, blocks=2), ProtoConfig(lr=3e-3))


def pattern_classes(count: int, seed: int, per_class: int = 16, noise: float = 0.4) -> dict[str, torch.Tensor]:
    """8x8 images: a random binary pattern per class, pixel noise and a per-image brightness offset."""
    generator = torch.Generator().manual_seed(seed)
    images = {}
    for c in range(count):
        pattern = (torch.rand(1, 8, 8, generator=generator) < 0.5).float()
        noisy = pattern + noise * torch.randn(per_class, 1, 8, 8, generator=generator)
        images[f"class{c}"] = noisy + 2.0 * torch.randn(per_class, 1, 1, 1, generator=generator)
    return images


def test_logits_use_prototypes_of_the_embedding_with_support_and_query_normalised_apart() -> None:
    net = tiny_network()
    batch = EpisodeSampler(pattern_classes(4, 1), 3, 2, 2).sample(3, torch.Generator().manual_seed(0))
    with torch.no_grad():
        for t in range(batch.tasks):
            sx, sy, qx = batch.support_x[t], batch.support_y[t], batch.query_x[t]
            expected = -squared_distances(net.model.features(qx), prototypes(net.model.features(sx), sy, 3))
            assert torch.allclose(net.episode_logits(sx, sy, qx, 3), expected, atol=1e-5)
            # One batch of support and query together would normalise differently: the sets are separate passes.
            together = net.model.features(torch.cat([sx, qx]))
            pooled = -squared_distances(together[len(sx) :], prototypes(together[: len(sx)], sy, 3))
            assert not torch.allclose(pooled, expected, atol=1e-3)
            accuracy = (expected.argmax(-1) == batch.query_y[t]).float().mean()
            assert net.evaluate(batch)[t] == pytest.approx(accuracy.item())
    assert net.evaluate(batch, chunk_size=2).shape == (3,)


def test_learns_a_tiny_separable_task() -> None:
    images = pattern_classes(6, 0)
    train = EpisodeSampler({key: x[:10] for key, x in images.items()}, 3, 2, 3)
    held_out = EpisodeSampler({key: x[10:] for key, x in images.items()}, 3, 2, 3)
    test = held_out.sample(100, torch.Generator().manual_seed(2))
    net = tiny_network()
    head = net.model.head.weight.detach().clone()
    before = net.evaluate(test).mean().item()
    generator = torch.Generator().manual_seed(1)
    first = net.train_step(train.sample(8, generator))
    for _ in range(39):
        last = net.train_step(train.sample(8, generator))
    after = net.evaluate(test).mean().item()
    assert net.updates == 40
    assert last["loss"] < 0.5 * first["loss"]
    assert after >= 0.9 and after >= before + 0.25, (before, after)
    assert torch.equal(net.model.head.weight, head)  # the classification head is not part of the method


def test_learning_rate_is_halved_as_configured() -> None:
    net = PrototypicalNetwork(ConvNet(1, 3, 8, channels=4, blocks=2), ProtoConfig(lr=1e-3, lr_halving=2))
    batch = EpisodeSampler(pattern_classes(3, 0), 3, 1, 1).sample(2, torch.Generator().manual_seed(0))
    rates = []
    for _ in range(5):
        net.train_step(batch)
        rates.append(net.optimizer.param_groups[0]["lr"])
    assert rates == pytest.approx([1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4])
    with pytest.raises(ValueError, match="lr_halving"):
        ProtoConfig(lr_halving=0)
