"""Painting objects into chosen boxes of a full image with a trained PS-GAN generator.

For each box: the window around it (the same geometry as the training pairs), the box
filled with noise, the generator's output, and the output's box region mapped back to
the image's pixels and blended in. The blend weight is 1 inside the box and falls linearly
to 0 over ``feather`` pixels towards the box's edge, so nothing outside a box changes and
the painted object meets its surroundings without a seam. All boxes of an image are cut
from the original image and generated as one batch.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from fewgen.dataset import Box
from fewgen_psgan.pairs import Window, with_noise

if TYPE_CHECKING:
    import torch

    from fewgen_psgan.model import UnetGenerator


class Painter:
    """Paints objects into boxes with a trained generator (evaluation mode: batch-norm running statistics)."""

    def __init__(
        self, generator: UnetGenerator, size: int, context: float, feather: float = 2.0, device: str = "cpu"
    ) -> None:
        self.generator = generator
        self.size = size
        self.context = context
        self.feather = feather
        self.device = device

    def windows(
        self, image: np.ndarray, boxes: list[Box], noise: torch.Generator
    ) -> tuple[list[Window], torch.Tensor, torch.Tensor]:
        """The windows around the boxes, the generator's inputs (N, 3, S, S) in [-1, 1], the boxes in them."""
        import torch

        windows = [Window.around(box, self.context) for box in boxes]
        pixels = torch.stack([torch.from_numpy(w.cut(image, self.size)).permute(2, 0, 1) for w in windows])
        inside = torch.tensor([w.box_in_window(box, self.size) for w, box in zip(windows, boxes, strict=True)])
        return windows, with_noise(pixels.float() / 127.5 - 1, inside, noise), inside

    def paint(self, image: np.ndarray, boxes: list[Box], noise: torch.Generator) -> np.ndarray:
        """A copy of the HxWx3 uint8 image with an object painted into each box."""
        import torch

        if not boxes:
            return image.copy()
        windows, inputs, _ = self.windows(image, boxes, noise)
        was_training = self.generator.training
        self.generator.eval()
        try:
            with torch.no_grad():
                fakes = self.generator(inputs.to(self.device)).float().cpu()
        finally:
            self.generator.train(was_training)
        out = image.astype(np.float32)
        for window, box, fake in zip(windows, boxes, fakes, strict=True):
            pixels = ((fake.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255)
            blend_back(out, pixels, window, box, self.feather)
        return out.round().clip(0, 255).astype(np.uint8)


def blend_back(out: np.ndarray, window_pixels: np.ndarray, window: Window, box: Box, feather: float) -> None:
    """Blend the box region of a generated window (S x S x 3 float) into ``out`` (H x W x 3 float), in place."""
    import cv2

    height, width = out.shape[:2]
    x1, y1 = max(math.floor(box.x1), 0), max(math.floor(box.y1), 0)
    x2, y2 = min(math.ceil(box.x2), width), min(math.ceil(box.y2), height)
    if x2 <= x1 or y2 <= y1:
        return
    size = window_pixels.shape[0]
    scale = window.side / size
    # Window pixel i is centred at image coordinate x0 + (i + 0.5)·scale; image pixel u at u + 0.5.
    matrix = np.array(
        [[scale, 0, window.x0 + 0.5 * scale - 0.5 - x1], [0, scale, window.y0 + 0.5 * scale - 0.5 - y1]],
        dtype=np.float64,
    )
    region = cv2.warpAffine(
        window_pixels.astype(np.float32),
        matrix,
        (x2 - x1, y2 - y1),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    alpha = box_weights(box, x1, y1, x2, y2, feather)[..., None]
    out[y1:y2, x1:x2] = alpha * region + (1 - alpha) * out[y1:y2, x1:x2]


def box_weights(box: Box, x1: int, y1: int, x2: int, y2: int, feather: float) -> np.ndarray:
    """Blend weights of the pixels [y1, y2) x [x1, x2): by each pixel centre's distance inside the box's edge."""
    xs = np.arange(x1, x2) + 0.5
    ys = np.arange(y1, y2) + 0.5
    dx = np.minimum(xs - box.x1, box.x2 - xs)
    dy = np.minimum(ys - box.y1, box.y2 - ys)
    inside = np.minimum(dy[:, None], dx[None, :])
    if feather <= 0:
        return (inside > 0).astype(np.float32)
    return np.clip(inside / feather, 0.0, 1.0).astype(np.float32)
