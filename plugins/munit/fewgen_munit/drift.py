"""Label drift: are the labelled objects still there after translation?

Translation keeps the pixel grid, so boxes stay where they were; what can go wrong is that
the translator paints an object away (a pedestrian dissolved into a dark wall). An
independent detector looks for each labelled object in the source and in its translation;
an object it finds in the source but not in the translation *vanished*, and an image with a
vanished object is flagged for review or dropped.

The default detector is OpenCV's HOG people detector (Dalal & Triggs, built into OpenCV, no
weights to download). It scans a 64 x 128 window in which a person stands about 96 pixels
tall, so each labelled box is checked in a crop around it, scaled until the box is that tall:
small pedestrians in a wide street scene are found, and an object counts as found only by a
detection that overlaps its own box. A YOLO model (for example one the `yolo` evaluator
trained, kept under its report folder) can stand in for it and checks any class it knows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fewgen.errors import UsageError
from fewgen.measures import HOG_PERSON_HEIGHT, HOG_WINDOW, box_iou, detect_people, people_detector

if TYPE_CHECKING:
    import numpy as np

    from fewgen.api import StepContext
    from fewgen.dataset import Box

# The person inside a detection window: its central half in width, the middle 3/4 in height.
PERSON_IN_WINDOW = (0.25, 0.125, 0.75, 0.875)
MATCH_IOU = 0.3  # a HOG detection finds a box when their overlap reaches this (after trimming the window)
YOLO_MATCH_IOU = 0.5  # a YOLO detection finds a box at the usual detection-matching overlap
CONTEXT = 0.5  # the crop around a box extends by this share of the box height on every side


@dataclass(frozen=True)
class DriftReport:
    """What the detector found of one image's labelled objects before and after translation."""

    objects: int  # labelled objects of the checked class
    found_source: int  # of those, found in the source image
    found_translated: int  # of those, found in the translation
    kept: int  # found in both
    vanished: bool  # an object found in the source is not found in the translation

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Detector(Protocol):
    def found(self, image: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[bool]:
        """For each box (x1, y1, x2, y2 pixels) of ``image`` (H, W, 3) uint8 RGB: is its object detected?"""
        ...


class HogPeopleDetector:
    """OpenCV's default HOG + linear SVM people detector, checking one labelled box at a time."""

    def __init__(self, hit_threshold: float = 0.0) -> None:
        import cv2

        self.cv2 = cv2
        self.hog = people_detector()
        self.hit_threshold = hit_threshold

    def finds(self, image: np.ndarray, box: Sequence[float]) -> bool:
        """Whether a person is detected on ``box`` (x1, y1, x2, y2 pixels) of ``image`` (H, W, 3) uint8."""
        x1, y1, x2, y2 = box
        height = y2 - y1
        if height < 2 or x2 - x1 < 1:
            return False
        scale = HOG_PERSON_HEIGHT / height
        margin = CONTEXT * height
        # The crop is at least one detection window wide, so a narrow box still fits one.
        half_width = max((x2 - x1) / 2 + margin, HOG_WINDOW[0] / scale / 2 + 1)
        centre = (x1 + x2) / 2
        left, right = int(max(0, centre - half_width)), int(min(image.shape[1], centre + half_width + 1))
        top, bottom = int(max(0, y1 - margin)), int(min(image.shape[0], y2 + margin + 1))
        crop = image[top:bottom, left:right]
        size = (max(HOG_WINDOW[0], round(crop.shape[1] * scale)), max(HOG_WINDOW[1], round(crop.shape[0] * scale)))
        crop = self.cv2.resize(crop, size, interpolation=self.cv2.INTER_LINEAR)
        found = detect_people(crop, self.hog, padding=(8, 8), hit_threshold=self.hit_threshold)
        sx, sy = size[0] / (right - left), size[1] / (bottom - top)
        target = ((x1 - left) * sx, (y1 - top) * sy, (x2 - left) * sx, (y2 - top) * sy)
        a, b, c, d = PERSON_IN_WINDOW
        for left_x, top_y, right_x, bottom_y in found:
            w, h = right_x - left_x, bottom_y - top_y
            person = (left_x + a * w, top_y + b * h, left_x + c * w, top_y + d * h)
            if box_iou(person, target) >= MATCH_IOU:
                return True
        return False

    def found(self, image: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[bool]:
        return [self.finds(image, box) for box in boxes]


class YoloDetector:
    """An ultralytics YOLO model run once per image; a box is found by a same-class detection with IoU >= 0.5.

    ultralytics unpickles the weights file, which can run code: a step passes its ``ctx`` so the
    file's SHA-256 is in the step's manifest record before it is loaded.
    """

    def __init__(
        self,
        weights: Path,
        class_name: str,
        config_dir: Path,
        confidence: float = 0.25,
        ctx: StepContext | None = None,
    ) -> None:
        try:
            from fewgen_yolo.training import prepare_ultralytics  # the yolo plugin keeps ultralytics offline
        except ImportError:
            raise UsageError(
                "a YOLO drift_detector needs the fewgen-yolo plugin: pip install 'fewgen-munit[yolo]'"
                " (or pip install -e plugins/yolo)"
            ) from None

        if ctx is not None:
            ctx.record_file(weights, "drift detector weights")
        ultralytics = prepare_ultralytics(config_dir)
        self.model = ultralytics.YOLO(str(weights))
        names = self.model.names
        matches = [int(index) for index, name in names.items() if name == class_name]
        if not matches:
            raise ValueError(f"the YOLO model {weights} has no class {class_name!r} (it has {sorted(names.values())})")
        self.class_index = matches[0]
        self.confidence = confidence

    def found(self, image: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[bool]:
        if not boxes:
            return []
        # ultralytics takes numpy images as OpenCV's BGR.
        (result,) = self.model.predict(
            image[:, :, ::-1], conf=self.confidence, classes=[self.class_index], verbose=False
        )
        detected = result.boxes.xyxy.cpu().tolist()
        return [any(box_iou(d, box) >= YOLO_MATCH_IOU for d in detected) for box in boxes]


def check_drift(detector: Detector, source: np.ndarray, translated: np.ndarray, boxes: Sequence[Box]) -> DriftReport:
    """The detector's view of ``boxes`` in the source image and in its translation (same size)."""
    if source.shape != translated.shape:
        raise ValueError(f"translation is {translated.shape}, its source {source.shape}")
    corners = [(b.x1, b.y1, b.x2, b.y2) for b in boxes]
    in_source = [bool(f) for f in detector.found(source, corners)]
    in_translated = [bool(f) for f in detector.found(translated, corners)]
    kept = sum(s and t for s, t in zip(in_source, in_translated, strict=True))
    return DriftReport(
        objects=len(boxes),
        found_source=sum(in_source),
        found_translated=sum(in_translated),
        kept=kept,
        vanished=kept < sum(in_source),
    )
