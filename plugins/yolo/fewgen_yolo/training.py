"""Training and prediction with ultralytics YOLO: offline, seeded, resumable.

ultralytics downloads whatever it is missing: weights for a ``*.pt`` name, a font for
its plots, datasets for names like ``coco8.yaml``, and it reports usage. Everything here
runs with ``YOLO_OFFLINE`` and a private config folder (whose settings turn sync off and
which holds a font), trains from model YAMLs, and takes weights only from a path the user
gave. Nothing in this module knows about baselines or metrics.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from fewgen.dataset import Sample
from fewgen.errors import UsageError

# Images are linked, not copied, into the training layout; ultralytics reads labels from the
# parallel labels/ folder of each image path, which a link satisfies.
TRAIN_RUN_DONE = "fewgen-done.json"


@dataclass(frozen=True)
class TrainSettings:
    """Everything that must be the same for the baseline and the augmented model."""

    model: str
    epochs: int
    imgsz: int
    batch: int
    device: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prediction:
    """Detections on one image: pixel xyxy boxes, confidences and class ids."""

    boxes: list[list[float]]
    scores: list[float]
    classes: list[int]


def prepare_ultralytics(config_dir: Path) -> ModuleType:
    """Import ultralytics with every network path closed; returns the module."""
    os.environ["YOLO_OFFLINE"] = "1"
    # Read when ultralytics is first imported, so it must be set before that.
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    user_dir = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics"
    user_dir.mkdir(parents=True, exist_ok=True)
    font = user_dir / "Arial.ttf"
    if not font.exists():
        # ultralytics fetches Arial.ttf for its plot labels unless one is there; any TTF will do,
        # and matplotlib (an ultralytics dependency) ships DejaVu Sans.
        import matplotlib

        shutil.copyfile(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", font)
    with contextlib.redirect_stdout(sys.stderr):
        import ultralytics
        from ultralytics.utils import LOGGER, SETTINGS
    # ultralytics logs to stdout; fewgen keeps stdout for results (`fewgen bench` prints JSON there).
    # Re-pointed on every call, by assignment: the stream of a previous call may be closed by
    # now (test capture), and setStream would flush it first.
    for handler in LOGGER.handlers:
        # Exactly ultralytics' console handler; subclasses (pytest's log capture) keep their streams.
        if type(handler) is logging.StreamHandler:
            handler.stream = sys.stderr
    if SETTINGS.get("sync"):
        SETTINGS.update({"sync": False})
    _undo_pillow_patch()
    follow_thread_policy()
    return ultralytics


def follow_thread_policy() -> None:
    """Make ultralytics use the thread count fewgen's thread policy set last (:mod:`fewgen.threads`), if any.

    ultralytics sets torch's thread count to its own ``NUM_THREADS`` (the CPU count - 1, at
    most 8, whatever else runs) each time it selects a device, which is on every train, val
    and predict, and it turns OpenCV's threads off when imported. Called after the import and
    before each of those calls, so that a count the policy changed in between is the one used.
    """
    from fewgen.threads import applied_threads, apply_threads

    threads = applied_threads()
    if threads is None:
        return
    from ultralytics.utils import torch_utils

    torch_utils.NUM_THREADS = threads
    apply_threads(threads)


def _undo_pillow_patch() -> None:
    """Give PIL.Image.open back its own behaviour.

    On import, ultralytics replaces PIL.Image.open process-wide with a wrapper that, on any
    file Pillow cannot identify, tries to pip-install a HEIF plugin and then raises
    ModuleNotFoundError offline. Every later reader in the process (fewgen's corrupt-image
    handling included) would see that instead of Pillow's UnidentifiedImageError.
    """
    from PIL import Image
    from ultralytics.utils import patches

    original = getattr(patches, "_image_open", None)
    if original is not None and Image.open is not original:
        Image.open = original


def check_model(model: str) -> None:
    """A model YAML (ultralytics name or path) or an existing weights file; never a weights name to fetch."""
    if model.endswith((".yaml", ".yml")):
        return
    if model.endswith(".pt"):
        if not Path(model).expanduser().is_file():
            raise ValueError(
                f"weights file {model!r} not found; fewgen never downloads weights: give a path to a .pt file"
                " or a model YAML such as yolo11n.yaml to train from scratch"
            )
        return
    raise ValueError(f"model {model!r} must be a model YAML (e.g. yolo11n.yaml) or a path to .pt weights")


def named_files(model: str, train_args: dict[str, Any]) -> list[tuple[Path, str]]:
    """The files besides the dataset that a training reads, each with its role, for the step's record.

    The model's weights (a ``.pt`` ultralytics unpickles, which can run code) or its YAML
    when that is a local file (an ultralytics name such as ``yolo11n.yaml`` comes with the
    installed package), and ``pretrained`` weights given in the training arguments. These are
    the only weights a training loads besides fewgen's own checkpoints in the step's folders.
    """
    found = []
    path = Path(model).expanduser()
    if model.endswith(".pt"):
        found.append((path, "yolo weights"))
    elif path.is_file():
        found.append((path, "yolo model definition"))
    pretrained = train_args.get("pretrained")
    if isinstance(pretrained, str):
        found.append((Path(pretrained).expanduser(), "yolo pretrained weights"))
    return found


def write_layout(splits: dict[str, Sequence[Sample]], classes: list[str], dest: Path) -> Path:
    """An ultralytics dataset of links to the samples' images plus label files; returns its data YAML.

    Files are named by position (``000012.jpg``) so predictions map back to samples by index.
    """
    import yaml

    for split, samples in splits.items():
        images, labels = dest / "images" / split, dest / "labels" / split
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for index, sample in enumerate(samples):
            link = images / f"{index:06d}{sample.image.suffix.lower()}"
            if not link.is_symlink():
                os.symlink(Path(sample.image).resolve(), link)
            lines = []
            for box in sample.boxes:
                cx, cy = (box.x1 + box.x2) / 2 / sample.width, (box.y1 + box.y2) / 2 / sample.height
                w, h = box.width / sample.width, box.height / sample.height
                lines.append(f"{box.cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
            (labels / f"{index:06d}.txt").write_text("".join(lines), encoding="utf-8")
    # No `path` key: ultralytics resolves the split folders against this file's folder.
    data = {split: f"images/{split}" for split in splits} | {"names": dict(enumerate(classes))}
    data_yaml = dest / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return data_yaml


def train(
    ultralytics: ModuleType,
    data_yaml: Path,
    settings: TrainSettings,
    seed: int,
    run_dir: Path,
    validate_during_training: bool,
) -> Path:
    """Train (or resume, or reuse a finished run in ``run_dir``) and return the weights to evaluate."""
    done = run_dir / TRAIN_RUN_DONE
    if done.is_file():
        # Only the file name is taken from the record: weights are never loaded from outside the run.
        return run_dir / "weights" / Path(json.loads(done.read_text())["weights"]).name
    follow_thread_policy()
    last = run_dir / "weights" / "last.pt"
    if last.is_file():
        # An interrupted training: ultralytics restores model, optimiser, epoch and arguments.
        ultralytics.YOLO(str(last)).train(resume=True)
    else:
        arguments = {
            "data": str(data_yaml),
            "epochs": settings.epochs,
            "imgsz": settings.imgsz,
            "batch": settings.batch,
            "device": settings.device,
            "workers": 0,
            "amp": False,  # the AMP check downloads weights; CPUs gain nothing from it
            "seed": seed,
            "deterministic": True,
            "project": str(run_dir.parent),
            "name": run_dir.name,
            "exist_ok": True,
            "plots": False,
            "val": validate_during_training,
            "verbose": False,
            **settings.extra,
        }
        try:
            ultralytics.YOLO(settings.model).train(**arguments)
        except SyntaxError as exc:  # how ultralytics reports an unknown or invalid training argument
            raise UsageError(f"yolo: invalid training argument: {str(exc).splitlines()[0]}") from None
    best = run_dir / "weights" / "best.pt"
    weights = best if validate_during_training and best.is_file() else last
    done.write_text(json.dumps({"weights": weights.name}))
    return weights


def predict(
    ultralytics: ModuleType,
    weights: Path,
    images: Sequence[Path],
    settings: TrainSettings,
    conf: float,
    iou: float,
    max_det: int,
    progress: Callable[[Any], Any] = iter,
) -> list[Prediction]:
    """Detections for each image, in order, at a low confidence threshold (as for mAP)."""
    follow_thread_policy()
    model = ultralytics.YOLO(str(weights))
    predictions = []
    for path in progress(images):
        (result,) = model.predict(
            source=str(path),
            imgsz=settings.imgsz,
            conf=conf,
            iou=iou,
            max_det=max_det,
            device=settings.device,
            verbose=False,
        )
        boxes = result.boxes
        predictions.append(
            Prediction(
                boxes=[[round(float(v), 3) for v in box] for box in boxes.xyxy.tolist()],
                scores=[round(float(s), 6) for s in boxes.conf.tolist()],
                classes=[int(c) for c in boxes.cls.tolist()],
            )
        )
    return predictions


def ultralytics_test_metrics(
    ultralytics: ModuleType,
    weights: Path,
    data_yaml: Path,
    split: str,
    settings: TrainSettings,
    conf: float,
    iou: float,
) -> dict[str, float]:
    """ultralytics' own mAP on ``split`` (its own inference and matching), for the cross-check."""
    follow_thread_policy()
    metrics = ultralytics.YOLO(str(weights)).val(
        data=str(data_yaml),
        split=split,
        imgsz=settings.imgsz,
        batch=settings.batch,
        device=settings.device,
        workers=0,
        conf=conf,
        iou=iou,
        plots=False,
        verbose=False,
    )
    return {"mAP50": float(metrics.box.map50), "mAP50-95": float(metrics.box.map)}
