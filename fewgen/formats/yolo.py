"""The ultralytics YOLO layout: ``images/<split>/x.jpg`` with ``labels/<split>/x.txt`` and a data YAML."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, field_validator, model_validator

from fewgen.api import DatasetFormat, Params, ReadResult, SampleIssue
from fewgen.dataset import SPLITS, Dataset, Sample
from fewgen.errors import UsageError
from fewgen.formats._common import (
    SampleProblem,
    checked_mask,
    class_names,
    decoded_sizes,
    export_image,
    export_mask,
    file_names,
    finished,
    image_files,
    is_image,
    parse_box_file,
    read_yaml,
    require_dir,
    sample_id,
    split_folder,
    yolo_line,
)
from fewgen.imageio import CorruptImage

# Folder names that tools use for a split, besides the split's own name.
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


class YoloOptions(Params):
    """Where the images, labels and class names are. Give either ``data`` or the folders.

    Without ``data``, images are found anywhere below ``images``; the label of
    ``images/a/b.jpg`` is ``labels/a/b.txt`` and its mask, if present, ``masks/a/b.png``.
    With ``data``, a label is found as ultralytics finds it: the last ``images`` folder of the
    image path replaced by ``labels`` (``masks`` for masks). A missing label file means no boxes.
    The writer always writes ``images/<split>/``, ``labels/<split>/``, ``masks/<split>/`` (when
    samples have masks) and ``data.yaml``; these options only affect reading.
    """

    data: str | None = Field(
        None,
        description="Data YAML relative to root, with keys path, train, val, test (image folders, .txt lists of "
        "images, or lists of these) and names. Excludes images, labels, masks and split.",
    )
    images: str = Field(
        "images",
        description="Image folder relative to root. Its sub-folders train, val (also valid, validation) and test "
        "give the split; images elsewhere get `split`.",
    )
    labels: str = Field("labels", description="Label folder relative to root, mirroring the image folder.")
    masks: str = Field("masks", description="Folder of PNG masks relative to root, mirroring the image folder.")
    names: list[str] | dict[int, str] | str | None = Field(
        None,
        description="Class names: a list, an {id: name} mapping, or a YAML file (relative to root) with a `names` "
        "key. Overrides the names of the data YAML. Without names, classes are named by their id.",
    )
    split: str | None = Field(
        None, description="Split of every image, for a flat layout (default: from the folder, else train)."
    )

    @field_validator("split")
    @classmethod
    def _known_split(cls, value: str | None) -> str | None:
        if value is not None and value not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}")
        return value

    @model_validator(mode="after")
    def _data_or_folders(self) -> YoloOptions:
        folder_options = self.model_fields_set & {"images", "labels", "masks", "split"}
        if self.data is not None and folder_options:
            raise ValueError(f"{sorted(folder_options)[0]!r} cannot be combined with 'data' (the YAML names folders)")
        return self


@dataclass
class _Entry:
    image: Path
    id: str
    split: str
    labels: Path
    mask: Path | None


class YoloFormat(DatasetFormat):
    name = "yolo"
    description = "Ultralytics YOLO: images/ and labels/ folders (cls cx cy w h, normalised) and a data YAML."
    Options = YoloOptions

    def read(self, root: Path, options: YoloOptions) -> ReadResult:
        require_dir(root, "dataset root")
        issues: list[SampleIssue] = []
        if options.data is not None:
            entries, yaml_names = _entries_from_data_yaml(root / options.data, issues)
        else:
            entries, yaml_names = _entries_from_folders(root, options, issues), None
        if not entries:
            raise UsageError(f"no images found under {root}")
        names = _names(options.names, root) if options.names is not None else yaml_names
        entries = _unique(entries, issues)
        sizes = decoded_sizes([e.image for e in entries])
        masks = [e for e in entries if e.mask is not None and e.mask.is_file()]
        mask_sizes = dict(zip((e.mask for e in masks), decoded_sizes([e.mask for e in masks]), strict=True))
        samples = []
        for entry, size in zip(entries, sizes, strict=True):
            if isinstance(size, CorruptImage):
                issues.append(SampleIssue(str(entry.image), str(size)))
                continue
            width, height = size
            mask = entry.mask if entry.mask in mask_sizes else None
            try:
                boxes = ()
                if entry.labels.is_file():
                    boxes = parse_box_file(entry.labels, "yolo", width, height, None if names is None else len(names))
                if mask is not None:
                    checked_mask(mask, mask_sizes[mask], width, height)
            except SampleProblem as problem:
                issues.append(problem.issue)
                continue
            samples.append(Sample(entry.id, entry.image, width, height, entry.split, boxes, mask))
        if names is None:
            names = [str(i) for i in range(max((b.cls + 1 for s in samples for b in s.boxes), default=0))]
        samples.sort(key=lambda s: s.id)
        return finished(Dataset(samples, names, root.name), issues, f"the YOLO dataset {root}")

    def write(self, dataset: Dataset, dest: Path, options: YoloOptions) -> Dataset:
        written = []
        for sample, name in zip(dataset.samples, file_names(dataset.samples), strict=True):
            split = split_folder(sample)
            image = dest / "images" / split / f"{name}{sample.image.suffix}"
            export_image(sample.image, image)
            labels = dest / "labels" / split / f"{name}.txt"
            labels.parent.mkdir(parents=True, exist_ok=True)
            lines = [yolo_line(box, sample.width, sample.height) for box in sample.boxes]
            labels.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            mask = None
            if sample.mask is not None:
                mask = dest / "masks" / split / f"{name}.png"
                export_mask(sample.mask, mask)
            written.append(sample.derive(image=image, mask=mask))
        present = {s.split for s in dataset.samples}
        # No `path` key: ultralytics then resolves the splits against this file's folder,
        # wherever the dataset is moved; a relative `path` would be resolved against its
        # own datasets folder instead.
        data: dict[str, Any] = {}
        data.update({split: f"images/{split}" for split in SPLITS if split in present})
        data["names"] = dict(enumerate(dataset.classes))
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
        (dest / "data.yaml").write_text(text, encoding="utf-8")
        return dataset.with_samples(written)


def _entries_from_folders(root: Path, options: YoloOptions, issues: list[SampleIssue]) -> list[_Entry]:
    images = require_dir(root / options.images, "image folder")
    labels, masks = root / options.labels, root / options.masks
    # A missing label folder is far more often a wrong option than a dataset without any box.
    if not labels.is_dir():
        raise UsageError(f"label folder not found: {labels} (create it empty if no image has boxes)")
    entries = []
    for image in image_files(images, issues):
        relative = image.relative_to(images)
        split = options.split or SPLIT_FOLDERS.get(relative.parts[0].lower(), "train")
        entries.append(
            _Entry(
                image,
                sample_id(image, root),
                split,
                (labels / relative).with_suffix(".txt"),
                (masks / relative).with_suffix(".png"),
            )
        )
    return entries


def _entries_from_data_yaml(path: Path, issues: list[SampleIssue]) -> tuple[list[_Entry], list[str] | None]:
    config = read_yaml(path, "data YAML")
    if not isinstance(config, dict):
        raise UsageError(f"data YAML {path} must be a mapping with keys path, train, val, test, names")
    base = path.parent / str(config.get("path") or ".")
    require_dir(base, f"dataset path of {path}")
    if not any(config.get(split) for split in SPLITS):
        raise UsageError(f"data YAML {path} names no train, val or test images")
    entries = []
    for split in SPLITS:
        value = config.get(split) or []
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise UsageError(f"{split} of data YAML {path} must be a folder or .txt list, or a list of these")
        for item in items:
            for image in _listed_images(base / item, path, split, issues):
                entries.append(
                    _Entry(image, sample_id(image, base), split, _beside(image, "labels", ".txt"), _mask_of(image))
                )
    names = class_names(config["names"], str(path)) if config.get("names") is not None else None
    return entries, names


def _listed_images(target: Path, data_yaml: Path, split: str, issues: list[SampleIssue]) -> list[Path]:
    if target.is_dir():
        return image_files(target, issues)
    if target.is_file() and target.suffix == ".txt":
        # Lines are relative to the list's folder (ultralytics writes them as ./images/...).
        try:
            lines = target.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the {split} image list {target} of {data_yaml}: {exc}") from None
        return [target.parent / line.strip() for line in lines if line.strip() and is_image(Path(line.strip()))]
    raise UsageError(f"{split} images of {data_yaml} not found: {target}")


def _beside(image: Path, folder: str, suffix: str) -> Path:
    """The ultralytics rule: replace the last ``images`` folder of the path by ``folder``."""
    parts = list(image.parts)
    if "images" in parts[:-1]:
        index = len(parts) - 2 - parts[-2::-1].index("images")
        parts[index] = folder
    return Path(*parts).with_suffix(suffix)


def _mask_of(image: Path) -> Path | None:
    # Without an images/ folder the mask would sit beside the image and might be the image itself.
    return _beside(image, "masks", ".png") if "images" in image.parts[:-1] else None


def _names(value: list[str] | dict[int, str] | str, root: Path) -> list[str]:
    if isinstance(value, str):
        path = root / value
        content = read_yaml(path, "class names file")
        if not isinstance(content, dict) or "names" not in content:
            raise UsageError(f"class names file {path} has no 'names' key")
        return class_names(content["names"], str(path))
    return class_names(value, "options.names")


def _unique(entries: list[_Entry], issues: list[SampleIssue]) -> list[_Entry]:
    """Entries sorted by id; of two with one id (listed twice, or x.jpg beside x.png) the first stays."""
    seen: dict[str, _Entry] = {}
    for entry in entries:
        first = seen.setdefault(entry.id, entry)
        if first is entry:
            continue
        if os.path.realpath(first.image) != os.path.realpath(entry.image):  # resolve() raises on a link loop
            issues.append(SampleIssue(str(entry.image), f"same id as {first.image.name}; kept {first.image.name}"))
        elif first.split != entry.split:
            issues.append(
                SampleIssue(str(entry.image), f"listed in {first.split} and {entry.split}; kept {first.split}")
            )
    return sorted(seen.values(), key=lambda e: e.id)
