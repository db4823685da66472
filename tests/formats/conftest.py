"""Tiny image files made on the fly, and a comparison of datasets read back after writing."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fewgen.dataset import Dataset, Sample
from fewgen.imageio import load_mask

MakeImage = Callable[..., Path]


def _noise(seed: int, width: int, height: int, channels: int) -> np.ndarray:
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def make_image() -> MakeImage:
    """Write a random RGB image (distinct bytes per seed); the suffix picks the codec."""

    def make(path: Path, width: int = 32, height: int = 24, seed: int = 0) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_noise(seed, width, height, 3)).save(path)
        return path

    return make


@pytest.fixture
def make_mask() -> MakeImage:
    """Write a random 0/255 single-channel PNG mask."""

    def make(path: Path, width: int = 32, height: int = 24, seed: int = 0) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.where(_noise(seed, width, height, 1) > 127, 255, 0).astype(np.uint8)).save(path)
        return path

    return make


@pytest.fixture
def make_corrupt() -> Callable[[Path], Path]:
    """Write the first half of a valid JPEG: it opens, but decoding fails."""

    def make(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_noise(99, 64, 64, 3)).save(path, format="JPEG")
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return path

    return make


def _content(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def assert_same_samples() -> Callable[..., None]:
    """Assert two datasets hold the same samples, matched by image bytes (ids may differ).

    Compares size, split, class names of boxes (coordinates within 1e-3 px), mask pixels and,
    where the format keeps them, label and domain.
    """

    def check(expected: Dataset, actual: Dataset, *, labels: bool = True, domains: bool = True) -> None:
        assert len(actual) == len(expected)
        by_content = {_content(s.image): s for s in actual}
        assert len(by_content) == len(actual), "images must have distinct contents"
        for want in expected:
            got = by_content[_content(want.image)]
            assert (got.width, got.height, got.split) == (want.width, want.height, want.split), want.id
            _assert_same_boxes(want, expected.classes, got, actual.classes)
            assert (got.mask is None) == (want.mask is None), want.id
            if want.mask is not None:
                assert np.array_equal(load_mask(got.mask), load_mask(want.mask)), want.id
            if labels:
                assert got.label == want.label, want.id
            if domains:
                assert got.domain == want.domain, want.id

    return check


def _assert_same_boxes(want: Sample, want_classes: list[str], got: Sample, got_classes: list[str]) -> None:
    assert len(got.boxes) == len(want.boxes), want.id
    for a, b in zip(want.boxes, got.boxes, strict=True):
        assert want_classes[a.cls] == got_classes[b.cls], want.id
        assert np.allclose([a.x1, a.y1, a.x2, a.y2], [b.x1, b.y1, b.x2, b.y2], atol=1e-3, rtol=0), (want.id, a, b)


@pytest.fixture
def tree_bytes() -> Callable[[Path], dict[str, bytes]]:
    """Every file below a folder, by relative path, for byte-identical output checks."""

    def read(folder: Path) -> dict[str, bytes]:
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    return read
