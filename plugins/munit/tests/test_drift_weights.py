"""A YOLO drift detector's weights are on the step's record before ultralytics unpickles them."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from fewgen.api import StepContext


def test_yolo_drift_weights_are_recorded_before_they_are_loaded(tmp_path: Path) -> None:
    pytest.importorskip("fewgen_yolo.training")
    from fewgen_munit.drift import YoloDetector

    weights = tmp_path / "detector.pt"
    weights.write_bytes(b"not a checkpoint: loading fails, after the record")
    ctx = StepContext("night", 0, tmp_path, "cpu", logging.getLogger("test"), False)
    with pytest.raises(Exception):  # noqa: B017 - whatever ultralytics raises on a broken file
        YoloDetector(weights, "person", tmp_path / "config", ctx=ctx)
    assert ctx.files_read == [
        {
            "path": str(weights.resolve()),
            "role": "drift detector weights",
            "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        }
    ]
