"""A short real fit: DRAEM trained on generated good textures finds generated defects it never saw.

The textures are two slightly varying gratings with random phase and sensor noise (one
"product"); the defects are brighter or darker elliptical patches, which the training's
simulated anomalies (Perlin-shaped, Perlin-noise sources) never look like. The tiny preset at
64 px with Adam at 1e-3 (the paper's 1e-4 suits its wide network and hundreds of epochs) learns
this within the test budget; image AUROC above 0.9 is the issue's bar. The statistical
baseline, fitted on the same good images, is compared with it and the comparison gives a verdict.
"""

from __future__ import annotations

import numpy as np
import torch
from fewgen_draem.comparison import compare
from fewgen_draem.metrics import anomaly_metrics
from fewgen_draem.statistical import StatisticalBaseline
from fewgen_draem.training import DraemTrainer, TrainingConfig

from fewgen.verdicts import VERDICTS

SIZE = 64


def texture(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    image = np.zeros((SIZE, SIZE))
    for frequency, angle in ((4, 0.3), (9, 1.9)):
        frequency *= rng.uniform(0.9, 1.1)
        angle += rng.uniform(-0.1, 0.1)
        image += np.sin(2 * np.pi * frequency * (xx * np.cos(angle) + yy * np.sin(angle)) + rng.uniform(0, 2 * np.pi))
    return 0.5 + 0.08 * image + rng.normal(0, 0.02, image.shape)


def with_defect(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    (cy, cx), (ry, rx) = rng.uniform(0.2, 0.8, 2), rng.uniform(0.05, 0.15, 2)
    mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
    image = image.copy()
    image[mask] += rng.choice([-1, 1]) * rng.uniform(0.2, 0.35)
    return image, mask


def as_pixels(image: np.ndarray) -> torch.Tensor:
    grey = torch.from_numpy((np.clip(image, 0, 1) * 255).astype(np.uint8))
    return grey[None].expand(3, -1, -1)


def test_short_fit_detects_unseen_defects() -> None:
    rng = np.random.default_rng(0)
    train = torch.stack([as_pixels(texture(rng)) for _ in range(32)])
    test, masks, labels = [], [], []
    for index in range(20):
        image, mask = texture(rng), np.zeros((SIZE, SIZE), bool)
        if index % 2:
            image, mask = with_defect(image, rng)
        test.append(as_pixels(image))
        masks.append(mask)
        labels.append("patch" if index % 2 else "good")

    # No rotation of the good images (the official loader turns 30 % of them): this product's gratings
    # have fixed orientations, and in 40 epochs the tiny network learns the one product, not it turned
    # by up to 90 degrees as well (with 0.3 the pixel AUROC fell just below the bar, to 0.896).
    config = TrainingConfig(preset="tiny", size=SIZE, batch_size=8, epochs=40, lr=1e-3, rotate_normal=0.0)
    trainer = DraemTrainer(config, seed=0)
    summary = trainer.fit(train)
    maps, scores = trainer.predict(torch.stack(test))
    metrics = anomaly_metrics(scores.numpy(), maps.numpy(), np.stack(masks), labels)
    assert summary.iterations == 160
    assert metrics["image_auroc"] > 0.9, metrics
    assert metrics["pixel_auroc"] > 0.9, metrics

    baseline_maps, baseline_scores = StatisticalBaseline().fit(train).predict(torch.stack(test))
    baseline = anomaly_metrics(baseline_scores.numpy(), baseline_maps.numpy(), np.stack(masks), labels)
    images = {
        "anomalous": np.array([label != "good" for label in labels]),
        "has_truth": np.ones(len(labels), dtype=bool),
        "masks": np.stack(masks),
        "draem_scores": scores.numpy(),
        "baseline_scores": baseline_scores.numpy(),
        "draem_maps": maps.numpy(),
        "baseline_maps": baseline_maps.numpy(),
    }
    versus = compare(metrics, baseline, images, 500, np.random.default_rng(0))
    for key in ("image_auroc", "pixel_auroc"):
        entry = versus[key]
        assert entry["verdict"]["verdict"] in VERDICTS
        low, high = entry["delta_ci"]
        assert low <= entry["delta"] <= high, entry
