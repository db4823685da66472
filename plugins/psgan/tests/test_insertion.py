"""Painting: only the box's pixels change, with a feathered edge, and painting is repeatable."""

from __future__ import annotations

import numpy as np
import torch
from fewgen_psgan.insertion import Painter, blend_back, box_weights
from fewgen_psgan.model import UnetGenerator
from fewgen_psgan.pairs import Window

from fewgen.dataset import Box


def test_painting_changes_only_the_boxes() -> None:
    torch.manual_seed(0)
    painter = Painter(UnetGenerator(depth=5, ngf=4), size=32, context=1.5, feather=2.0)
    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    boxes = [Box(0, 10.3, 12.0, 22.7, 40.5), Box(0, 50.0, 5.0, 60.0, 25.0)]
    painted = painter.paint(image, boxes, torch.Generator().manual_seed(1))
    changed = (painted != image).any(axis=2)
    inside = np.zeros((60, 80), dtype=bool)
    inside[12:41, 10:23] = True
    inside[5:25, 50:60] = True
    assert not changed[~inside].any()
    assert changed[inside].mean() > 0.5
    again = painter.paint(image, boxes, torch.Generator().manual_seed(1))
    assert np.array_equal(painted, again)
    assert np.array_equal(painter.paint(image, [], torch.Generator()), image)


def test_weights_rise_from_the_edge_over_the_feather() -> None:
    weights = box_weights(Box(0, 0, 0, 10, 10), 0, 0, 10, 10, feather=2.0)
    assert weights[5, 5] == 1.0
    assert weights[0, 5] == 0.25 and weights[1, 5] == 0.75  # pixel centres 0.5 and 1.5 inside the edge
    assert box_weights(Box(0, 0, 0, 10, 10), 0, 0, 10, 10, feather=0.0).min() == 1.0


def test_blending_back_maps_window_pixels_to_their_image_place() -> None:
    # A window of side 20 at (5, 5) shown at 10 px: window pixel (i, j) covers image pixels 5 + 2i .. 5 + 2i + 1.
    window_pixels = np.zeros((10, 10, 3), np.float32)
    window_pixels[:, 5:] = 200.0  # the right half of the window
    out = np.zeros((40, 40, 3), np.float32)
    blend_back(out, window_pixels, Window(5, 5, 20), Box(0, 5, 5, 25, 25), feather=0.0)
    assert (out[5:25, 16:25] == 200).all() and (out[5:25, 5:14] == 0).all()
    assert (out[:5] == 0).all() and (out[:, 25:] == 0).all()
