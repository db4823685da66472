"""The installed distribution: fewgen finds the generator and the benchmark, and listing them imports no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fewgen.plugins import load_registry


def test_fewgen_finds_the_generator_and_the_benchmark() -> None:
    registry = load_registry()
    (info,) = [info for info in registry.describe() if info.distribution == "fewgen-psgan"]
    assert (info.name, info.version) == ("psgan", "0.1.0")
    assert info.generators == ["psgan"] and info.benchmarks == ["psgan"]


def test_fewgen_plugins_json_lists_the_psgan_generator() -> None:
    fewgen = Path(sys.executable).with_name("fewgen")
    out = subprocess.run([str(fewgen), "plugins", "--json"], capture_output=True, text=True, check=True)
    (psgan,) = [p for p in json.loads(out.stdout) if p["distribution"] == "fewgen-psgan"]
    assert psgan["generators"] == ["psgan"]


def test_the_hook_module_does_not_import_torch_or_opencv() -> None:
    code = "import sys, fewgen_psgan.hooks; sys.exit('torch' in sys.modules or 'cv2' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
