"""Shared fixtures: a private cache per test, tiny images, an inline test plugin."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest
from pydantic import Field

from fewgen.api import Generator, Params, StepContext
from fewgen.dataset import Dataset, Sample
from fewgen.hookspecs import hookimpl
from fewgen.imageio import save_image


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("FEWGEN_CACHE", str(cache))
    monkeypatch.setenv("NO_ALBUMENTATIONS_UPDATE", "1")
    return cache


class ShiftParams(Params):
    offset: int = Field(10, ge=0, le=255, description="Added to every pixel.")
    fraction: float = Field(1.0, ge=0.0, le=1.0)


class BrightenGenerator(Generator):
    """A minimal real generator for engine tests: brightens images, keeps boxes."""

    name = "brighten"
    description = "Adds a constant to every pixel."
    Params = ShiftParams
    calls = 0

    def generate(self, dataset: Dataset, ctx: StepContext) -> Iterable[Sample]:
        from fewgen.imageio import load_rgb

        type(self).calls += 1
        rng = ctx.rng()
        for sample in dataset:
            if rng.random() >= self.params.fraction:
                continue
            pixels = load_rgb(sample.image).astype(np.int16) + self.params.offset
            path = save_image(np.clip(pixels, 0, 255).astype(np.uint8), ctx.work_dir / f"{sample.id}.png")
            yield sample.derive(id=f"{ctx.step}/{sample.id}", image=path, provenance=self.provenance(ctx, sample))


class InlinePlugin:
    @hookimpl
    def register_generators(self, register: Callable[[type[Generator]], None]) -> None:
        register(BrightenGenerator)


@pytest.fixture
def registry():
    from fewgen.plugins import load_registry, reset_registry

    registry = load_registry(extra_plugins=[InlinePlugin()])
    reset_registry(registry)
    yield registry
    reset_registry(None)


@pytest.fixture
def brighten() -> type[BrightenGenerator]:
    BrightenGenerator.calls = 0
    return BrightenGenerator
