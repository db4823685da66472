"""Shared test setup: tiny street-like scenes with boxes (one torch thread: fewgen.testing)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fewgen.dataset import Box, Dataset, Sample
from fewgen.imageio import save_image

WIDTH, HEIGHT = 96, 72


def scene(path: Path, boxes: list[Box], seed: int) -> Path:
    """Sky over ground with noise; every box drawn as a dark figure with a lighter head."""
    rng = np.random.default_rng(seed)
    rows = np.where(np.arange(HEIGHT) < HEIGHT // 2, 170, 90)[:, None, None]
    image = np.broadcast_to(rows, (HEIGHT, WIDTH, 3)).astype(np.float64) + rng.normal(0, 6, (HEIGHT, WIDTH, 3))
    for box in boxes:
        x1, y1, x2, y2 = (round(v) for v in (box.x1, box.y1, box.x2, box.y2))
        image[y1:y2, x1:x2] = (40, 30, 60) if box.cls == 0 else (200, 20, 20)
        if box.cls == 0:
            image[y1 : y1 + (y2 - y1) // 4, x1:x2] = (220, 180, 150)
    return save_image(np.clip(image, 0, 255).astype(np.uint8), path)


def street_dataset(folder: Path, count: int = 6) -> Dataset:
    """``count`` scenes with two pedestrians (class 0, taller lower down) and one car (class 1) each."""
    samples = []
    for index in range(count):
        shift = 3 * index
        boxes = [
            Box(0, 10.0 + shift, 30.0, 20.0 + shift, 58.0),
            Box(0, 50.0 + shift, 34.0, 58.0 + shift, 52.0),
            Box(1, 70.0, 50.0, 90.0, 64.0),
        ]
        path = scene(folder / "images" / f"s{index}.png", boxes, seed=index)
        split = "val" if index == count - 1 else "train"
        samples.append(Sample(f"s{index}", path, WIDTH, HEIGHT, split=split, boxes=tuple(boxes), domain="day"))
    dataset = Dataset(samples, ["person", "car"], "street")
    dataset.save(folder)
    return dataset


@pytest.fixture
def make_street() -> Callable[..., Dataset]:
    """:func:`street_dataset`, for tests (importlib import mode: test modules cannot import conftest)."""
    return street_dataset
