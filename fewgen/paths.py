"""Plugin parameters that name files or folders: resolved like ``dataset.root``, their contents in the cache key.

A plugin declares such a parameter with one of the annotated types here::

    from fewgen.api import InputFolder

    class MyParams(Params):
        textures: InputFolder | None = Field(None, description="Folder of texture images.")

Written in a recipe, a relative path is relative to the recipe's folder (as ``dataset.root``
is); given with ``--set``, relative to the current folder (as on any command line). The recipe
loader resolves it to an absolute path and checks that it exists (a one-line error when it does
not), so ``fewgen validate`` catches it before a run starts; in code that builds the parameters
directly, a relative path is relative to the current folder.

The engine adds :func:`params_inputs_fingerprint` to the step's cache key: the SHA-256 of every
file under each such path (a folder's files with their relative names), so editing, adding or
removing a texture recomputes the step instead of restoring a result made from the old files.
"""

from __future__ import annotations

import hashlib
import os
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ValidationInfo

from fewgen.errors import UsageError

# The validation context key under which the recipe loader passes the recipe's folder.
BASE_DIR = "fewgen_base_dir"


class InputPathKind:
    """The marker in an input path's annotation: what it must name."""

    def __init__(self, kind: Literal["file", "folder", "any"]):
        self.kind = kind

    def __repr__(self) -> str:
        return f"InputPathKind({self.kind!r})"


def _resolver(kind: Literal["file", "folder", "any"]):
    def resolve(value: Path, info: ValidationInfo) -> Path:
        base = (info.context or {}).get(BASE_DIR)
        path = value.expanduser()
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        try:
            path = path.resolve()
            exists = {"file": path.is_file, "folder": path.is_dir, "any": path.exists}[kind]()
        except (OSError, RuntimeError) as exc:
            raise ValueError(f"cannot use the path {value}: {exc}") from None
        if not exists:
            what = {"file": "file", "folder": "folder", "any": "file or folder"}[kind]
            raise ValueError(f"no such {what}: {path}")
        return path

    return resolve


InputFile = Annotated[Path, AfterValidator(_resolver("file")), InputPathKind("file")]
InputFolder = Annotated[Path, AfterValidator(_resolver("folder")), InputPathKind("folder")]
InputPath = Annotated[Path, AfterValidator(_resolver("any")), InputPathKind("any")]


def _names_input_path(annotation: Any) -> bool:
    """Whether a field's annotation is (or contains, in a union or a list) one of the input path types."""
    if typing.get_origin(annotation) is Annotated:
        if any(isinstance(extra, InputPathKind) for extra in annotation.__metadata__):
            return True
        return _names_input_path(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, tuple):
        return any(_names_input_path(arg) for arg in typing.get_args(annotation))
    return False


def input_paths(params: BaseModel) -> dict[str, list[Path]]:
    """The paths each input-path parameter of ``params`` names (empty lists left out)."""
    found: dict[str, list[Path]] = {}
    for name, field in type(params).model_fields.items():
        # pydantic keeps a top-level Annotated's extras in ``metadata``, nested ones in the annotation.
        marked = any(isinstance(extra, InputPathKind) for extra in field.metadata)
        if not marked and not _names_input_path(field.annotation):
            continue
        value = getattr(params, name)
        values = value if isinstance(value, list | tuple) else [value]
        paths = [v for v in values if isinstance(v, Path)]
        if paths:
            found[name] = paths
    return found


def content_fingerprint(path: Path) -> list[tuple[str, int, str]]:
    """(relative name, size, SHA-256) of a file, or of every file under a folder, sorted.

    Folders are descended without following links to folders (as dataset fingerprints do); a
    file that cannot be read is recorded with size -1, so the key changes once it can be.
    """
    if path.is_file():
        return [(path.name, *_file_digest(path))]
    entries: list[tuple[str, int, str]] = []
    for folder, subfolders, files in os.walk(path, followlinks=False):
        subfolders.sort()
        for name in sorted(files):
            file = Path(folder) / name
            entries.append((file.relative_to(path).as_posix(), *_file_digest(file)))
    return sorted(entries)


def _file_digest(file: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    try:
        with file.open("rb") as handle:
            size = 0
            while chunk := handle.read(1 << 20):
                size += len(chunk)
                digest.update(chunk)
    except OSError:
        return -1, ""
    return size, digest.hexdigest()


def params_inputs_fingerprint(params: BaseModel) -> dict[str, list[list[tuple[str, int, str]]]]:
    """What the files named by ``params``' input-path parameters hold, by parameter: for the cache key."""
    try:
        return {name: [content_fingerprint(p) for p in paths] for name, paths in input_paths(params).items()}
    except OSError as exc:
        raise UsageError(f"cannot read the files a step parameter names: {exc}") from None
