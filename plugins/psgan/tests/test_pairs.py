"""Training pairs: windows around the class's boxes, noise only inside the box, skips counted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from fewgen_psgan.pairs import PairRules, Window, build_pairs, skip_reason, with_noise

from fewgen.dataset import Box, Dataset
from fewgen.imageio import load_rgb

WIDTH, HEIGHT = 96, 72  # of the street scenes
Street = Callable[..., Dataset]


def test_pairs_are_windows_around_the_class_boxes(tmp_path: Path, make_street: Street) -> None:
    dataset = make_street(tmp_path, count=3)
    pairs = build_pairs(dataset.samples, PairRules(cls=0, size=32, context=1.5, min_height=10))
    # pix2pix's 286/256 jitter margin: 2 px on each side of 32.
    assert pairs.windows.shape == (6, 3, 36, 36) and pairs.windows.dtype == torch.uint8 and pairs.margin == 2
    assert [source for source, _ in pairs.sources] == ["s0", "s0", "s1", "s1", "s2", "s2"]
    assert pairs.report.to_json() == {"images": 3, "boxes": 6, "used": 6, "skipped": {}, "unreadable": 0}
    # The first box is 10 x 28: the insertion window is 42 px, centred on it, the box 1/1.5 of its height.
    box = Box(0, 10, 30, 20, 58)
    window = Window.around(box, 1.5)
    assert (window.x0, window.y0, window.side) == (-6.0, 23.0, 42.0)
    assert window.box_in_window(box, 32) == (12, 5, 20, 27)
    # The centre crop of a training window is that insertion window (to the pixel).
    centred, boxes = pairs.centred()
    assert centred.shape == (6, 3, 32, 32)
    assert (boxes[0] - torch.tensor([12, 5, 20, 27])).abs().max() <= 1
    direct = torch.from_numpy(window.cut(load_rgb(dataset.samples[0].image), 32)).permute(2, 0, 1).float()
    assert float(((centred[0] + 1) * 127.5 - direct).abs().mean()) < 6
    # The target is the real window: its box is the dark figure, its corner the sky (edge-padded on the left).
    assert float(centred[0][:, 16, 16].mean()) < -0.4 and float(centred[0][:, 1, 1].mean()) > 0.2
    assert build_pairs(dataset.samples, PairRules(cls=0, size=32, min_height=10, jitter=1.0)).windows.shape[-1] == 32


def test_a_window_beyond_the_border_repeats_the_edge() -> None:
    image = np.zeros((20, 20, 3), np.uint8)
    image[:, 0] = 255  # a white left column
    window = Window(-10, 0, 20).cut(image, 20)
    assert (window[:, :11] == 255).all() and (window[:, 11:] == 0).all()


def test_noise_fills_only_the_box() -> None:
    windows = torch.zeros(2, 3, 16, 16)
    boxes = torch.tensor([[2, 3, 6, 12], [8, 0, 16, 5]])
    noisy = with_noise(windows, boxes, torch.Generator().manual_seed(0))
    inside = torch.zeros(2, 16, 16, dtype=torch.bool)
    inside[0, 3:12, 2:6] = True
    inside[1, 0:5, 8:16] = True
    assert bool((noisy.permute(1, 0, 2, 3)[:, ~inside] == 0).all())
    values = noisy.permute(1, 0, 2, 3)[:, inside]
    assert bool((values != 0).all()) and values.min() >= -1 and values.max() <= 1 and values.std() > 0.4
    assert bool((windows == 0).all())  # the targets are untouched


def test_batches_are_deterministic_and_flip_boxes_with_images(tmp_path: Path, make_street: Street) -> None:
    pairs = build_pairs(make_street(tmp_path, count=3).samples, PairRules(cls=0, size=32, min_height=10))
    a = pairs.batch(torch.Generator().manual_seed(4), 16)
    b = pairs.batch(torch.Generator().manual_seed(4), 16)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    inputs, targets, boxes = a
    for target, noisy, (x1, y1, x2, y2) in zip(targets, inputs, boxes.tolist(), strict=True):
        outside = torch.ones(32, 32, dtype=torch.bool)
        outside[y1:y2, x1:x2] = False
        assert torch.equal(target[:, outside], noisy[:, outside])
        # The dark figure is where the (possibly mirrored) box says.
        assert float(target[:, y1 + (y2 - y1) // 2, (x1 + x2) // 2].mean()) < -0.4
    # Every target is some window cropped at some offset, mirrored or not; both happen.
    crops = {
        (row, x, y): pairs.crop(torch.tensor([row]), torch.tensor([[x, y]]))[0][0]
        for row in range(len(pairs))
        for x in range(2 * pairs.margin + 1)
        for y in range(2 * pairs.margin + 1)
    }
    plain = [[k for k, c in crops.items() if torch.equal(t, c)] for t in targets]
    mirrored = [[k for k, c in crops.items() if torch.equal(t, c.flip(-1))] for t in targets]
    assert all(p or m for p, m in zip(plain, mirrored, strict=True))
    assert any(m and not p for p, m in zip(plain, mirrored, strict=True))  # the scenes are not symmetric
    offsets = {key[1:] for keys in plain + mirrored for key in keys}
    assert len(offsets) > 3  # the crops move


@pytest.mark.parametrize(
    ("box", "reason"),
    [
        (Box(0, 0, 10, 10, 40), "truncated"),
        (Box(0, 10, 30, 20, WIDTH), "truncated"),
        (Box(0, 10, 10, 20, 20), "too_small"),
        (Box(0, 5, 5, 90, 60), "too_big"),
        (Box(0, 10, 10, 60, 40), "too_flat"),
        (Box(0, 10, 10, 20, 40), None),
    ],
)
def test_skip_reasons(box: Box, reason: str | None) -> None:
    assert skip_reason(box, WIDTH, HEIGHT, PairRules(min_height=12, min_aspect=1.0)) == reason


def test_skips_are_counted_and_unreadable_images_reported(tmp_path: Path, make_street: Street) -> None:
    dataset = make_street(tmp_path, count=2)
    dataset.samples[1].image.write_bytes(b"broken")
    pairs = build_pairs(dataset.samples, PairRules(cls=0, size=32, min_height=20))
    # Of four pedestrians the 18 px ones are too small; the readable image's tall one is used.
    assert pairs.report.to_json() == {
        "images": 1,
        "boxes": 4,
        "used": 1,
        "skipped": {"too_small": 2, "unreadable": 1},
        "unreadable": 1,
    }
    assert load_rgb(dataset.samples[0].image).shape == (HEIGHT, WIDTH, 3)
