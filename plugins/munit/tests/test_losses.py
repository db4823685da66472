"""MUNIT's loss terms against values worked out by hand, and the official weighting."""

from __future__ import annotations

import pytest
import torch
from fewgen_munit.losses import (
    TERMS,
    LossWeights,
    content_recon_loss,
    cycle_loss,
    discriminator_objective,
    generator_objective,
    generator_terms,
    image_recon_loss,
    instance_normalise,
    lsgan_dis_loss,
    lsgan_gen_loss,
    perceptual_loss,
    recon_loss,
    style_recon_loss,
    vgg_preprocess,
)
from fewgen_munit.model import Munit
from torch import nn


def test_reconstruction_terms_by_hand() -> None:
    # |0.5 - 0| + |-1 - 1| + |2 - 2| + |0 - 0.25| = 2.75 over 4 entries.
    output = torch.tensor([[0.5, -1.0], [2.0, 0.0]]).reshape(1, 1, 2, 2)
    target = torch.tensor([[0.0, 1.0], [2.0, 0.25]]).reshape(1, 1, 2, 2)
    for term in (recon_loss, image_recon_loss, content_recon_loss, cycle_loss):
        assert term(output, target).item() == pytest.approx(2.75 / 4)
    # Style codes (B, 8, 1, 1): one entry off by 0.8 among 16.
    sampled = torch.zeros(2, 8, 1, 1)
    reencoded = sampled.clone()
    reencoded[1, 3] = -0.8
    assert style_recon_loss(reencoded, sampled).item() == pytest.approx(0.05)
    with pytest.raises(ValueError, match="shapes differ"):
        style_recon_loss(torch.zeros(2, 8), sampled)


def test_lsgan_losses_by_hand() -> None:
    # Two scales. Fake outputs 0.5 everywhere and [0, 1]; real outputs 1 everywhere and [0, 2].
    fake = [torch.full((1, 1, 2, 2), 0.5), torch.tensor([0.0, 1.0]).reshape(1, 1, 1, 2)]
    real = [torch.ones(1, 1, 2, 2), torch.tensor([0.0, 2.0]).reshape(1, 1, 1, 2)]
    # D: scale 1: 0.25 + 0; scale 2: (0 + 1) / 2 + (1 + 1) / 2 = 1.5.
    assert lsgan_dis_loss(fake, real).item() == pytest.approx(1.75)
    # G: scale 1: (0.5 - 1)^2 = 0.25; scale 2: (1 + 0) / 2 = 0.5.
    assert lsgan_gen_loss(fake).item() == pytest.approx(0.75)
    with pytest.raises(ValueError, match="scales"):
        lsgan_dis_loss(fake, real[:1])


def test_discriminator_methods_use_the_lsgan_losses() -> None:
    torch.manual_seed(0)
    dis = Munit.from_preset("tiny").dis_a
    fake, real = torch.zeros(1, 3, 32, 32), torch.ones(1, 3, 32, 32)
    with torch.no_grad():
        assert dis.dis_loss(fake, real).item() == pytest.approx(lsgan_dis_loss(dis(fake), dis(real)).item())
        assert dis.gen_loss(fake).item() == pytest.approx(sum(((o - 1) ** 2).mean() for o in dis(fake)).item())


def test_instance_normalise_and_perceptual_loss_by_hand() -> None:
    # A 1x1-channel feature map [1, 3]: mean 2, biased variance 1 -> [-1, 1] (up to eps).
    features = torch.tensor([1.0, 3.0]).reshape(1, 1, 1, 2)
    assert torch.allclose(instance_normalise(features), torch.tensor([-1.0, 1.0]).reshape(1, 1, 1, 2), atol=1e-5)
    # Identity "extractor": [1, 3] -> [-1, 1] and [5, 4] -> [1, -1]; squared differences 4 and 4.
    image, target = features, torch.tensor([5.0, 4.0]).reshape(1, 1, 1, 2)
    assert perceptual_loss(nn.Identity(), image, target).item() == pytest.approx(4.0, rel=1e-4)
    # Invariant to per-channel affine changes of the features: an instance-normalised distance.
    assert perceptual_loss(nn.Identity(), image, image * 3 + 7).item() == pytest.approx(0.0, abs=1e-6)
    doubled = perceptual_loss(nn.Identity(), image, target, preprocess=lambda x: 2 * x)
    assert doubled.item() == pytest.approx(4.0, rel=1e-4)


def test_vgg_preprocess() -> None:
    # RGB (-1, 0, 1) -> BGR (1, 0, -1) -> (255, 127.5, 0) minus the BGR means.
    image = torch.tensor([-1.0, 0.0, 1.0]).reshape(1, 3, 1, 1)
    expected = torch.tensor([255 - 103.939, 127.5 - 116.779, 0 - 123.680]).reshape(1, 3, 1, 1)
    assert torch.allclose(vgg_preprocess(image), expected)


def test_official_weights() -> None:
    weights = LossWeights()
    assert (weights.gan, weights.recon_x, weights.recon_s, weights.recon_c) == (1, 10, 1, 1)
    assert (weights.recon_x_cyc, weights.vgg) == (0, 0)
    assert TERMS == ("gan", "recon_x", "recon_s", "recon_c", "recon_x_cyc", "vgg")


def test_generator_objective_weights_each_term() -> None:
    only_x = LossWeights(gan=0, recon_s=0, recon_c=0)
    assert generator_objective({"recon_x": torch.tensor(0.3)}, only_x).item() == pytest.approx(3.0)
    # Per-domain lists are summed; zero-weighted terms may be missing or None.
    terms = {
        "gan": [torch.tensor(0.5), torch.tensor(0.25)],
        "recon_x": [torch.tensor(0.1), torch.tensor(0.2)],
        "recon_s": torch.tensor(0.4),
        "recon_c": [torch.tensor(1.0), torch.tensor(2.0)],
        "vgg": None,
    }
    # 1 * 0.75 + 10 * 0.3 + 1 * 0.4 + 1 * 3 = 7.15
    assert generator_objective(terms).item() == pytest.approx(7.15)
    cyc = LossWeights(recon_x_cyc=10.0)
    assert generator_objective({**terms, "recon_x_cyc": [torch.tensor(0.05)] * 2}, cyc).item() == pytest.approx(8.15)
    with pytest.raises(ValueError, match="no value"):
        generator_objective(terms, cyc)
    with pytest.raises(ValueError, match="unknown loss terms"):
        generator_objective({**terms, "kl": torch.tensor(1.0)})
    assert discriminator_objective([torch.tensor(0.5), torch.tensor(1.0)], LossWeights(gan=2)).item() == 3.0


def test_generator_terms_wire_the_official_update() -> None:
    torch.manual_seed(0)
    model = Munit.from_preset("tiny")
    x_a, x_b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    s_a, s_b = torch.randn(1, 8, 1, 1), torch.randn(1, 8, 1, 1)
    terms = generator_terms(model.gen_a, model.gen_b, model.dis_a, model.dis_b, x_a, x_b, s_a, s_b)
    assert set(terms) == {"gan", "recon_x", "recon_s", "recon_c"}
    with torch.no_grad():
        x_ba = model.gen_a.decode(model.gen_b.encode(x_b)[0], s_a)
        c_b_recon, s_a_recon = model.gen_a.encode(x_ba)
        assert terms["recon_s"][0].item() == pytest.approx((s_a_recon - s_a).abs().mean().item(), rel=1e-5)
        c_b = model.gen_b.encode(x_b)[0]
        assert terms["recon_c"][1].item() == pytest.approx((c_b_recon - c_b).abs().mean().item(), rel=1e-5)
        assert terms["recon_x"][0].item() == pytest.approx((model.gen_a(x_a) - x_a).abs().mean().item(), rel=1e-5)
        assert terms["gan"][0].item() == pytest.approx(model.dis_a.gen_loss(x_ba).item(), rel=1e-5)
    total = generator_objective(terms)
    total.backward()
    assert model.gen_a.mlp.model[0].weight.grad is not None
    # Cycle and perceptual terms only when weighted; the perceptual one needs a loss function.
    both = LossWeights(recon_x_cyc=10.0, vgg=1.0)
    with pytest.raises(ValueError, match="perceptual"):
        generator_terms(model.gen_a, model.gen_b, model.dis_a, model.dis_b, x_a, x_b, s_a, s_b, both)
    with torch.no_grad():
        extra = generator_terms(
            model.gen_a,
            model.gen_b,
            model.dis_a,
            model.dis_b,
            x_a,
            x_b,
            s_a,
            s_b,
            both,
            perceptual=lambda image, target: perceptual_loss(nn.Identity(), image, target),
        )
    assert len(extra["recon_x_cyc"]) == 2 and len(extra["vgg"]) == 2
