"""fewgen: generate synthetic data for perception and inspection, then measure whether it helped."""

from importlib.metadata import PackageNotFoundError, version

from fewgen.hookspecs import hookimpl

try:
    __version__ = version("fewgen")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "hookimpl"]
