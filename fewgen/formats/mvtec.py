"""The MVTec AD layout of one object category: ``train/good``, ``test/<type>``, ``ground_truth/<type>``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from fewgen.api import DatasetFormat, Params, ReadResult, SampleIssue
from fewgen.dataset import Dataset, Sample
from fewgen.errors import UsageError
from fewgen.formats._common import (
    SampleProblem,
    checked_mask,
    decoded_sizes,
    export_image,
    export_mask,
    file_names,
    is_image,
    require_dir,
    sample_id,
)
from fewgen.imageio import CorruptImage

# Split folder on disk -> split. MVTec LOCO adds a validation folder.
SPLIT_FOLDERS = {"train": "train", "validation": "val", "test": "test"}
FOLDER_OF_SPLIT = {split: folder for folder, split in SPLIT_FOLDERS.items()}


class MvtecOptions(Params):
    """Names in the layout. The label of an image is its type folder; its split the folder above.

    An image outside the ``good`` folder gets the mask ``ground_truth/<type>/<stem><mask_suffix>.png``
    when that file exists. The writer writes the same layout (a val split goes to ``validation/``);
    boxes have no place in it and are dropped, and so are masks of good images.
    """

    good: str = Field("good", description="Folder (and label) of defect-free images.")
    mask_suffix: str = Field("_mask", description="Appended to an image's stem to name its mask.")


class MvtecFormat(DatasetFormat):
    name = "mvtec"
    description = "MVTec AD, one category: train/good, test/<defect type>, ground_truth/<type>/<stem>_mask.png."
    Options = MvtecOptions

    def read(self, root: Path, options: MvtecOptions) -> ReadResult:
        require_dir(root, "dataset root")
        found = []
        for folder, split in SPLIT_FOLDERS.items():
            split_dir = root / folder
            for type_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()) if split_dir.is_dir() else []:
                for image in sorted(p for p in type_dir.iterdir() if p.is_file() and is_image(p)):
                    found.append((image, split, type_dir.name))
        if not found:
            raise UsageError(f"no images in {root}/train/<type>/ or {root}/test/<type>/ (is root one category?)")

        masks = {
            image: root / "ground_truth" / label / f"{image.stem}{options.mask_suffix}.png"
            for image, _, label in found
            if label != options.good
        }
        existing = [mask for mask in masks.values() if mask.is_file()]
        mask_sizes = dict(zip(existing, decoded_sizes(existing), strict=True))
        issues: list[SampleIssue] = []
        samples = []
        for (image, split, label), size in zip(found, decoded_sizes([f[0] for f in found]), strict=True):
            if isinstance(size, CorruptImage):
                issues.append(SampleIssue(str(image), str(size)))
                continue
            mask = masks.get(image)
            mask = mask if mask in mask_sizes else None
            try:
                if mask is not None:
                    checked_mask(mask, mask_sizes[mask], *size)
            except SampleProblem as problem:
                issues.append(problem.issue)
                continue
            samples.append(Sample(sample_id(image, root), image, *size, split=split, mask=mask, label=label))
        samples.sort(key=lambda s: s.id)
        return ReadResult(Dataset(samples, [], root.name), issues)

    def write(self, dataset: Dataset, dest: Path, options: MvtecOptions) -> Dataset:
        written = []
        for sample, name in zip(dataset.samples, file_names(dataset.samples), strict=True):
            label = sample.label or (options.good if sample.mask is None else "defect")
            if "/" in label or label in ("", ".", ".."):
                raise UsageError(f"label {label!r} of sample {sample.id!r} cannot be an MVTec type folder name")
            if sample.split not in FOLDER_OF_SPLIT:
                raise UsageError(f"split {sample.split!r} of sample {sample.id!r} has no MVTec folder")
            image = dest / FOLDER_OF_SPLIT[sample.split] / label / f"{name}{sample.image.suffix}"
            export_image(sample.image, image)
            mask = None
            if sample.mask is not None and label != options.good:
                mask = dest / "ground_truth" / label / f"{name}{options.mask_suffix}.png"
                export_mask(sample.mask, mask)
            written.append(sample.derive(image=image, mask=mask))
        return dataset.with_samples(written)
