"""COCO detection JSON: one annotation file per split, boxes as ``[x, y, width, height]`` in pixels."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from fewgen.api import DatasetFormat, NoParams, Params, ReadResult, SampleIssue
from fewgen.dataset import SPLITS, Box, Dataset, Sample, name_problem
from fewgen.errors import UsageError
from fewgen.formats._common import (
    SampleProblem,
    checked_box,
    checked_mask,
    decoded_sizes,
    export_image,
    export_mask,
    file_names,
    finished,
    require_dir,
    sample_id,
    split_folder,
)
from fewgen.imageio import CorruptImage


class CocoOptions(Params):
    """Where the annotation files and images are.

    Categories become class indices in the order of their ids, named by the category name.
    Crowd annotations (``iscrowd: 1``) are regions to ignore, not objects, and are left out;
    segmentations are not read. A PNG mask whose path mirrors the image's ``file_name`` under
    ``masks`` is read when present (fewgen writes masks there). ``label`` and ``domain`` keys of
    an image record become the sample's label and domain. The writer always writes
    ``images/<split>/``, ``annotations/<split>.json`` and ``masks/<split>/``; these options only
    affect reading.
    """

    annotations: str | dict[str, str] = Field(
        description="Annotation JSON relative to root, or a mapping from split to JSON, "
        "e.g. {train: annotations/instances_train2017.json, val: annotations/instances_val2017.json}."
    )
    images: str | dict[str, str] = Field(
        "images",
        description="Folder that image file_names are relative to (relative to root), or a mapping from split to "
        "folder, e.g. {train: train2017, val: val2017}.",
    )
    masks: str = Field("masks", description="Folder of PNG masks mirroring the file_names, relative to root.")
    split: str = Field("train", description="Split of every image when `annotations` is a single file.")

    @field_validator("split")
    @classmethod
    def _known_split(cls, value: str) -> str:
        if value not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}")
        return value

    @model_validator(mode="after")
    def _known_split_keys(self) -> CocoOptions:
        for option in (self.annotations, self.images):
            unknown = set(option) - set(SPLITS) if isinstance(option, dict) else set()
            if unknown:
                raise ValueError(f"unknown split {sorted(unknown)[0]!r}; splits are {', '.join(SPLITS)}")
        return self

    def annotation_files(self) -> dict[str, str]:
        return dict(self.annotations) if isinstance(self.annotations, dict) else {self.split: self.annotations}

    def image_folder(self, split: str) -> str:
        if isinstance(self.images, str):
            return self.images
        if split not in self.images:
            raise UsageError(f"options.images names no folder for the {split} split")
        return self.images[split]


@dataclass
class _Image:
    path: Path
    id: str
    split: str
    record: dict[str, Any]
    mask: Path
    annotations: list[dict[str, Any]] = field(default_factory=list)


class CocoFormat(DatasetFormat):
    name = "coco"
    description = "COCO detection JSON (one file per split) with an image folder."
    Options = CocoOptions
    WriteOptions = NoParams  # the layout written is fixed: images/<split>/, annotations/<split>.json

    def read(self, root: Path, options: CocoOptions) -> ReadResult:
        require_dir(root, "dataset root")
        issues: list[SampleIssue] = []
        documents = {
            split: _load_json(root / relative) for split, relative in sorted(options.annotation_files().items())
        }
        category_names = _categories(documents, root, options)
        class_of = {category_id: index for index, category_id in enumerate(sorted(category_names))}
        classes = [category_names[category_id] for category_id in sorted(category_names)]

        images: dict[str, _Image] = {}
        for split, document in documents.items():
            json_path = root / options.annotation_files()[split]
            folder = root / options.image_folder(split)
            by_image_id: dict[Any, _Image] = {}
            for record in document["images"]:
                problem = _image_record_problem(record)
                if problem:
                    issues.append(SampleIssue(str(json_path), f"{problem}: {_short(record)}"))
                    continue
                path = folder / record["file_name"]
                mask = (root / options.masks / record["file_name"]).with_suffix(".png")
                image = _Image(path, sample_id(path, root), split, record, mask)
                if image.id in images:
                    issues.append(SampleIssue(str(path), f"listed again in {json_path.name}; kept the first"))
                    continue
                images[image.id] = by_image_id[record["id"]] = image
            for annotation in document["annotations"]:
                image_id = annotation.get("image_id") if isinstance(annotation, dict) else None
                owner = by_image_id.get(image_id) if _is_id(image_id) else None
                if owner is None:
                    issues.append(SampleIssue(str(json_path), f"annotation for an unknown image: {_short(annotation)}"))
                    continue
                owner.annotations.append(annotation)
        if not images:
            raise UsageError(f"no images listed in the annotations under {root}")

        ordered = sorted(images.values(), key=lambda image: image.id)
        sizes = decoded_sizes([image.path for image in ordered])
        with_mask = [image.mask for image in ordered if image.mask.is_file()]
        mask_sizes = dict(zip(with_mask, decoded_sizes(with_mask), strict=True))
        samples = []
        for image, size in zip(ordered, sizes, strict=True):
            if isinstance(size, CorruptImage):
                issues.append(SampleIssue(str(image.path), str(size)))
                continue
            try:
                samples.append(_sample(image, size, class_of, mask_sizes))
            except SampleProblem as problem:
                issues.append(problem.issue)
        return finished(Dataset(samples, classes, root.name), issues, f"the COCO categories under {root}")

    def write(self, dataset: Dataset, dest: Path, options: NoParams) -> Dataset:
        categories = [{"id": i + 1, "name": name, "supercategory": ""} for i, name in enumerate(dataset.classes)]
        documents: dict[str, dict[str, Any]] = {}
        written = []
        for sample, name in zip(dataset.samples, file_names(dataset.samples), strict=True):
            file_name = f"{split_folder(sample)}/{name}{sample.image.suffix}"
            image = dest / "images" / file_name
            export_image(sample.image, image)
            mask = None
            if sample.mask is not None:
                mask = (dest / "masks" / file_name).with_suffix(".png")
                export_mask(sample.mask, mask)
            written.append(sample.derive(image=image, mask=mask))

            document = documents.setdefault(
                sample.split, {"info": {}, "licenses": [], "categories": categories, "images": [], "annotations": []}
            )
            image_id = len(document["images"]) + 1
            record: dict[str, Any] = {
                "id": image_id,
                "file_name": file_name,
                "width": sample.width,
                "height": sample.height,
            }
            for key in ("label", "domain"):
                if getattr(sample, key) is not None:
                    record[key] = getattr(sample, key)
            document["images"].append(record)
            for box in sample.boxes:
                width, height = round(box.width, 6), round(box.height, 6)
                document["annotations"].append(
                    {
                        "id": len(document["annotations"]) + 1,
                        "image_id": image_id,
                        "category_id": box.cls + 1,
                        "bbox": [round(box.x1, 6), round(box.y1, 6), width, height],
                        "area": round(width * height, 6),
                        "iscrowd": 0,
                    }
                )
        folder = dest / "annotations"
        folder.mkdir(parents=True, exist_ok=True)
        for split, document in sorted(documents.items()):
            (folder / f"{split}.json").write_text(json.dumps(document, sort_keys=True) + "\n", encoding="utf-8")
        return dataset.with_samples(written)


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"COCO annotation file not found: {path}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise UsageError(f"COCO annotation file {path} is not valid JSON: {reason}") from None
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise UsageError(f"COCO annotation file {path} has no 'images' list")
    if not isinstance(document.setdefault("annotations", []), list):
        raise UsageError(f"COCO annotation file {path}: 'annotations' must be a list")
    if not isinstance(document.setdefault("categories", []), list):
        raise UsageError(f"COCO annotation file {path}: 'categories' must be a list")
    return document


def _is_id(value: Any) -> bool:
    """COCO ids are numbers; strings are accepted too. Anything else (a list, an object) is no id."""
    return isinstance(value, int | float | str) and not isinstance(value, bool)


def _image_record_problem(record: Any) -> str | None:
    if not isinstance(record, dict) or "file_name" not in record or "id" not in record:
        return "image record without id or file_name"
    if not _is_id(record["id"]):
        return f"image id must be a number or a string, not {type(record['id']).__name__}"
    file_name = record["file_name"]
    if not isinstance(file_name, str) or not file_name.strip():
        return "file_name must be a non-empty string"
    problem = name_problem(file_name)
    return f"file_name {file_name!r} {problem}" if problem else None


def _short(value: Any, limit: int = 200) -> str:
    """``repr(value)``, cut to ``limit`` characters: a damaged record can be megabytes long."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def _categories(documents: dict[str, dict[str, Any]], root: Path, options: CocoOptions) -> dict[int, str]:
    """Category id -> name over all files; one id must mean the same name in every file."""
    names: dict[int, str] = {}
    for split, document in documents.items():
        path = root / options.annotation_files()[split]
        for category in document["categories"]:
            try:
                category_id, name = int(category["id"]), str(category["name"])
            except (KeyError, TypeError, ValueError):
                raise UsageError(f"COCO annotation file {path} has a category without id or name") from None
            if names.setdefault(category_id, name) != name:
                raise UsageError(f"category {category_id} of {path} is {name!r}, elsewhere {names[category_id]!r}")
    return names


def _sample(image: _Image, size: tuple[int, int], class_of: dict[int, int], mask_sizes: dict[Path, Any]) -> Sample:
    width, height = size
    listed = (image.record.get("width"), image.record.get("height"))
    if listed != (None, None) and listed != size:
        raise SampleProblem(image.path, f"image is {width}x{height} but the annotations say {listed[0]}x{listed[1]}")
    boxes: list[Box] = []
    for annotation in image.annotations:
        if annotation.get("iscrowd"):
            continue
        try:
            category = annotation["category_id"]
            if not _is_id(category) or category not in class_of:
                raise ValueError(f"unknown category {_short(category, 40)}")
            bbox = annotation["bbox"]
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise ValueError(f"bbox must be [x, y, width, height], not {bbox!r}")
            x, y, w, h = (float(v) for v in bbox)
            boxes.append(checked_box(class_of[category], (x, y, x + w, y + h), width, height, len(class_of)))
        except (KeyError, TypeError, ValueError) as exc:
            reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            raise SampleProblem(image.path, f"annotation {_short(annotation.get('id'), 40)}: {reason}") from None
    mask = image.mask if image.mask in mask_sizes else None
    if mask is not None:
        checked_mask(mask, mask_sizes[mask], width, height)
    label, domain = image.record.get("label"), image.record.get("domain")
    return Sample(
        image.id,
        image.path,
        width,
        height,
        image.split,
        tuple(boxes),
        mask,
        label=str(label) if label is not None else None,
        domain=str(domain) if domain is not None else None,
    )
