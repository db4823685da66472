"""`fewgen bench draem-synth` runs and reports; the numbers themselves belong in BENCHMARKS.md."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from fewgen.cli import cli


def test_draem_synth_prints_one_json_object() -> None:
    result = CliRunner().invoke(cli, ["bench", "draem-synth", "--size", "32", "--n", "4", "--batch", "2", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["benchmark"] == "draem-synth" and report["n"] == 4
    assert report["fewgen"]["images_per_s"] > 0
    assert 0 < report["fewgen"]["mask_fraction"] < 1


def test_missing_peer_is_a_clear_error(tmp_path: Path) -> None:
    args = ["bench", "draem-synth", "--size", "32", "--n", "2", "--peer", "anomalib"]
    result = CliRunner().invoke(cli, [*args, "--peer-python", str(tmp_path / "no-python")])
    assert result.exit_code == 2 and "peer not available" in result.output
