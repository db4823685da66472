"""The YOLO workload of ``fewgen bench contention``: one training epoch of yolo11n from scratch.

The evaluator's own training path (:func:`fewgen_yolo.training.train`: offline, seeded,
deterministic, every batch a step) on a generated dataset of bright squares, small enough
that an epoch takes seconds on one core.
"""

from __future__ import annotations

from pathlib import Path

from fewgen.contention import Workload

IMAGE_SIZE = 64


class YoloEpochWorkload(Workload):
    name = "yolo-epoch"
    description = f"one YOLO training epoch (yolo11n.yaml from scratch, {IMAGE_SIZE} px, batch 4)"

    def __init__(self, images: int = 32) -> None:
        self.images = images
        self.runs = 0

    def setup(self, folder: Path) -> None:
        import numpy as np

        from fewgen.cache import default_cache_dir
        from fewgen.dataset import Box, Sample
        from fewgen.imageio import save_image
        from fewgen_yolo import training

        rng = np.random.default_rng(0)
        samples = []
        for index in range(self.images):
            image = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 60, dtype=np.uint8)
            x, y = (int(v) for v in rng.integers(2, IMAGE_SIZE - 22, 2))
            side = int(rng.integers(10, 20))
            image[y : y + side, x : x + side] = (230, 200, 40)
            path = save_image(image, folder / "images" / f"square{index:03d}.png")
            samples.append(
                Sample(f"square{index:03d}", path, IMAGE_SIZE, IMAGE_SIZE, boxes=(Box(0, x, y, x + side, y + side),))
            )
        # ultralytics needs a val split even when training does not validate.
        self.data_yaml = training.write_layout({"train": samples, "val": samples[:4]}, ["square"], folder / "layout")
        # The evaluator's settings folder, so ultralytics finds the font it would otherwise fetch.
        self.ultralytics = training.prepare_ultralytics(default_cache_dir() / "ultralytics")
        self.settings = training.TrainSettings("yolo11n.yaml", 1, IMAGE_SIZE, 4, "cpu", {"nbs": 4})
        self.folder = folder

    def run(self) -> None:
        import torch

        from fewgen_yolo import training

        # ultralytics' deterministic mode is process-wide; the workloads timed after this one keep theirs.
        deterministic = torch.are_deterministic_algorithms_enabled()
        warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
        self.runs += 1
        try:
            training.train(
                self.ultralytics,
                self.data_yaml,
                self.settings,
                seed=0,
                run_dir=self.folder / "runs" / f"run{self.runs}",
                validate_during_training=False,
            )
        finally:
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
