"""Layouts described by path templates: class folders, domain folders, image + mask pairs, box files.

A template such as ``{alphabet}/{character}/{name}.png`` is a path relative to the dataset
root in which each ``{field}`` matches part of one path segment (never a ``/``). A field used
twice must match the same text both times. When the last segment has no ``.`` outside its
fields (``{domain}/{name}``), any image suffix matches.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from fewgen.api import DatasetFormat, Params, ReadResult, SampleIssue
from fewgen.dataset import SPLITS, UNSAFE_CHARACTERS, Box, Dataset, Sample, name_problem
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
    number,
    parse_box_file,
    require_dir,
    sample_id,
    walk,
    yolo_line,
)
from fewgen.imageio import CorruptImage

SPLIT_ALIASES = {"valid": "val", "validation": "val"}


@dataclass(frozen=True)
class Template:
    """A path or value pattern with ``{field}`` placeholders; matches text and fills it back."""

    text: str
    pattern: re.Pattern[str]
    fields: tuple[str, ...]
    any_suffix: bool

    @property
    def constant_folder(self) -> str:
        """The leading folders that hold no field: where matching files can be found."""
        head = self.text.split("{", 1)[0]
        return head.rsplit("/", 1)[0] if "/" in head else ""

    @property
    def depth(self) -> int:
        return self.text.count("/") + 1

    def match(self, text: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(text)
        return found.groupdict() if found else None

    def fill(self, values: dict[str, str]) -> str:
        return self.text.format(**values)


@lru_cache(maxsize=256)
def parse_template(text: str) -> Template:
    """Raises ValueError with the reason when ``text`` is not a usable template."""
    regex: list[str] = []
    fields: list[str] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"template {text!r}: {exc}") from None
    for literal, field, spec, conversion in parsed:
        regex.append(re.escape(literal))
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise ValueError(f"template {text!r}: {{{field}}} must be a plain name like {{name}}")
        if field in fields:
            regex.append(f"(?P={field})")
        else:
            regex.append(f"(?P<{field}>[^/]+)")
            fields.append(field)
    last_segment = text.rsplit("/", 1)[-1]
    literal_of_last_segment = "".join(literal for literal, *_ in string.Formatter().parse(last_segment))
    return Template(text, re.compile("".join(regex)), tuple(fields), "." not in literal_of_last_segment)


class Source(Params):
    """One kind of image in the layout: where it is and how its labels are found.

    ``label``, ``domain`` and ``split`` are format strings over the fields the ``images``
    template captures, or constants. Left out, each takes the field of the same name when the
    template has one (``{label}``, ``{domain}``, ``{split}``); otherwise the label and domain
    stay empty and the split is train. ``mask`` and ``boxes`` are templates over the same fields;
    a file they name must exist (an empty box file means no boxes), else the image is skipped and
    reported.
    """

    images: str = Field(
        description="Path template of the images relative to root, e.g. '{domain}/{name}.jpg', "
        "'{alphabet}/{character}/{name}.png' or 'MT_{label}/Imgs/{name}.jpg'."
    )
    mask: str | None = Field(None, description="Path template of each image's mask, e.g. 'MT_{label}/Imgs/{name}.png'.")
    boxes: str | None = Field(
        None, description="Path template of each image's box file, e.g. '{board}_not/{name}.txt'."
    )
    box_format: Literal["xyxy_class", "yolo"] = Field(
        "xyxy_class",
        description="Lines of a box file: 'xyxy_class' is 'x1 y1 x2 y2 class' in pixels, 'yolo' is "
        "'class cx cy w h' normalised to the image size; values are separated by spaces or commas.",
    )
    label: str | None = Field(None, description="Image label, e.g. '{alphabet}/{character}' or 'good'.")
    domain: str | None = Field(None, description="Domain, e.g. '{camera}' or 'night'.")
    split: str | None = Field(None, description="Split (train, val or test), e.g. '{split}' or 'test'.")

    @model_validator(mode="after")
    def _templates_fit(self) -> Source:
        images = parse_template(self.images)
        for key in ("images", "mask", "boxes", "label", "domain", "split"):
            text = getattr(self, key)
            if text is None:
                continue
            if key in ("images", "mask", "boxes"):
                # Path templates name the files read and, in the output format, the files written: never outside.
                problem = name_problem(text)
                if problem:
                    raise ValueError(f"{key} template {text!r} {problem}; it must be a path inside the root")
            elif UNSAFE_CHARACTERS.search(text):
                raise ValueError(f"{key} {text!r} contains a control character (NUL, newline, ...)")
            unknown = [f for f in parse_template(text).fields if f not in images.fields]
            if unknown:
                raise ValueError(f"{key} {text!r} uses {{{unknown[0]}}}, which the images template does not capture")
        return self

    def value(self, key: str, fields: dict[str, str]) -> str | None:
        """The label, domain or split of an image whose path gave ``fields``."""
        text = getattr(self, key)
        return parse_template(text).fill(fields) if text is not None else fields.get(key)


class FoldersOptions(Params):
    """A layout described by path templates, one source per kind of image.

    Sources are tried in order; an image matched by several belongs to the first. Sample ids are
    image paths relative to root without suffix. The writer uses the first source: it fills the
    ``images`` template (which must contain ``{name}``) from each sample's name, label, domain and
    split, and fields of a label, domain or split format string from the sample's value (label
    '{alphabet}/{character}' gives alphabet and character); a field named ``ext`` gets the image's
    suffix. It writes masks and box files only where the source has those templates; an image whose
    template extension differs from its own codec is re-encoded.
    """

    sources: list[Source] = Field(min_length=1, description="Kinds of images, tried in order.")
    classes: list[str] = Field(
        default_factory=list, description="Box class names in id order; empty: classes are named by their id."
    )
    class_base: int = Field(0, description="Id of the first class in box files (DeepPCB counts from 1).")
    label_map: dict[str, str] = Field(
        default_factory=dict, description="Renames labels after reading, e.g. {Free: good}; reversed when writing."
    )


@dataclass
class _Found:
    image: Path
    source: Source
    fields: dict[str, str]


class FoldersFormat(DatasetFormat):
    name = "folders"
    description = "Any folder layout given by path templates: class or domain folders, masks, box files."
    Options = FoldersOptions

    def read(self, root: Path, options: FoldersOptions) -> ReadResult:
        require_dir(root, "dataset root")
        issues: list[SampleIssue] = []
        found = _find(root, options.sources, issues)
        if not found:
            raise UsageError(f"no images found under {root}")
        ids = sorted(found)
        entries = [found[i] for i in ids]
        sizes = decoded_sizes([e.image for e in entries])
        masks = [_companion(root, e, "mask") for e in entries]
        existing = [m for m in masks if m is not None and m.is_file()]
        mask_sizes = dict(zip(existing, decoded_sizes(existing), strict=True))
        n_classes = len(options.classes) or None
        samples = []
        for id_, entry, size, mask in zip(ids, entries, sizes, masks, strict=True):
            if isinstance(size, CorruptImage):
                issues.append(SampleIssue(str(entry.image), str(size)))
                continue
            try:
                samples.append(_sample(id_, entry, size, mask, mask_sizes, root, options, n_classes))
            except SampleProblem as problem:
                issues.append(problem.issue)
        classes = list(options.classes) or [
            str(i) for i in range(max((b.cls + 1 for s in samples for b in s.boxes), default=0))
        ]
        return finished(Dataset(samples, classes, root.name), issues, "options.classes")

    def write(self, dataset: Dataset, dest: Path, options: FoldersOptions) -> Dataset:
        source = options.sources[0]
        template = parse_template(source.images)
        if "name" not in template.fields:
            raise UsageError(f"to write, the first images template needs {{name}}: {source.images!r}")
        unmap = {}
        for original, renamed in options.label_map.items():
            unmap.setdefault(renamed, original)
        written = []
        for sample, name in zip(dataset.samples, file_names(dataset.samples), strict=True):
            fields = _fields_of(sample, name, source, template, unmap)
            relative = template.fill(fields) + (sample.image.suffix if template.any_suffix else "")
            image = dest / relative
            export_image(sample.image, image)
            mask = None
            if source.mask is not None:
                if sample.mask is None:
                    raise UsageError(f"sample {sample.id!r} has no mask, but the template {source.mask!r} needs one")
                mask = dest / parse_template(source.mask).fill(fields)
                export_mask(sample.mask, mask)
            if source.boxes is not None:
                boxes = dest / parse_template(source.boxes).fill(fields)
                boxes.parent.mkdir(parents=True, exist_ok=True)
                lines = [_box_line(box, sample, source.box_format, options.class_base) for box in sample.boxes]
                boxes.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            written.append(sample.derive(image=image, mask=mask))
        return dataset.with_samples(written)


def _find(root: Path, sources: list[Source], issues: list[SampleIssue]) -> dict[str, _Found]:
    found: dict[str, _Found] = {}
    for index, source in enumerate(sources):
        template = parse_template(source.images)
        matched = 0
        for image in _candidates(root, template, issues):
            relative = image.relative_to(root).as_posix()
            fields = template.match(relative[: -len(image.suffix)] if template.any_suffix else relative)
            if fields is None:
                continue
            matched += 1
            image_id = sample_id(image, root)
            first = found.setdefault(image_id, _Found(image, source, fields))
            if first.source is source and first.image != image:
                issues.append(SampleIssue(str(image), f"same id as {first.image.name}; kept {first.image.name}"))
        if not matched:
            raise UsageError(f"sources[{index}].images {source.images!r} matches no image under {root}")
    return found


def _candidates(root: Path, template: Template, issues: list[SampleIssue]) -> list[Path]:
    """Image files at the template's depth below its constant leading folders, sorted."""
    start = root / template.constant_folder
    levels = template.depth - (template.constant_folder.count("/") + 1 if template.constant_folder else 0)
    if not start.is_dir():
        return []
    files = []
    for directory, subdirs, names in walk(start, issues):
        level = len(Path(directory).relative_to(start).parts) + 1
        if level < levels:
            subdirs.sort()
            continue
        subdirs.clear()
        files.extend(Path(directory, n) for n in names if is_image(Path(n)))
    return sorted(files)


def _companion(root: Path, entry: _Found, key: str) -> Path | None:
    text = getattr(entry.source, key)
    return root / parse_template(text).fill(entry.fields) if text is not None else None


def _sample(
    id_: str,
    entry: _Found,
    size: tuple[int, int],
    mask: Path | None,
    mask_sizes: dict[Path, tuple[int, int] | CorruptImage],
    root: Path,
    options: FoldersOptions,
    n_classes: int | None,
) -> Sample:
    source, width, height = entry.source, *size
    split = source.value("split", entry.fields) or "train"
    split = SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        raise SampleProblem(entry.image, f"split {split!r} is not one of {', '.join(SPLITS)}")
    if mask is not None:
        if mask not in mask_sizes:
            raise SampleProblem(entry.image, f"mask {mask.relative_to(root).as_posix()} missing")
        checked_mask(mask, mask_sizes[mask], width, height)
    boxes: tuple[Box, ...] = ()
    box_file = _companion(root, entry, "boxes")
    if box_file is not None:
        if not box_file.is_file():
            raise SampleProblem(entry.image, f"box file {box_file.relative_to(root).as_posix()} missing")
        boxes = parse_box_file(box_file, source.box_format, width, height, n_classes, options.class_base)
    label = source.value("label", entry.fields)
    return Sample(
        id_,
        entry.image,
        width,
        height,
        split,
        boxes,
        mask,
        label=options.label_map.get(label, label) if label is not None else None,
        domain=source.value("domain", entry.fields),
    )


def _fields_of(sample: Sample, name: str, source: Source, template: Template, unmap: dict[str, str]) -> dict[str, str]:
    """Values for the first source's template fields, taken from the sample."""
    fields = {"name": name}
    for key in ("label", "domain", "split"):
        value = getattr(sample, key)
        if key == "label" and value is not None:
            value = unmap.get(value, value)
        spec = getattr(source, key)
        if spec is None:
            if key in template.fields:
                if value is None:
                    raise UsageError(f"sample {sample.id!r} has no {key}, which the template {template.text!r} needs")
                fields[key] = value
            continue
        captured = parse_template(spec).match(value) if value is not None else None
        if captured is None:
            raise UsageError(f"{key} {value!r} of sample {sample.id!r} does not fit {spec!r}")
        for field, text in captured.items():
            if fields.setdefault(field, text) != text:
                raise UsageError(f"sample {sample.id!r} gives {{{field}}} two values: {fields[field]!r}, {text!r}")
    if "ext" in template.fields:
        fields.setdefault("ext", sample.image.suffix.lstrip("."))
    missing = [f for f in template.fields if f not in fields]
    if missing:
        raise UsageError(f"cannot fill {{{missing[0]}}} of {template.text!r} from a sample's label, domain or split")
    for field, text in fields.items():
        if not text or "/" in text or text in (".", ".."):
            raise UsageError(f"{{{field}}} of sample {sample.id!r} would be {text!r}, which is not a path segment")
    return fields


def _box_line(box: Box, sample: Sample, box_format: str, class_base: int) -> str:
    if box_format == "yolo":
        return yolo_line(box, sample.width, sample.height, class_base)
    return f"{number(box.x1)} {number(box.y1)} {number(box.x2)} {number(box.y2)} {box.cls + class_base}"
