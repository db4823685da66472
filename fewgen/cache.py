"""A content-addressed store of finished step outputs.

A step's key hashes everything its output depends on (input key, plugin and version,
parameters, seed). Its output is built in a temporary folder and renamed into place
only when complete, so a folder under ``steps/`` is always a finished result and an
interrupted run resumes at the first step without one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import platformdirs

log = logging.getLogger("fewgen.cache")


def default_cache_dir() -> Path:
    configured = os.environ.get("FEWGEN_CACHE")
    return Path(configured).expanduser() if configured else Path(platformdirs.user_cache_dir("fewgen"))


def content_key(payload: Any) -> str:
    """SHA-256 of a canonical JSON encoding (sorted keys, no whitespace)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


ENTRY_FILE = "entry.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (a killed run's leftovers say no)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


class DamagedEntry(Exception):
    """A cache entry whose files do not match what was recorded when it was stored."""


@dataclass
class EntryInfo:
    key: str
    path: Path
    meta: dict[str, Any]
    created: str | None
    bytes: int
    files: int
    last_used: float


class StepCache:
    """Finished step outputs under ``steps/``, each with a record of its files that a restore checks.

    Layout: ``steps/KEY[:2]/KEY/`` entries (each with ``entry.json``: every file's size and
    SHA-256), ``tmp/`` entries being built (named with the builder's process id), ``scratch/``
    checkpoints of unfinished steps, ``damaged/`` entries that failed verification (kept for
    inspection, never reused), ``logs/`` tracebacks of failed steps.
    """

    def __init__(self, root: Path | None = None, warn: Callable[[str], None] | None = None):
        self.root = root or default_cache_dir()
        self.warn = warn or (lambda message: log.warning("%s", message))
        self._verified: set[str] = set()

    def entry(self, key: str) -> Path:
        return self.root / "steps" / key[:2] / key

    def has(self, key: str) -> bool:
        """Whether a verified entry exists; a damaged one is set aside (with a warning) and reported absent."""
        if key in self._verified:
            return True
        entry = self.entry(key)
        if not entry.is_dir():
            return False
        try:
            verify_entry(entry)
        except DamagedEntry as exc:
            moved = self._set_aside(entry)
            self.warn(f"cache entry {key[:12]} is damaged ({exc}); moved to {moved} and recomputed")
            return False
        self._verified.add(key)
        with contextlib.suppress(OSError):  # its time stamp is the entry's last use, for `fewgen cache prune`
            os.utime(entry / ENTRY_FILE)
        return True

    def _set_aside(self, entry: Path) -> Path:
        target = self.root / "damaged" / f"{entry.name}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.getpid()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):  # another run set it aside first
            os.rename(entry, target)
        return target

    def scratch(self, key: str) -> Path:
        """A folder that survives interruption (checkpoints), removed once the step is stored."""
        return self.root / "scratch" / key

    @contextmanager
    def build(self, key: str, meta: dict[str, Any] | None = None) -> Iterator[Path]:
        """Yield a temporary folder; on success it is recorded and becomes the entry for ``key`` atomically."""
        tmp = self.root / "tmp" / f"{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            yield tmp
            record_entry(tmp, key, meta or {})
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
        self._verified.add(key)
        shutil.rmtree(self.scratch(key), ignore_errors=True)

    # --- housekeeping ------------------------------------------------------------------

    def clean_stale_builds(self) -> list[Path]:
        """Remove ``tmp/`` folders whose builder process is gone (runs killed while storing a step)."""
        removed: list[Path] = []
        tmp_root = self.root / "tmp"
        if not tmp_root.is_dir():
            return removed
        for folder in tmp_root.iterdir():
            parts = folder.name.split("-")
            owner = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
            if owner is not None and pid_alive(owner):
                continue
            if owner is None and time.time() - _mtime(folder) < 3600:
                continue  # an unnamed builder (older fewgen): only when clearly abandoned
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        return removed

    def entries(self) -> Iterator[EntryInfo]:
        steps = self.root / "steps"
        if not steps.is_dir():
            return
        for shard in sorted(steps.iterdir()):
            if not shard.is_dir():
                continue
            for entry in sorted(shard.iterdir()):
                record = _read_record(entry)
                files = record.get("files", {}) if record else {}
                yield EntryInfo(
                    key=entry.name,
                    path=entry,
                    meta=record.get("meta", {}) if record else {},
                    created=record.get("created") if record else None,
                    bytes=sum(size for size, _ in files.values()) if files else folder_bytes(entry),
                    files=len(files),
                    last_used=_mtime(entry / ENTRY_FILE) if record else _mtime(entry),
                )

    def verify_all(self) -> tuple[int, list[tuple[str, str, Path]]]:
        """Check every entry; damaged ones are set aside. Returns (entries checked, [(key, problem, moved to)])."""
        checked, damaged = 0, []
        for info in list(self.entries()):
            checked += 1
            try:
                verify_entry(info.path)
            except DamagedEntry as exc:
                damaged.append((info.key, str(exc), self._set_aside(info.path)))
        return checked, damaged

    def prune(self, older_than_s: float | None = None, max_bytes: int | None = None) -> list[EntryInfo]:
        """Remove entries unused for ``older_than_s`` seconds, then the least recently used until under ``max_bytes``.

        Damaged entries and scratch folders older than the cut-off go as well; each entry is
        renamed out of ``steps/`` before it is deleted, so a concurrent run never sees half of one.
        """
        now = time.time()
        infos = sorted(self.entries(), key=lambda info: info.last_used)
        removed: list[EntryInfo] = []
        if older_than_s is not None:
            removed += [info for info in infos if now - info.last_used > older_than_s]
            for extra in ("damaged", "scratch"):
                for folder in (self.root / extra).glob("*") if (self.root / extra).is_dir() else []:
                    if now - _mtime(folder) > older_than_s:
                        shutil.rmtree(folder, ignore_errors=True)
        if max_bytes is not None:
            kept = [info for info in infos if info not in removed]
            total = sum(info.bytes for info in kept)
            for info in kept:
                if total <= max_bytes:
                    break
                removed.append(info)
                total -= info.bytes
        for info in removed:
            doomed = self.root / "tmp" / f"{info.key}-{os.getpid()}-pruned"
            doomed.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(info.path, doomed)
            except FileNotFoundError:
                continue
            shutil.rmtree(doomed, ignore_errors=True)
        return removed


def record_entry(folder: Path, key: str, meta: dict[str, Any]) -> None:
    """Write ``entry.json``: the key, what made the entry, and every file's size and SHA-256."""
    files: dict[str, list[Any]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != ENTRY_FILE:
            files[path.relative_to(folder).as_posix()] = [path.stat().st_size, file_sha256(path)]
    record = {"format": 1, "key": key, "meta": meta, "created": datetime.now(UTC).isoformat(timespec="seconds")}
    record["files"] = files
    tmp = folder / f".{ENTRY_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, folder / ENTRY_FILE)


def verify_entry(entry: Path) -> None:
    """Raise :class:`DamagedEntry` unless every recorded file is there with its size and content."""
    record = _read_record(entry)
    if record is None or not isinstance(record.get("files"), dict):
        raise DamagedEntry(f"{ENTRY_FILE} missing or unreadable")
    for name, (size, sha256) in record["files"].items():
        path = entry / name
        try:
            actual = path.stat().st_size
        except OSError:
            raise DamagedEntry(f"{name} is missing") from None
        if actual != size:
            raise DamagedEntry(f"{name} has {actual} bytes, {size} were stored")
        if file_sha256(path) != sha256:
            raise DamagedEntry(f"{name} changed since it was stored")


def _read_record(entry: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((entry / ENTRY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (0 for a folder that is not there)."""
    total = 0
    for path in folder.rglob("*") if folder.is_dir() else []:
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
    return total
