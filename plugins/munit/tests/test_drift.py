"""The label-drift check on a real photograph (ultralytics ships bus.jpg with the package)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fewgen_munit.drift import HogPeopleDetector, check_drift

from fewgen.dataset import Box
from fewgen.imageio import load_rgb

# The pedestrian on the left of bus.jpg, fully visible (x1, y1, x2, y2 in its 810 x 1080 pixels).
WALKER = (50.0, 400.0, 245.0, 905.0)


@pytest.fixture(scope="module")
def bus() -> np.ndarray:
    ultralytics = pytest.importorskip("ultralytics")
    path = Path(ultralytics.__file__).parent / "assets" / "bus.jpg"
    if not path.is_file():
        pytest.skip("ultralytics ships no bus.jpg")
    return load_rgb(path)


@pytest.fixture(scope="module")
def detector() -> HogPeopleDetector:
    return HogPeopleDetector()


def test_finds_a_visible_pedestrian_at_its_box_only(bus: np.ndarray, detector: HogPeopleDetector) -> None:
    assert detector.finds(bus, WALKER)
    assert not detector.finds(bus, (300.0, 100.0, 500.0, 300.0))  # the bus window above: no person
    assert not detector.finds(np.zeros_like(bus), WALKER)


def test_finds_small_pedestrians_by_scaling_their_crop(bus: np.ndarray, detector: HogPeopleDetector) -> None:
    import cv2

    quarter = cv2.resize(bus, (203, 270), interpolation=cv2.INTER_AREA)  # the walker is now ~126 px tall
    assert detector.finds(quarter, tuple(v / 4 for v in WALKER))


def test_a_darker_copy_keeps_the_pedestrian_and_a_painted_over_one_loses_it(
    bus: np.ndarray, detector: HogPeopleDetector
) -> None:
    boxes = [Box(0, *WALKER)]
    dark = (bus * 0.4).astype(np.uint8)
    kept = check_drift(detector, bus, dark, boxes)
    assert (kept.objects, kept.found_source, kept.found_translated, kept.kept, kept.vanished) == (1, 1, 1, 1, False)
    painted = bus.copy()
    painted[400:905, 50:245] = bus[380:400, 50:245].reshape(-1, 3).mean(0).astype(np.uint8)
    lost = check_drift(detector, bus, painted, boxes)
    assert (lost.found_source, lost.found_translated, lost.kept, lost.vanished) == (1, 0, 0, True)
    assert lost.to_json()["vanished"] is True


def test_objects_never_found_in_the_source_cannot_vanish(bus: np.ndarray, detector: HogPeopleDetector) -> None:
    report = check_drift(detector, bus, np.zeros_like(bus), [Box(0, 300.0, 100.0, 500.0, 300.0)])
    assert (report.objects, report.found_source, report.vanished) == (1, 0, False)
    with pytest.raises(ValueError, match="translation is"):
        check_drift(detector, bus, bus[:10], [])


@pytest.fixture(scope="module")
def yolo_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained YOLO11n whose classes are person and car, saved as a weights file (nothing downloaded)."""
    training = pytest.importorskip("fewgen_yolo.training")
    folder = tmp_path_factory.mktemp("yolo")
    ultralytics = training.prepare_ultralytics(folder / "config")
    model = ultralytics.YOLO("yolo11n.yaml")
    model.model.names = {index: str(index) for index in range(80)} | {0: "person", 1: "car"}
    model.save(folder / "two_classes.pt")
    return folder / "two_classes.pt"


def test_a_yolo_model_checks_its_class_by_box_overlap(yolo_weights: Path, tmp_path: Path) -> None:
    import torch
    from fewgen_munit.drift import YoloDetector

    detector = YoloDetector(yolo_weights, "car", tmp_path / "config")
    assert detector.class_index == 1

    class Result:  # what ultralytics returns, reduced to the detections' pixel boxes
        boxes = type("Boxes", (), {"xyxy": torch.tensor([[10.0, 10.0, 50.0, 40.0]])})()

    detector.model.predict = lambda image, **options: [Result()]
    image = np.zeros((60, 80, 3), np.uint8)
    assert detector.found(image, [(12.0, 10.0, 50.0, 42.0), (60.0, 0.0, 80.0, 20.0)]) == [True, False]
    assert detector.found(image, []) == []
    with pytest.raises(ValueError, match="no class 'bicycle'"):
        YoloDetector(yolo_weights, "bicycle", tmp_path / "config")


def test_an_untrained_yolo_model_finds_nothing_so_nothing_vanishes(yolo_weights: Path, tmp_path: Path) -> None:
    from fewgen_munit.drift import YoloDetector

    detector = YoloDetector(yolo_weights, "person", tmp_path / "config")
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    report = check_drift(detector, image, image, [Box(0, 4.0, 4.0, 30.0, 60.0)])
    assert (report.objects, report.found_source, report.vanished) == (1, 0, False)
