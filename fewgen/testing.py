"""Helpers for testing plugins, and fewgen's pytest plugin.

Third-party plugin tests can use these as fewgen's own tests do::

    from fewgen.testing import make_context, make_native_dataset, run_recipe

Installed with fewgen, this module is also a pytest plugin (the ``pytest11`` entry point), so
every test session in an environment with fewgen has:

* ``torch_threads``: torch's thread count for each test. The ini option ``fewgen_torch_threads``
  sets it for a whole test suite (fewgen's own: 1), the marker ``@pytest.mark.torch_threads(n)``
  for one test; the previous count is restored afterwards. Unset, torch is left alone (and not
  imported).
* the ``fewgen_run`` fixture: :func:`run_recipe` bound to the test's ``tmp_path``.
* the ``gpu`` marker: such a test runs where torch finds a CUDA GPU and is skipped elsewhere
  (``pytest -m gpu`` runs only those, as ``benchmarks/gpu_check.sh`` does on a GPU machine).
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fewgen.api import StepContext
from fewgen.dataset import Box, Dataset, Sample
from fewgen.imageio import save_image

THREADS_OPTION = "fewgen_torch_threads"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(THREADS_OPTION, "torch threads for every test (unset: torch's own choice)", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "torch_threads(n): torch's thread count during this test (None: leave it)")
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU; skipped where torch finds none")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch finds none here)")
    for item in marked:
        item.add_marker(skip)


@pytest.fixture(autouse=True)
def torch_threads(request: pytest.FixtureRequest) -> Iterator[int | None]:
    """The thread count the test runs with (None: untouched).

    Plugin tests run tiny tensors, where extra threads only add synchronisation; on a busy
    2-core machine that costs seconds a test, so fewgen's suite sets one thread.
    """
    marker = request.node.get_closest_marker("torch_threads")
    if marker is not None:
        wanted = marker.args[0] if marker.args else None
    else:
        text = str(request.config.getini(THREADS_OPTION)).strip()
        wanted = int(text) if text else None
    if wanted is None:
        yield None
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(before)


def run_recipe(
    tmp_path: Path,
    yaml_text: str,
    out: str = "out",
    overrides: list[str] | None = None,
    extra_plugins: list[object] | None = None,
    cache_dir: Path | None = None,
) -> Any:
    """Write ``yaml_text`` as ``tmp_path/recipe.yaml`` and run it into ``tmp_path/out``; the RunResult.

    Paths in the recipe are relative to ``tmp_path`` (as ``dataset.root`` is to a recipe's file).
    The step cache is ``tmp_path/cache-<out>`` unless ``cache_dir`` is given, so two runs into
    different ``out`` folders each really run their steps; progress bars and notes are off.
    ``extra_plugins`` are registered beside the installed ones (hook implementations under test).
    """
    from fewgen.cache import StepCache
    from fewgen.engine import Engine
    from fewgen.plugins import load_registry
    from fewgen.recipe import load_recipe

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml_text)
    registry = load_registry(extra_plugins)
    loaded = load_recipe(recipe, registry, overrides)
    cache = StepCache(cache_dir or tmp_path / f"cache-{out}")
    engine = Engine(registry, cache=cache, show_progress=False, echo=lambda _: None)
    return engine.run(loaded, tmp_path / out)


@pytest.fixture
def fewgen_run(tmp_path: Path) -> Callable[..., Any]:
    """:func:`run_recipe` in this test's ``tmp_path``: ``fewgen_run(yaml_text, out="out", ...)``."""

    def run(yaml_text: str, **options: Any) -> Any:
        return run_recipe(tmp_path, yaml_text, **options)

    return run


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
