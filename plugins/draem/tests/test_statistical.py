"""The statistical baseline: exact z-scores on hand-built images, and it finds what it should."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fewgen_draem.metrics import anomaly_metrics
from fewgen_draem.statistical import STD_FLOOR, StatisticalBaseline, smooth


def constant_images(count: int, size: int, value: float, noise: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    images = value + noise * torch.randn(count, 1, size, size, generator=generator)
    return images.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def test_exact_z_scores_on_a_tiny_case() -> None:
    # Two good 2x2 images: pixel (0, 0) varies, the others are constant (std 0, so the floor applies).
    good = torch.zeros(2, 3, 2, 2)
    good[0, :, 0, 0], good[1, :, 0, 0] = 0.2, 0.4
    good[:, :, 1, 1] = 0.5
    baseline = StatisticalBaseline("aligned", smoothing=0).fit(good)
    std = np.sqrt(((0.2 - 0.3) ** 2 + (0.4 - 0.3) ** 2) / 1)  # sample std, ddof 1
    assert baseline.mean[0, 0, 0].item() == pytest.approx(0.3)
    assert baseline.std[0, 0, 0].item() == pytest.approx(std)

    test = torch.zeros(1, 3, 2, 2)
    test[0, :, 0, 0] = 0.6  # (0.6 - 0.3) / 0.1414 = 2.1213, squared 4.5
    test[0, :, 1, 1] = 0.5
    test[0, 0, 1, 1] = 0.55  # one channel off by 0.05 where std is 0: (0.05 / 0.02)^2, averaged over 3 channels
    maps = baseline.anomaly_maps(test)[0]
    assert maps[0, 0].item() == pytest.approx(((0.6 - 0.3) / std) ** 2, rel=1e-5)
    assert maps[1, 1].item() == pytest.approx((0.05 / STD_FLOOR) ** 2 / 3, rel=1e-4)
    assert maps[0, 1].item() == 0.0 and maps[1, 0].item() == 0.0


def test_a_bright_spot_on_a_constant_background_scores_highest() -> None:
    good = constant_images(8, 32, 0.4, 0.01)
    test = constant_images(4, 32, 0.4, 0.01, seed=1)
    test[2, :, 20:24, 6:10] = 0.9
    maps, scores = StatisticalBaseline("aligned").fit(good).predict(test)
    assert int(scores.argmax()) == 2
    row, col = divmod(int(maps[2].argmax()), 32)
    assert 20 <= row < 24 and 6 <= col < 10


def test_texture_mode_is_position_free_and_finds_a_spot_anywhere() -> None:
    # Stripes shifted at random between the good images: no per-position model fits them.
    rng = np.random.default_rng(0)
    columns = np.arange(32)

    def stripes(shift: int) -> torch.Tensor:
        row = 0.5 + 0.1 * np.sin(2 * np.pi * (columns + shift) / 8)
        return torch.tensor(np.tile(row, (32, 1)), dtype=torch.float32)[None].expand(3, -1, -1)

    good = torch.stack([stripes(int(rng.integers(8))) for _ in range(6)])
    test = torch.stack([stripes(int(rng.integers(8))) for _ in range(3)]).clone()
    test[1, :, 4:7, 25:28] = 0.05
    baseline = StatisticalBaseline("texture").fit(good)
    assert baseline.mean.shape == (3, 1, 1)
    maps, scores = baseline.predict(test)
    assert int(scores.argmax()) == 1
    row, col = divmod(int(maps[1].argmax()), 32)
    assert 3 <= row <= 7 and 24 <= col <= 28


def test_trivially_separable_case_reaches_auroc_one() -> None:
    good = constant_images(10, 32, 0.5, 0.03)
    test = constant_images(12, 32, 0.5, 0.03, seed=3)
    masks = np.zeros((12, 32, 32), dtype=bool)
    labels = ["good"] * 6 + ["square"] * 6
    for index in range(6, 12):
        top, left = 4 + 3 * (index - 6), 20 - 2 * (index - 6)
        test[index, :, top : top + 6, left : left + 6] = 0.95
        masks[index, top : top + 6, left : left + 6] = True
    maps, scores = StatisticalBaseline("aligned").fit(good).predict(test)
    metrics = anomaly_metrics(scores.numpy(), maps.numpy(), masks, labels)
    assert metrics["image_auroc"] == 1.0
    assert metrics["pixel_auroc"] > 0.99


def test_smoothing_keeps_a_constant_map_constant_at_the_border() -> None:
    flat = torch.full((1, 1, 10, 10), 3.0)
    assert torch.allclose(smooth(flat, 2.0), flat)


def test_bad_use_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        StatisticalBaseline().fit(torch.zeros(1, 3, 4, 4))
    with pytest.raises(RuntimeError, match="fit the baseline"):
        StatisticalBaseline().anomaly_maps(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="alignment"):
        StatisticalBaseline("rotated")  # type: ignore[arg-type]
