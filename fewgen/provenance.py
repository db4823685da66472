"""What, besides a step's own settings, decides its result: library versions and plugin source code.

A cache key that covered only a plugin's version number would restore stale results after
someone edits a plugin installed from its source folder (``pip install -e``), or after an
upgrade of torch changes the numerics. These fingerprints go into every step's key.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
from pathlib import Path

# The libraries whose versions change what the shipped plugins compute.
RESULT_LIBRARIES = ("numpy", "pillow", "opencv-python", "torch", "torchvision", "ultralytics", "albumentations")


@functools.cache
def library_versions() -> dict[str, str | None]:
    """Installed versions of :data:`RESULT_LIBRARIES` (None for a library that is absent)."""
    versions: dict[str, str | None] = {}
    for name in RESULT_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _is_editable(distribution: str) -> bool:
    try:
        text = importlib.metadata.distribution(distribution).read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return False
    if not text:
        return False
    try:
        return bool(json.loads(text).get("dir_info", {}).get("editable"))
    except (ValueError, AttributeError):
        return False


def _package_folder(module: str) -> Path | None:
    """The folder of ``module``'s top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module.split(".")[0])
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


@functools.cache
def source_hash(distribution: str | None, module: str) -> str | None:
    """SHA-256 over the Python sources of ``module``'s top-level package, for an editable install.

    A regular install is pinned by its version number, which the key already holds, so this
    returns None there; a source folder can change under the same version, so its code is hashed.
    """
    if distribution is None or not _is_editable(distribution):
        return None
    folder = _package_folder(module)
    if folder is None:
        return None
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
