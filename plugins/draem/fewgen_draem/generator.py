"""The ``draem`` generator: good images with DRAEM's simulated surface anomalies, their masks and boxes.

Anomaly detectors for inspection are trained on defect-free images; DRAEM (ICCV 2021)
teaches its segmentation network with anomalies pasted into those images, shaped by Perlin
noise and filled with augmented foreign textures. This step writes such images as samples,
each with its pixel mask and, if the dataset has a class for them, one box per connected
anomaly region, so any evaluator or detector downstream can use them. The synthesis itself
is :class:`fewgen_draem.synthesis.AnomalySynthesizer`; torch is imported only when a step runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from fewgen.api import Generator, InputFolder, Params, StepContext, choose_fraction, file_stem
from fewgen.dataset import Box, Dataset, Sample
from fewgen.errors import UsageError
from fewgen.imageio import IMAGE_SUFFIXES, CorruptImage, load_rgb, save_image

if TYPE_CHECKING:
    import numpy as np
    import torch


class DraemParams(Params):
    copies: int = Field(1, ge=1, le=100, description="Anomalous copies made of each chosen image.")
    fraction: float = Field(1.0, ge=0.0, le=1.0, description="Share of the eligible samples chosen for copies.")
    from_labels: list[str | None] = Field(
        default_factory=lambda: ["good", None],
        min_length=1,
        description="Image-level labels of the samples anomalies are added to; null stands for unlabelled samples.",
    )
    textures: InputFolder | None = Field(
        None,
        description="Folder of anomaly source images (searched recursively, e.g. the DTD images folder); "
        "relative to the recipe's folder (with --set: to the current folder); its files are part of the step's "
        "cache key. Without it the sources are colourised Perlin noise.",
    )
    normal_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of the copies left without an anomaly (DRAEM trains with 0.5; a step that adds anomalies "
        "wants 0).",
    )
    beta_max: float = Field(
        0.8, ge=0.0, le=1.0, description="Inside the mask the image keeps an opacity beta uniform in [0, beta_max)."
    )
    rotate_normal: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Probability of rotating the good image by -90..90 degrees first (the official 0.3; 0 keeps "
        "every copy in its parent's pose).",
    )
    size: tuple[int, int] | None = Field(
        None, description="[width, height] (or one number for a square) the images are resized to; default: keep."
    )
    label: str = Field("synthetic_anomaly", min_length=1, description="Image-level label of the anomalous copies.")
    boxes: bool | None = Field(
        None,
        description="One box per connected anomaly region, of class box_class. Default: when the dataset has that "
        "class; true makes a missing class an error.",
    )
    box_class: str = Field("anomaly", min_length=1, description="Class name of the anomaly boxes.")
    min_box_area: int = Field(16, ge=1, description="Anomaly regions whose box covers fewer pixels get no box.")
    batch_size: int = Field(16, ge=1, le=1024, description="Images synthesised together.")

    @field_validator("size", mode="before")
    @classmethod
    def _square(cls, value: Any) -> Any:
        return (value, value) if isinstance(value, int) else value

    @field_validator("size")
    @classmethod
    def _positive(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and min(value) < 1:
            raise ValueError(f"size must be positive, got {list(value)}")
        return value


Job = tuple[int, Sample, int]  # input position, parent, copy number


class DraemGenerator(Generator):
    name = "draem"
    description = (
        "DRAEM simulated surface anomalies: Perlin-shaped patches of augmented textures, with masks and boxes."
    )
    Params = DraemParams

    def generate(self, dataset: Dataset, ctx: StepContext) -> Iterator[Sample]:
        import torch

        from fewgen_draem.synthesis import AnomalySynthesizer

        params: DraemParams = self.params  # type: ignore[assignment]
        box_class = self.box_class_index(dataset, ctx)
        textures = TextureFolder(params.textures, ctx) if params.textures is not None else None
        # The synthesis draws from its own generators; this seeds whatever else in torch is random.
        ctx.seed_torch()
        synthesizer = AnomalySynthesizer(
            beta_max=params.beta_max, normal_share=params.normal_share, rotate_normal=params.rotate_normal
        )
        device = torch.device(ctx.device)
        eligible = [s for s in dataset if s.label in params.from_labels]
        chosen = choose_fraction(eligible, params.fraction, ctx.rng())
        batches = same_size_batches(
            [(index, parent, copy) for index, parent in chosen for copy in range(params.copies)],
            params.size,
            params.batch_size,
        )
        unreadable: set[Path] = set()
        for number, batch in enumerate(ctx.progress(batches, total=len(batches), desc=f"{ctx.step}: draem")):
            jobs, images = self.load_batch(batch, unreadable, ctx)
            if not jobs:
                continue
            # One stream per batch: an unreadable texture redrawn in one batch does not shift the draws of the next.
            batch_rng = ctx.rng(number)
            generator = torch.Generator().manual_seed(int(batch_rng.integers(2**63)))
            sources = textures.pick(len(jobs), batch_rng) if textures is not None else None
            result = synthesizer(images.to(device), generator, sources)
            yield from self.samples(jobs, result.images, result.masks, result.has_anomaly, box_class, ctx)

    def box_class_index(self, dataset: Dataset, ctx: StepContext) -> int | None:
        """The class index of anomaly boxes, or None when no boxes are made."""
        params: DraemParams = self.params  # type: ignore[assignment]
        if params.boxes is False:
            return None
        if params.box_class in dataset.classes:
            return dataset.classes.index(params.box_class)
        if params.boxes is None:
            ctx.log.info("no anomaly boxes: the dataset has no class %r", params.box_class)
            return None
        # The engine keeps the input dataset's classes, so a generator cannot add one.
        raise UsageError(
            f"step {ctx.step!r}: box_class {params.box_class!r} is not a class of the dataset "
            f"(classes: {dataset.classes}); add it to the dataset's classes, name an existing class in box_class, "
            "or set boxes: false"
        )

    def load_batch(self, batch: list[Job], unreadable: set[Path], ctx: StepContext) -> tuple[list[Job], torch.Tensor]:
        """The batch's readable jobs and their images as one (B, 3, H, W) float tensor in [0, 1], each resized to
        ``size`` when one is set (a batch may then mix source sizes); unreadable ones are skipped."""
        import torch

        params: DraemParams = self.params  # type: ignore[assignment]

        loaded: dict[Path, np.ndarray] = {}
        jobs, images = [], []
        for job in batch:
            parent = job[1]
            if parent.image in unreadable:
                continue
            if parent.image not in loaded:
                try:
                    image = load_rgb(parent.image)
                except CorruptImage as exc:
                    unreadable.add(parent.image)
                    ctx.skip(parent.image, str(exc))
                    continue
                if image.shape[:2] != (parent.height, parent.width):
                    # Batches are formed from the recorded sizes; an image of another size cannot join its batch.
                    unreadable.add(parent.image)
                    ctx.skip(
                        parent.image,
                        f"image is {image.shape[1]}x{image.shape[0]}, its sample says {parent.width}x{parent.height}",
                    )
                    continue
                loaded[parent.image] = image
            jobs.append(job)
            images.append(to_tensor(loaded[parent.image], params.size))
        return jobs, torch.stack(images) if images else torch.empty(0, 3, 0, 0)

    def samples(
        self,
        jobs: list[Job],
        images: torch.Tensor,
        masks: torch.Tensor,
        has_anomaly: torch.Tensor,
        box_class: int | None,
        ctx: StepContext,
    ) -> Iterator[Sample]:
        """Write each synthesised image and mask and describe them as samples."""
        params: DraemParams = self.params  # type: ignore[assignment]
        pixels = (images * 255).round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()
        mask_pixels = (masks[:, 0] > 0).cpu().numpy()
        anomalous = has_anomaly.cpu().tolist()
        for (index, parent, copy), image, mask, is_anomalous in zip(jobs, pixels, mask_pixels, anomalous, strict=True):
            name = f"{file_stem(index, parent.id)}_{copy}"
            image_path = save_image(image, ctx.work_dir / "images" / f"{name}.png")
            mask_path = save_image(mask.astype("uint8") * 255, ctx.work_dir / "masks" / f"{name}.png")
            boxes = region_boxes(mask, box_class, params.min_box_area) if box_class is not None else ()
            height, width = mask.shape
            yield parent.derive(
                id=f"{ctx.step}/{parent.id}/{copy}",
                image=image_path,
                width=width,
                height=height,
                # The parent's boxes would not follow a rotation or resize; defect-free images rarely have any.
                boxes=boxes,
                mask=mask_path,
                # A copy whose mask came out empty is a normal image, as DRAEM counts it.
                label=params.label if is_anomalous else parent.label,
                provenance=self.provenance(ctx, parent),
                # Scores and predictions earlier steps stored on the parent do not describe the copy.
                attributes={},
            )


class TextureFolder:
    """The anomaly source images of a folder, read when drawn; unreadable files are reported once and dropped."""

    def __init__(self, folder: Path, ctx: StepContext) -> None:
        # An InputFolder: the recipe loader made it absolute and checked that it exists.
        self.files = texture_files(folder)
        if not self.files:
            raise UsageError(f"step {ctx.step!r}: no images ({', '.join(IMAGE_SUFFIXES)}) in textures folder {folder}")
        self.folder = folder
        self.ctx = ctx

    def pick(self, count: int, rng: np.random.Generator) -> list[torch.Tensor]:
        """``count`` textures drawn with replacement, as (3, h, w) tensors in [0, 1]."""
        import torch

        picked = []
        while len(picked) < count:
            if not self.files:
                raise UsageError(f"step {self.ctx.step!r}: no readable image in textures folder {self.folder}")
            path = self.files[int(rng.integers(len(self.files)))]
            try:
                texture = load_rgb(path)
            except CorruptImage as exc:
                self.files.remove(path)
                self.ctx.skip(path, str(exc))
                continue
            picked.append(torch.tensor(texture).permute(2, 0, 1).float() / 255)  # a copy: decoded arrays are read-only
        return picked


def texture_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` (recursively), in sorted relative-path order.

    Sorted because the order a folder is listed in differs between file systems, and draws index into this list.
    """
    return sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.relative_to(folder).as_posix(),
    )


def to_tensor(image: np.ndarray, size: tuple[int, int] | None) -> torch.Tensor:
    """(3, H, W) float in [0, 1], resized to ``size`` (width, height) with antialiasing when given."""
    import numpy as np
    import torch

    # np.array copies: arrays decoded by Pillow are read-only, which torch warns about.
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
    if size is None or (pixels.shape[2], pixels.shape[1]) == tuple(size):
        return pixels
    width, height = size
    resized = torch.nn.functional.interpolate(
        pixels[None], size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )
    return resized[0].clamp(0, 1)


def same_size_batches(jobs: list[Job], size: tuple[int, int] | None, batch_size: int) -> list[list[Job]]:
    """Jobs in batches of at most ``batch_size`` images of one size, in input order within each size."""
    by_size: dict[tuple[int, int], list[Job]] = {}
    for job in jobs:
        parent = job[1]
        by_size.setdefault(size or (parent.width, parent.height), []).append(job)
    return [group[i : i + batch_size] for group in by_size.values() for i in range(0, len(group), batch_size)]


def region_boxes(mask: np.ndarray, cls: int, min_area: int) -> tuple[Box, ...]:
    """One box per 8-connected region of the mask whose box covers at least ``min_area`` pixels."""
    import numpy as np
    from scipy import ndimage

    regions, _ = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    boxes = []
    for rows, cols in ndimage.find_objects(regions):
        if (rows.stop - rows.start) * (cols.stop - cols.start) >= min_area:
            boxes.append(Box(cls, float(cols.start), float(rows.start), float(cols.stop), float(rows.stop)))
    return tuple(boxes)
