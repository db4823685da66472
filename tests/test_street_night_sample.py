"""The embedded night street sample, the street renderer's night mode, and its card."""

from __future__ import annotations

import importlib.util
import io
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from fewgen.cards import load_card

REPOSITORY = Path(__file__).resolve().parent.parent
RENDERER = REPOSITORY / "datasets" / "make_street_sample.py"
NIGHT = REPOSITORY / "datasets" / "street_night_sample"
DAY = REPOSITORY / "datasets" / "street_sample"
WIDTH, HEIGHT = 320, 240


@pytest.fixture(scope="module")
def renderer() -> ModuleType:
    # Loaded by path: datasets/ is no package. Its dataclasses look their module up in
    # sys.modules while the class is built, so it is registered there under a private name.
    name = "fewgen_test_make_street_sample"
    spec = importlib.util.spec_from_file_location(name, RENDERER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


@pytest.fixture(scope="module")
def night_scene(renderer: ModuleType):
    return renderer.render_scene(0, "night")


def images(root: Path) -> list[Path]:
    return sorted(root.glob("images/*/*.jpg"))


def luminance(path: Path) -> float:
    return float(np.asarray(Image.open(path).convert("L"), np.float32).mean())


def jpeg_bytes(frame: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def test_shipped_layout_and_labels() -> None:
    files = images(NIGHT)
    assert Counter(p.parent.name for p in files) == {"train": 48, "test": 16}
    assert sorted(p.stem for p in files) == [f"night_{i:03d}" for i in range(64)]
    labels = sorted(NIGHT.glob("labels/*/*.txt"))
    assert [p.relative_to(NIGHT / "labels").with_suffix("") for p in labels] == [
        p.relative_to(NIGHT / "images").with_suffix("") for p in files
    ]
    boxes: Counter[int] = Counter()
    for image, label in zip(files, labels, strict=True):
        assert Image.open(image).size == (WIDTH, HEIGHT), image.name
        people = 0
        for line in label.read_text(encoding="utf-8").splitlines():
            cls, *numbers = line.split()
            assert cls in ("0", "1") and len(numbers) == 4, line
            assert all(len(n.split(".")[1]) == 6 for n in numbers), line
            cx, cy, w, h = map(float, numbers)
            assert 0 < w <= 1 and 0 < h <= 1, line
            # Inside the image (with rounding to 6 decimals) and at least 4 pixels each way.
            assert cx - w / 2 >= -1e-6 and cx + w / 2 <= 1 + 1e-6, line
            assert cy - h / 2 >= -1e-6 and cy + h / 2 <= 1 + 1e-6, line
            assert w * WIDTH >= 4 - 1e-3 and h * HEIGHT >= 4 - 1e-3, line
            boxes[int(cls)] += 1
            people += cls == "0"
        assert people >= 2, label.name
    assert boxes[0] >= 2 * 64 and boxes[1] > 0
    data = (NIGHT / "data.yaml").read_text(encoding="utf-8")
    assert "train: images/train\ntest: images/test\nnames:\n  0: person\n  1: car\n" in data


def test_card_reads_64_night_samples(registry) -> None:
    card = load_card("street_night_sample", registry)
    assert card.format == "yolo" and card.domain == "night"
    assert (RENDERER.parent / "cards" / card.root).resolve() == NIGHT
    fmt = registry.dataset_format(card.format)
    result = fmt().read(NIGHT, fmt.Options.model_validate(card.options))
    assert not result.issues, result.issues
    assert len(result.dataset) == 64
    assert Counter(s.split for s in result.dataset) == {"train": 48, "test": 16}


def test_night_is_plainly_night() -> None:
    night = [np.asarray(Image.open(p).convert("RGB"), np.float32) for p in images(NIGHT)]
    day = [luminance(p) for p in images(DAY)]
    night_luminance = [float((rgb @ np.array([0.299, 0.587, 0.114], np.float32)).mean()) for rgb in night]
    assert np.mean(night_luminance) < 0.5 * np.mean(day), (np.mean(night_luminance), np.mean(day))
    # Point lights: lamps, headlights and windows reach near white in a dark frame.
    lit = sum(bool((rgb.max(axis=2) >= 235).any()) for rgb in night)
    assert lit >= 0.9 * len(night), lit
    # Night's shadows are blue: in the darker half of all pixels, blue outweighs red.
    pixels = np.concatenate([rgb.reshape(-1, 3) for rgb in night])
    brightness = pixels.sum(axis=1)
    dark = pixels[brightness < np.median(brightness)]
    assert dark[:, 2].mean() > 1.1 * dark[:, 0].mean(), dark.mean(axis=0)


def test_night_render_is_deterministic_and_matches_the_shipped_file(renderer: ModuleType, night_scene) -> None:
    again = renderer.render_scene(0, "night")
    assert np.array_equal(night_scene.frame, again.frame)
    assert night_scene.labels == again.labels
    assert jpeg_bytes(night_scene.frame, renderer.JPEG_QUALITY) == (NIGHT / "images/train/night_000.jpg").read_bytes()
    text = "".join(label.yolo_line() + "\n" for label in night_scene.labels)
    assert text == (NIGHT / "labels/train/night_000.txt").read_text(encoding="utf-8")


def test_night_boxes_come_from_the_id_buffer(renderer: ModuleType, night_scene) -> None:
    ss = renderer.SUPERSAMPLE
    assert night_scene.frame.shape == (HEIGHT, WIDTH, 3)
    assert night_scene.ids.shape == (HEIGHT * ss, WIDTH * ss)
    expected = set()
    for object_id, cls in night_scene.classes.items():
        ys, xs = np.nonzero(night_scene.ids == object_id)
        if len(xs) == 0:
            continue
        box = (cls, xs.min() / ss, ys.min() / ss, (xs.max() + 1) / ss, (ys.max() + 1) / ss)
        if box[3] - box[1] >= 4 and box[4] - box[2] >= 4:
            expected.add(box)
    assert {(lb.cls, lb.x1, lb.y1, lb.x2, lb.y2) for lb in night_scene.labels} == expected
    assert sum(lb.cls == 0 for lb in night_scene.labels) >= 2


def test_day_render_is_unchanged(renderer: ModuleType) -> None:
    frame, labels = renderer.render(0)
    assert jpeg_bytes(frame, renderer.JPEG_QUALITY) == (DAY / "images/train/street_000.jpg").read_bytes()
    text = "".join(label.yolo_line() + "\n" for label in labels)
    assert text == (DAY / "labels/train/street_000.txt").read_text(encoding="utf-8")
