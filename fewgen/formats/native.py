"""fewgen's own layout: ``dataset.json`` and ``samples.jsonl`` as :meth:`Dataset.save` writes them."""

from __future__ import annotations

import json
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
            classes = [str(name) for name in meta.get("classes", [])]
            name = str(meta.get("name", root.name))
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError) as exc:
            raise UsageError(f"{meta_path} is not a fewgen dataset description: {exc}") from None

        issues: list[SampleIssue] = []
        records: list[Sample] = []
        seen: set[str] = set()
        with open(samples_path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = Sample.from_record(json.loads(line), root)
                except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                    issues.append(SampleIssue(f"{samples_path}:{number}", f"unreadable record: {exc!r}"))
                    continue
                if record.id in seen:
                    issues.append(SampleIssue(f"{samples_path}:{number}", f"duplicate id {record.id!r}"))
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
        return ReadResult(Dataset(samples, classes, name), issues)

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
