"""Cheap change detection for a dataset folder: what the source step's cache key covers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fewgen.errors import UsageError

# Size and mtime recorded for a folder that cannot be listed: it still counts, so the key changes
# once it can be read.
UNLISTED = (-1, -1)


def tree_fingerprint(root: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime in ns) of every entry under ``root``, sorted: cheap change detection.

    Folders are descended; a symbolic link to a folder is not. Readers do not follow such links when
    they walk a dataset either, and not following them keeps a link loop (``a/b -> ..``) or a link
    to ``/`` from making the walk endless or leaving the root. A link to a folder inside the root
    loses nothing, since that folder is fingerprinted where it is. Such a link is recorded by its
    own size and mtime, so pointing it elsewhere changes the key; what changes inside a folder it
    points to outside the root does not.

    Files (and links to files) are recorded by their target's size and mtime; an entry whose target
    cannot be read (a dangling link, no permission) by the link's own, and a folder that cannot be
    listed as ``(path + "/", -1, -1)``. Only ``root`` itself must be listable (else UsageError).
    """
    entries: list[tuple[str, int, int]] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                listing = list(it)
        except OSError as exc:
            if folder == root:
                raise UsageError(f"cannot read the dataset folder {root}: {exc.strerror or exc}") from None
            entries.append((folder.relative_to(root).as_posix() + "/", *UNLISTED))
            continue
        for entry in listing:
            if _is_real_folder(entry):
                stack.append(Path(entry.path))
                continue
            status = _status(entry)
            if status is not None:
                entries.append((Path(entry.path).relative_to(root).as_posix(), status.st_size, status.st_mtime_ns))
    return sorted(entries)


def _is_real_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _status(entry: os.DirEntry[str]) -> os.stat_result | None:
    """The target's status for a file; the link's own for a link to a folder or to nothing; None if it vanished."""
    try:
        status = entry.stat(follow_symlinks=True)
        if not stat.S_ISDIR(status.st_mode):
            return status
    except OSError:
        pass
    try:
        return entry.stat(follow_symlinks=False)
    except OSError:
        return None
