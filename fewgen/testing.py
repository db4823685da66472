"""Helpers for testing plugins: a step context and a tiny dataset, no engine needed.

Third-party plugin tests can use these as fewgen's own tests do::

    from fewgen.testing import make_context, make_native_dataset
"""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import numpy as np

from fewgen.api import StepContext
from fewgen.dataset import Box, Dataset, Sample
from fewgen.imageio import save_image


def make_context(tmp_path: Path, seed: int = 0, step: str = "test") -> StepContext:
    """A StepContext whose work folder lies under ``tmp_path``."""
    work = tmp_path / f"work-{step}-{seed}"
    work.mkdir(parents=True, exist_ok=True)
    return StepContext(
        step=step,
        seed=seed,
        work_dir=work,
        device="cpu",
        log=logging.getLogger(f"fewgen.test.{step}"),
        show_progress=False,
        scratch_dir=tmp_path / f"scratch-{step}-{seed}",
    )


def make_native_dataset(folder: Path, count: int = 6, size: tuple[int, int] = (64, 48), seed: int = 0) -> Dataset:
    """``count`` noise images with one box each, saved in fewgen's native format under ``folder``.

    Splits cycle train, train, val, test; boxes alternate between class 0 and 1.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    samples = []
    for index in range(count):
        image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        path = save_image(image, folder / "images" / f"img{index}.png")
        split = ("train", "train", "val", "test")[index % 4]
        box = Box(index % 2, 4.0, 6.0, min(30.0 + index, width), min(40.0, height))
        samples.append(Sample(f"img{index}", path, width, height, split=split, boxes=(box,), domain="day"))
    dataset = Dataset(samples, ["person", "car"], "tiny")
    dataset.save(folder)
    return dataset


def png_claiming(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes whose header claims ``width`` x ``height`` RGB pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
