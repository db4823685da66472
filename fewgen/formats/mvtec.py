"""The MVTec AD layout of one object category: ``train/good``, ``test/<type>``, ``ground_truth/<type>``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from fewgen.api import DatasetFormat, Params, ReadResult, SampleIssue
from fewgen.dataset import UNSAFE_CHARACTERS, Dataset, Sample
from fewgen.errors import UsageError
from fewgen.formats._common import (
    SampleProblem,
    checked_mask,
    decoded_sizes,
    export_image,
    export_mask,
    file_names,
    finished,
    is_image,
    require_dir,
    sample_id,
    split_folder,
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
        issues: list[SampleIssue] = []
        found = []
        for folder, split in SPLIT_FOLDERS.items():
            split_dir = root / folder
            for type_dir in _listed(split_dir, issues) if split_dir.is_dir() else []:
                # A linked folder is not read, as no reader follows links to folders (see _common.walk).
                if type_dir.is_dir() and not type_dir.is_symlink():
                    images = [p for p in _listed(type_dir, issues) if is_image(p) and p.is_file()]
                    found.extend((image, split, type_dir.name) for image in images)
        if not found:
            raise UsageError(f"no images in {root}/train/<type>/ or {root}/test/<type>/ (is root one category?)")

        masks = {
            image: root / "ground_truth" / label / f"{image.stem}{options.mask_suffix}.png"
            for image, _, label in found
            if label != options.good
        }
        existing = [mask for mask in masks.values() if mask.is_file()]
        mask_sizes = dict(zip(existing, decoded_sizes(existing), strict=True))
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
        return finished(Dataset(samples, [], root.name), issues, str(root))

    def write(self, dataset: Dataset, dest: Path, options: MvtecOptions) -> Dataset:
        written = []
        for sample, name in zip(dataset.samples, file_names(dataset.samples), strict=True):
            label = sample.label or (options.good if sample.mask is None else "defect")
            if "/" in label or label in ("", ".", "..") or UNSAFE_CHARACTERS.search(label):
                raise UsageError(f"label {label!r} of sample {sample.id!r} cannot be an MVTec type folder name")
            image = dest / FOLDER_OF_SPLIT[split_folder(sample)] / label / f"{name}{sample.image.suffix}"
            export_image(sample.image, image)
            mask = None
            if sample.mask is not None and label != options.good:
                mask = dest / "ground_truth" / label / f"{name}{options.mask_suffix}.png"
                export_mask(sample.mask, mask)
            written.append(sample.derive(image=image, mask=mask))
        return dataset.with_samples(written)


def _listed(folder: Path, issues: list[SampleIssue]) -> list[Path]:
    """The entries of one folder, sorted; a folder that cannot be listed goes to ``issues``."""
    try:
        return sorted(folder.iterdir())
    except OSError as exc:
        issues.append(SampleIssue(str(folder), f"cannot list folder: {exc.strerror or exc}"))
        return []
