"""A content-addressed store of finished step outputs.

A step's key hashes everything its output depends on (input key, plugin and version,
parameters, seed). Its output is built in a temporary folder and renamed into place
only when complete, so a folder under ``steps/`` is always a finished result and an
interrupted run resumes at the first step without one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import platformdirs


def default_cache_dir() -> Path:
    configured = os.environ.get("FEWGEN_CACHE")
    return Path(configured).expanduser() if configured else Path(platformdirs.user_cache_dir("fewgen"))


def content_key(payload: Any) -> str:
    """SHA-256 of a canonical JSON encoding (sorted keys, no whitespace)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def tree_fingerprint(root: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime) of every file under ``root``: cheap change detection for inputs."""
    entries: list[tuple[str, int, int]] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=True):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=True):
                    stat = entry.stat()
                    entries.append((Path(entry.path).relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns))
    return sorted(entries)


class StepCache:
    def __init__(self, root: Path | None = None):
        self.root = root or default_cache_dir()

    def entry(self, key: str) -> Path:
        return self.root / "steps" / key[:2] / key

    def has(self, key: str) -> bool:
        return self.entry(key).is_dir()

    def scratch(self, key: str) -> Path:
        """A folder that survives interruption (checkpoints), removed once the step is stored."""
        return self.root / "scratch" / key

    @contextmanager
    def build(self, key: str) -> Iterator[Path]:
        """Yield a temporary folder; on success it becomes the entry for ``key`` atomically."""
        tmp = self.root / "tmp" / f"{key}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        final = self.entry(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # not another run storing the same result first
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(self.scratch(key), ignore_errors=True)
