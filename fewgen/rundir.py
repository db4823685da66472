"""The run folder: which folders a run may replace, one run per folder at a time, an atomic swap.

fewgen is pointed at people's only copy of a dataset, so ``--overwrite`` replaces only what
fewgen itself wrote: an empty folder, or a run folder whose manifest carries :data:`RUN_KIND`.
A run is built beside its final name (``.NAME.partial-PID``) and swapped into place at the
end; a run killed mid-swap leaves the previous run recoverable, and the next run into the
same folder puts it back before anything else.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fewgen.errors import UsageError

# Written into every manifest.json: a folder with it is a run folder fewgen may replace.
RUN_KIND = "fewgen-run"


def is_run_folder(folder: Path) -> bool:
    """A folder fewgen wrote: its manifest says so (or, for runs before the mark, has a run's keys)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict):
        return False
    return manifest.get("kind") == RUN_KIND or {"fewgen", "recipe", "steps", "source"} <= set(manifest)


def check_target(out_dir: Path, overwrite: bool, protected: Iterable[tuple[str, Path]]) -> None:
    """Refuse, before anything is touched, an ``--out`` that a run must not write or replace.

    ``protected`` names folders no run may replace or contain (the dataset, the recipe's
    folder, the cache, the home folder, ``/``); checked with or without ``--overwrite``.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"output path exists and is not a folder: {out_dir}")
    folders = [(what, folder.resolve()) for what, folder in protected]
    # An exact match first: "it is the home folder" says more than "it contains the dataset".
    for relation, hit in (("is", lambda f: out_dir == f), ("contains", lambda f: f.is_relative_to(out_dir))):
        for what, folder in folders:
            if hit(folder):
                raise UsageError(f"refusing --out {out_dir}: it {relation} {what} {folder}; choose another --out")
    if not out_dir.is_dir():
        return
    try:
        empty = not any(out_dir.iterdir())
    except OSError as exc:
        raise UsageError(f"cannot read output folder {out_dir}: {exc.strerror}") from None
    if empty:
        return
    if not overwrite:
        raise UsageError(f"output folder {out_dir} is not empty; choose another --out or pass --overwrite")
    if not is_run_folder(out_dir):
        raise UsageError(
            f"refusing to overwrite {out_dir}: it is not a fewgen run folder (no fewgen manifest.json);"
            " --overwrite replaces only empty folders and earlier runs"
        )


def _lock_path(out_dir: Path) -> Path:
    return out_dir.parent / f".{out_dir.name}.lock"


@contextmanager
def run_lock(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out_dir`` for a whole run; a second run into it stops at once.

    ``flock`` is released by the kernel when the process dies, so a killed run never leaves a
    stale lock. The small ``.NAME.lock`` file stays beside the run folder.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    path = _lock_path(out_dir)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the whole run
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            raise UsageError(
                f"another fewgen run (pid {owner}) is writing {out_dir}; wait for it to finish or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def leftovers(out_dir: Path, kind: str) -> list[Path]:
    """``.NAME.partial-PID`` (kind "partial") or ``.NAME.old-PID`` (kind "old") folders beside ``out_dir``."""
    return sorted(out_dir.parent.glob(f".{out_dir.name}.{kind}-*"))


def recover(out_dir: Path) -> Path | None:
    """Clean up after runs into ``out_dir`` that were killed; call it holding :func:`run_lock`.

    A previous run moved aside by an interrupted swap goes back under its name (if that name is
    free); half-built folders are deleted. Returns the folder put back, if any.
    """
    restored = None
    for old in leftovers(out_dir, "old"):
        if restored is None and not out_dir.exists():
            os.rename(old, out_dir)
            restored = out_dir
        else:
            shutil.rmtree(old, ignore_errors=True)
    for partial in leftovers(out_dir, "partial"):
        shutil.rmtree(partial, ignore_errors=True)
    return restored


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2); False where the system cannot."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(first))


def swap_into_place(built: Path, final: Path) -> None:
    """Make ``built`` the folder at ``final``; a previous run there is deleted only after the swap.

    Where the system offers an atomic exchange, ``final`` always names a complete run. Elsewhere
    the previous run is first renamed to ``.NAME.old-PID``; a run killed before the second
    rename leaves it there, and :func:`recover` renames it back.
    """
    if not final.exists():
        os.rename(built, final)
        return
    if _exchange(built, final):
        shutil.rmtree(built, ignore_errors=True)  # now the previous run
        return
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    os.rename(final, old)
    os.rename(built, final)
    shutil.rmtree(old, ignore_errors=True)
