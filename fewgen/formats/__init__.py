"""The dataset formats that ship with fewgen, registered like any third-party plugin's."""

from __future__ import annotations

from collections.abc import Callable

from fewgen.api import DatasetFormat
from fewgen.formats.coco import CocoFormat
from fewgen.formats.folders import FoldersFormat
from fewgen.formats.mvtec import MvtecFormat
from fewgen.formats.native import FewgenFormat
from fewgen.formats.yolo import YoloFormat
from fewgen.hookspecs import hookimpl

FORMATS: tuple[type[DatasetFormat], ...] = (FewgenFormat, YoloFormat, CocoFormat, MvtecFormat, FoldersFormat)


@hookimpl
def register_dataset_formats(register: Callable[[type[DatasetFormat]], None]) -> None:
    for format_class in FORMATS:
        register(format_class)
