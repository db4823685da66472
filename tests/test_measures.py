"""Tests of fewgen.measures: SSIM, edge SSIM, box IoU and the HOG people detector on known answers."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from fewgen import measures

torch = pytest.importorskip("torch")
F = torch.nn.functional


def outlined(count: int, seed: int, size: int = 48) -> torch.Tensor:
    """(count, 3, size, size) grey images, each with three brighter rectangles: outlines to keep."""
    rng = np.random.default_rng(seed)
    images = np.full((count, 3, size, size), 0.4, np.float32)
    for image in images:
        corners, sides, levels = rng.integers(0, size - 12, (3, 2)), rng.integers(6, 12, (3, 2)), rng.uniform(0.5, 1, 3)
        for (y, x), (h, w), level in zip(corners, sides, levels, strict=True):
            image[:, y : y + h, x : x + w] = level
    return torch.from_numpy(images)


def test_importing_the_module_needs_neither_torch_nor_opencv() -> None:
    code = "import sys; import fewgen.measures; print('torch' in sys.modules, 'cv2' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_gaussian_window() -> None:
    window = measures.gaussian_window()
    assert window.shape == (11,) and window.dtype == torch.float64
    assert window.sum().item() == pytest.approx(1.0)
    # exp(-d^2 / (2 * 1.5^2)) relative to the centre
    assert (window[6] / window[5]).item() == pytest.approx(math.exp(-1 / 4.5))
    assert (window[0] / window[5]).item() == pytest.approx(math.exp(-25 / 4.5))
    assert measures.gaussian_window(dtype=torch.float32).dtype == torch.float32


def test_ssim_is_one_for_identical_images_and_falls_with_noise() -> None:
    images = outlined(4, 0)
    assert torch.allclose(measures.ssim(images, images), torch.ones(4), atol=1e-5)
    assert torch.allclose(measures.ssim_map(images, images), torch.ones_like(images), atol=1e-5)
    generator = torch.Generator().manual_seed(1)
    scores = [
        float(measures.ssim(images, (images + s * torch.randn(images.shape, generator=generator)).clamp(0, 1)).mean())
        for s in (0.02, 0.1, 0.3)
    ]
    assert 1 > scores[0] > scores[1] > scores[2]
    with pytest.raises(ValueError, match="one shape"):
        measures.ssim(images, images[:, :, :40])
    with pytest.raises(ValueError, match="at least 11"):
        measures.ssim(torch.zeros(1, 3, 8, 20), torch.zeros(1, 3, 8, 20))


def test_ssim_of_flat_images_is_the_luminance_term() -> None:
    # Variances and covariance vanish: SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 L)^2.
    a, b = torch.full((1, 1, 32, 32), 0.2), torch.full((1, 1, 32, 32), 0.6)
    expected = (2 * 0.2 * 0.6 + 1e-4) / (0.04 + 0.36 + 1e-4)
    exact = torch.full((1, 1, 32, 32), 0.2, dtype=torch.float64), torch.full((1, 1, 32, 32), 0.6, dtype=torch.float64)
    assert float(measures.ssim(*exact)) == pytest.approx(expected, rel=1e-9)
    # In float32, E[x^2] - mu^2 leaves variances of ~1e-8 instead of 0.
    assert float(measures.ssim(a, b)) == pytest.approx(expected, rel=1e-3)
    assert measures.ssim_map(*exact)[0, 0, 16, 16].item() == pytest.approx(expected, rel=1e-9)
    # With L = 255, C1 = 2.55^2.
    a, b = torch.full((1, 1, 32, 32), 50.0), torch.full((1, 1, 32, 32), 200.0)
    c1 = 2.55**2
    value = measures.ssim_map(b, a, value_range=255.0)[0, 0, 16, 16].item()
    assert value == pytest.approx((2 * 50 * 200 + c1) / (50**2 + 200**2 + c1), rel=1e-3)


def test_the_separable_window_equals_the_11x11_convolution() -> None:
    generator = torch.Generator().manual_seed(1)
    first, second = torch.rand(2, 3, 40, 40, generator=generator), torch.rand(2, 3, 40, 40, generator=generator)
    window = measures.gaussian_window().float()
    full = torch.outer(window, window).expand(3, 1, 11, 11)
    for padding, same_size in ((5, True), (0, False)):

        def blur(x: torch.Tensor, padding: int = padding) -> torch.Tensor:
            return F.conv2d(x, full, padding=padding, groups=3)

        mu1, mu2 = blur(first), blur(second)
        var1, var2 = blur(first * first) - mu1**2, blur(second * second) - mu2**2
        cov = blur(first * second) - mu1 * mu2
        c1, c2 = 0.01**2, 0.03**2
        reference = ((2 * mu1 * mu2 + c1) * (2 * cov + c2)) / ((mu1**2 + mu2**2 + c1) * (var1 + var2 + c2))
        assert torch.allclose(measures.ssim_map(first, second, same_size=same_size), reference, atol=1e-5)


def test_ssim_matches_scikit_image() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(1)
    a = rng.random((24, 30, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    expected = metrics.structural_similarity(
        a, b, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )
    got = measures.ssim(torch.from_numpy(a).permute(2, 0, 1)[None], torch.from_numpy(b).permute(2, 0, 1)[None])
    assert float(got) == pytest.approx(expected, abs=1e-6)


def test_ssim_map_is_differentiable() -> None:
    generator = torch.Generator().manual_seed(3)
    first = torch.rand(1, 3, 24, 24, generator=generator, requires_grad=True)
    second = torch.rand(1, 3, 24, 24, generator=generator)
    (1 - measures.ssim_map(first, second).mean()).backward()
    assert first.grad is not None and float(first.grad.abs().sum()) > 0


def test_dynamic_range_follows_the_reference_rule() -> None:
    assert measures.dynamic_range(torch.tensor([0.0, 1.0])) == 1.0
    assert measures.dynamic_range(torch.tensor([-1.0, 1.0])) == 2.0
    assert measures.dynamic_range(torch.tensor([0.0, 200.0])) == 255.0


def test_edge_ssim_ignores_darkening_but_not_moved_outlines() -> None:
    images = outlined(4, 2)
    darker = images * 0.35  # a night with the same outlines
    assert float(measures.edge_ssim(images, darker).mean()) > 0.99
    moved = torch.roll(images, shifts=(7, 9), dims=(2, 3))
    assert float(measures.edge_ssim(images, moved).mean()) < 0.5
    edges = measures.sobel_edges(images)
    assert edges.shape == (4, 1, 48, 48) and float(edges.max()) <= 1 and float(edges.min()) >= 0


def test_box_iou_of_known_boxes() -> None:
    assert measures.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert measures.box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert measures.box_iou((0, 0, 4, 4), (1, 1, 3, 3)) == pytest.approx(4 / 16)
    assert measures.box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert measures.box_iou((0, 0, 1, 1), (1, 0, 2, 1)) == 0.0  # touching edges
    assert measures.box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_pairwise_iou_is_the_scalar_iou_of_every_pair() -> None:
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 50, (7, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(0, 20, (7, 2))], axis=1)
    pairwise = measures.pairwise_iou(boxes, boxes[:4])
    assert pairwise.shape == (7, 4)
    expected = [[measures.box_iou(a, b) for b in boxes[:4]] for a in boxes]
    np.testing.assert_allclose(pairwise, expected, rtol=1e-12)
    assert measures.pairwise_iou(np.zeros((2, 4)), np.zeros((3, 4))).tolist() == [[0.0] * 3] * 2


def test_the_people_detector_finds_nothing_in_a_blank_image() -> None:
    pytest.importorskip("cv2")
    detector = measures.people_detector()
    assert detector.getDescriptorSize() == 3780  # 64 x 128 window, 9 bins of 2 x 2 cells per 16-pixel block
    assert measures.detect_people(np.full((256, 128), 128, np.uint8), detector) == []
    assert measures.detect_people(np.zeros((256, 128, 3), np.uint8), detector, padding=(8, 8)) == []
