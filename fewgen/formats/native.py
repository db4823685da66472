"""fewgen's own layout: ``dataset.json`` and ``samples.jsonl`` as :meth:`Dataset.save` writes them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fewgen.api import DatasetFormat, NoParams, ReadResult, SampleIssue
from fewgen.dataset import Dataset, Sample
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
)
from fewgen.imageio import CorruptImage


class FewgenFormat(DatasetFormat):
    """Keeps everything a sample holds (label, domain, provenance, attributes), in file order.

    The writer copies images to ``images/`` and masks to ``masks/`` so the folder stands alone.
    """

    name = "fewgen"
    description = "fewgen's native layout: dataset.json and samples.jsonl, with images/ and masks/."
    Options = NoParams

    def read(self, root: Path, options: NoParams) -> ReadResult:
        require_dir(root, "dataset root")
        meta_path, samples_path = root / "dataset.json", root / "samples.jsonl"
        for path in (meta_path, samples_path):
            if not path.is_file():
                raise UsageError(f"not a fewgen dataset, {path.name} missing: {path}")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            classes = meta.get("classes", [])
            if not isinstance(classes, list):
                raise TypeError(f"'classes' must be a list, not {type(classes).__name__}")
            classes = [str(name) for name in classes]
            name = str(meta.get("name", root.name))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, AttributeError, TypeError) as exc:
            raise UsageError(f"{meta_path} is not a fewgen dataset description: {exc}") from None

        issues: list[SampleIssue] = []
        records: list[Sample] = []
        seen: set[str] = set()
        with open(samples_path, "rb") as lines:
            for number, line in enumerate(lines, start=1):
                where = f"{samples_path}:{number}"
                if not line.strip():
                    continue
                try:
                    record = _record(line, root)
                except ValueError as exc:
                    issues.append(SampleIssue(where, f"unreadable record: {exc}"))
                    continue
                if record.id in seen:
                    issues.append(SampleIssue(where, f"duplicate id {record.id!r}"))
                    continue
                seen.add(record.id)
                records.append(record)
        if not records:
            raise UsageError(f"no samples in {samples_path}")

        masks = [r.mask for r in records if r.mask is not None and r.mask.is_file()]
        mask_sizes = dict(zip(masks, decoded_sizes(masks), strict=True))
        samples = []
        for record, size in zip(records, decoded_sizes([r.image for r in records]), strict=True):
            if isinstance(size, CorruptImage):
                issues.append(SampleIssue(str(record.image), str(size)))
                continue
            try:
                samples.append(_checked(record, size, len(classes), mask_sizes))
            except SampleProblem as problem:
                issues.append(problem.issue)
        return finished(Dataset(samples, classes, name), issues, str(meta_path))

    def write(self, dataset: Dataset, dest: Path, options: NoParams) -> Dataset:
        written = []
        for sample, name in zip(dataset.samples, file_names(dataset.samples), strict=True):
            image = dest / "images" / f"{name}{sample.image.suffix}"
            export_image(sample.image, image)
            mask = None
            if sample.mask is not None:
                mask = dest / "masks" / f"{name}{sample.mask.suffix}"
                export_mask(sample.mask, mask)
            written.append(sample.derive(image=image, mask=mask))
        result = dataset.with_samples(written)
        result.save(dest)
        return result


def _record(line: bytes, root: Path) -> Sample:
    """One line of ``samples.jsonl`` as a sample; ValueError says what is wrong with it."""
    try:
        record = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    sample = Sample.from_record(record, root)
    for key in ("image", "mask"):
        # Dataset.save writes files outside the folder as absolute paths; a relative one that climbs
        # out with ".." is no path it writes, and the usual shape of a path-traversal attempt.
        text = record.get(key)
        if isinstance(text, str) and not Path(text).is_absolute():
            relative = os.path.normpath(text)
            if relative == ".." or relative.startswith("../"):
                raise ValueError(f"{key} path {text!r} leads outside the dataset folder")
    return sample


def _checked(sample: Sample, size: tuple[int, int], n_classes: int, mask_sizes: dict) -> Sample:
    """The sample with its decoded size, if that matches the record and its boxes and mask fit."""
    if size != (sample.width, sample.height):
        raise SampleProblem(
            sample.image, f"image is {size[0]}x{size[1]} but its record says {sample.width}x{sample.height}"
        )
    for box in sample.boxes:
        try:
            checked_box(box.cls, (box.x1, box.y1, box.x2, box.y2), *size, n_classes)
        except ValueError as exc:
            raise SampleProblem(sample.image, str(exc)) from None
    if sample.mask is not None:
        if sample.mask not in mask_sizes:
            raise SampleProblem(sample.mask, "mask file missing")
        checked_mask(sample.mask, mask_sizes[sample.mask], *size)
    return sample
