"""DRAEM's loss terms against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from fewgen_draem.losses import DraemLoss, focal_loss, ssim_loss, ssim_window

from fewgen.measures import dynamic_range, ssim_map


def test_the_ssim_term_keeps_the_reference_window_and_range() -> None:
    # The reference code's window is computed in float32; its dynamic range rule gives L = 255
    # for 8-bit-like values, so C1 = (2.55)^2 on flat images of 50 and 200.
    window = ssim_window()
    assert window.dtype == torch.float32 and window.sum().item() == pytest.approx(1.0)
    assert (window[6] / window[5]).item() == pytest.approx(math.exp(-1 / 4.5))
    a, b = torch.full((1, 1, 32, 32), 50.0), torch.full((1, 1, 32, 32), 200.0)
    c1 = 2.55**2
    flat = (2 * 50 * 200 + c1) / (50**2 + 200**2 + c1)
    centre = ssim_map(b, a, window, dynamic_range(b))[0, 0, 16, 16].item()
    assert centre == pytest.approx(flat, rel=1e-3)  # float32 cancellation in E[x^2] - mu^2: 1e-3 relative
    # In [0, 1], L = 1: C1 = 1e-4.
    a, b = torch.full((1, 1, 32, 32), 0.2), torch.full((1, 1, 32, 32), 0.6)
    value = ssim_map(a, b, window, dynamic_range(a))[0, 0, 16, 16].item()
    assert value == pytest.approx(0.600100, abs=1e-6)


def test_ssim_loss_of_identical_images_is_zero() -> None:
    image = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert ssim_loss(image, image).item() == pytest.approx(0.0, abs=1e-5)


def test_ssim_loss_is_one_minus_the_mean_map() -> None:
    generator = torch.Generator().manual_seed(1)
    first, second = torch.rand(2, 3, 40, 40, generator=generator), torch.rand(2, 3, 40, 40, generator=generator)
    expected = 1 - ssim_map(first, second, ssim_window(), 1.0).mean()
    assert torch.equal(ssim_loss(first, second), expected)


def test_focal_loss_by_hand() -> None:
    # One pixel, p(anomalous) = 0.7, truly anomalous: with the reference smoothing
    # p_t = (1 - 1e-5) * 0.7 + 1e-5 * 0.3 + 1e-5 and the loss is -(1 - p_t)^2 * ln(p_t).
    probabilities = torch.tensor([0.3, 0.7]).reshape(1, 2, 1, 1)
    target = torch.ones(1, 1, 1, 1)
    p_t = (1 - 1e-5) * 0.7 + 1e-5 * 0.3 + 1e-5
    expected = -((1 - p_t) ** 2) * math.log(p_t)
    assert focal_loss(probabilities, target).item() == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(0.09 * -math.log(0.7), rel=1e-3)  # ≈ 0.0321: the unsmoothed value
    # Same pixel, truly normal: p_t ≈ 0.3, so the loss is much larger, -(0.7)^2 ln 0.3 ≈ 0.590.
    assert focal_loss(probabilities, torch.zeros(1, 1, 1, 1)).item() == pytest.approx(0.49 * -math.log(0.3), rel=1e-3)


def test_focal_loss_averages_over_pixels_and_down_weights_easy_ones() -> None:
    probabilities = torch.tensor([[0.99, 0.01], [0.4, 0.6]]).T.reshape(1, 2, 1, 2)
    target = torch.zeros(1, 1, 1, 2)
    per_pixel = [-((1 - p) ** 2) * math.log(p) for p in (0.99, 0.4)]
    assert focal_loss(probabilities, target).item() == pytest.approx(sum(per_pixel) / 2, rel=1e-3)
    # gamma = 0 is cross-entropy: easy pixels weigh relatively more than with gamma = 2.
    ce = focal_loss(probabilities, target, gamma=0.0).item()
    assert ce == pytest.approx((-math.log(0.99) - math.log(0.4)) / 2, rel=1e-3)


def test_total_is_the_unweighted_sum() -> None:
    generator = torch.Generator().manual_seed(2)
    image, reconstruction = torch.rand(2, 3, 32, 32, generator=generator), torch.rand(2, 3, 32, 32, generator=generator)
    mask = (torch.rand(2, 1, 32, 32, generator=generator) > 0.8).float()
    logits = torch.randn(2, 2, 32, 32, generator=generator)
    loss = DraemLoss()
    terms = loss.terms(image, reconstruction, mask, logits)
    assert terms["l2"].item() == pytest.approx(F.mse_loss(reconstruction, image).item())
    assert terms["ssim"].item() == pytest.approx(ssim_loss(reconstruction, image).item())
    assert loss(image, reconstruction, mask, logits).item() == pytest.approx(sum(t.item() for t in terms.values()))
