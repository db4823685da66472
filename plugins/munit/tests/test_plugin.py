"""The installed distribution: fewgen finds the plugin, and listing it does not import torch."""

from __future__ import annotations

import subprocess
import sys

from fewgen.plugins import load_registry


def test_fewgen_finds_the_plugin_with_nothing_registered_yet() -> None:
    registry = load_registry()
    (info,) = [info for info in registry.describe() if info.distribution == "fewgen-munit"]
    assert (info.name, info.version) == ("munit", "0.1.0")
    assert info.generators == [] and info.evaluators == [] and info.benchmarks == []


def test_the_hook_module_does_not_import_torch() -> None:
    code = "import sys, fewgen_munit.hooks; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
