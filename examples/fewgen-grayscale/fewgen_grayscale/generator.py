"""The ``grayscale`` generator: 3-channel grayscale copies of a fraction of the images.

Teams whose cameras see no colour (thermal/IR, monochrome inspection cameras) often
start from colour datasets. Grayscale copies teach a detector not to rely on colour
cues it will never get. The conversion moves no pixel, so boxes and masks stay valid
unchanged; the images keep three channels because detectors expect RGB input.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from fewgen.api import Generator, Params, StepContext, choose_fraction, file_stem
from fewgen.dataset import Dataset, Sample
from fewgen.imageio import CorruptImage, copy_file, load_rgb, save_image

if TYPE_CHECKING:
    import numpy as np

# ITU-R BT.601 luma weights: the brightness a viewer perceives in an RGB pixel.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


class GrayscaleParams(Params):
    fraction: float = Field(1.0, ge=0.0, le=1.0, description="Share of the input samples that get a grayscale copy.")
    contrast: float = Field(
        1.0,
        gt=0.0,
        le=10.0,
        description="Contrast stretch around each image's mean brightness: 1 keeps it, >1 raises it, <1 lowers it.",
    )
    domain: str = Field("gray", min_length=1, description="Domain of the new samples.")
    image_format: Literal["jpg", "png"] = Field("png", description="File format of the new images.")


class Grayscale(Generator):
    name = "grayscale"
    description = "3-channel grayscale copies of a fraction of the images (monochrome, thermal or IR cameras)."
    Params = GrayscaleParams

    def generate(self, dataset: Dataset, ctx: StepContext) -> Iterator[Sample]:
        params: GrayscaleParams = self.params  # type: ignore[assignment]
        chosen = choose_fraction(dataset.samples, params.fraction, ctx.rng())
        for index, parent in ctx.progress(chosen, total=len(chosen), desc=f"{ctx.step}: grayscale"):
            try:
                rgb = load_rgb(parent.image)
            except CorruptImage as exc:
                ctx.skip(parent.image, str(exc))
                continue
            stem = file_stem(index, parent.id)
            mask = None
            if parent.mask is not None:
                mask = ctx.work_dir / "masks" / f"{stem}{parent.mask.suffix}"
                try:
                    copy_file(parent.mask, mask)
                except OSError as exc:
                    # A copy without its mask would teach a segmenter that the objects vanished.
                    ctx.skip(parent.mask, f"cannot copy mask: {exc}")
                    continue
            gray = to_gray(rgb, params.contrast)
            image = save_image(gray, ctx.work_dir / "images" / f"{stem}.{params.image_format}")
            height, width = gray.shape[:2]
            yield parent.derive(
                id=f"{ctx.step}/{parent.id}",
                image=image,
                width=width,
                height=height,
                mask=mask,
                domain=params.domain,
                provenance=self.provenance(ctx, parent),
                # Values earlier steps measured on the parent (scores, predictions) do not describe the copy.
                attributes={},
            )


def to_gray(rgb: np.ndarray, contrast: float) -> np.ndarray:
    """An HxWx3 uint8 image whose three channels all hold the luma of ``rgb``."""
    # NumPy is imported here, not at the top: fewgen imports this module whenever it lists
    # plugins, and a hook module should cost next to nothing to import.
    import numpy as np

    luma = rgb.astype(np.float32) @ np.asarray(LUMA_WEIGHTS, dtype=np.float32)
    if contrast != 1.0:
        mean = luma.mean()
        luma = mean + (luma - mean) * contrast
    gray = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., np.newaxis], 3, axis=-1)
