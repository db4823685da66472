"""The installed distribution: fewgen finds the generator and the benchmarks, and listing them imports no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fewgen.plugins import load_registry


def test_fewgen_finds_the_generator_and_the_benchmarks() -> None:
    registry = load_registry()
    (info,) = [info for info in registry.describe() if info.distribution == "fewgen-munit"]
    assert (info.name, info.version) == ("munit", "0.1.0")
    assert info.generators == ["munit"] and info.evaluators == []
    assert sorted(info.benchmarks) == ["munit", "munit-speed"]


def test_fewgen_plugins_json_lists_the_munit_generator() -> None:
    fewgen = Path(sys.executable).with_name("fewgen")
    out = subprocess.run([str(fewgen), "plugins", "--json"], capture_output=True, text=True, check=True)
    (munit,) = [p for p in json.loads(out.stdout) if p["distribution"] == "fewgen-munit"]
    assert munit["generators"] == ["munit"]


def test_the_hook_module_does_not_import_torch() -> None:
    code = "import sys, fewgen_munit.hooks; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
