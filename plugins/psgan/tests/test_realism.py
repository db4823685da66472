"""Realism checks: box fidelity, and the HOG detector's hit test (SSIM and IoU: tests/test_measures.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from fewgen_psgan.realism import box_fidelity, box_region, hog_detected, nearest_heights

from fewgen.dataset import Box


def test_box_fidelity_measures_inside_the_boxes_only() -> None:
    real = torch.zeros(2, 3, 32, 32)
    fake = real.clone()
    fake[:, :, :, 20:] = 1  # a difference outside both boxes
    fake[1, :, 2:14, 2:14] = 0.5  # half a unit of [-1, 1] = a quarter of [0, 1]
    result = box_fidelity(fake, real, torch.tensor([[2, 2, 14, 14], [2, 2, 14, 14]]))
    assert result["boxes"] == 2 and result["ssim_boxes"] == 2
    assert result["l1"] == pytest.approx(0.125)
    assert result["ssim"] < 1


def test_nearest_heights() -> None:
    assert nearest_heights([10, 52, 100], [50, 12, 90]) == [1, 0, 2]


def test_the_region_puts_the_box_96_pixels_high_in_the_middle() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    region, target = box_region(image, Box(0, 40, 20, 52, 44))  # 24 px high: scaled by 4
    assert target[3] - target[1] == pytest.approx(96)
    assert target[2] - target[0] == pytest.approx(48)
    assert region.shape[0] >= 128 + 16 and region.shape[1] >= 64 + 16


def draw_person(image: np.ndarray, x: int, y: int, height: int) -> None:
    """A dark upright silhouette: head, torso, two legs, on a light background."""
    unit = height // 8
    cx = x + 2 * unit
    image[y : y + unit, cx - unit // 2 : cx + unit // 2 + 1] = 30  # head
    image[y + unit : y + 4 * unit, cx - unit : cx + unit + 1] = 30  # torso
    image[y + 4 * unit : y + 8 * unit, cx - unit : cx - unit // 4] = 30  # legs
    image[y + 4 * unit : y + 8 * unit, cx + unit // 4 + 1 : cx + unit + 1] = 30


def test_hog_finds_a_soft_silhouette_in_its_box_and_nothing_in_a_blank_one() -> None:
    image = np.full((160, 200, 3), 200, np.uint8)
    draw_person(image, 60, 20, 96)
    image = cv2.GaussianBlur(image, (5, 5), 0)  # the SVM wants soft edges, as photographs have
    person = Box(0, 60, 20, 92, 116)
    assert hog_detected(image, [person, Box(0, 150, 20, 182, 116)]) == [True, False]
    # The same silhouette judged against a box beside it: the detection does not overlap that box enough.
    assert hog_detected(image, [Box(0, 100, 20, 132, 116)]) == [False]
