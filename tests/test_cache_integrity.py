"""A cache that checks itself: damaged entries are set aside and recomputed; the key covers code and libraries."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from fewgen import provenance
from fewgen.cache import StepCache, verify_entry
from fewgen.cli import cli
from fewgen.engine import Engine, split_timings
from fewgen.recipe import load_recipe
from fewgen.testing import make_native_dataset

RECIPE = """\
name: tiny
seed: 1
dataset:
  format: fewgen
  root: data
steps:
  - name: bright
    generator: brighten
    params: {offset: 30}
  - name: stats
    evaluator: dataset_stats
output:
  format: fewgen
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    make_native_dataset(tmp_path / "data", count=8)
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    return tmp_path


def run(project: Path, registry, out: str, messages: list[str] | None = None):
    loaded = load_recipe(project / "recipe.yaml", registry)
    echo = messages.append if messages is not None else (lambda _: None)
    cache = StepCache(project / "cache", warn=echo)
    return Engine(registry, cache=cache, show_progress=False, echo=echo).run(loaded, project / out)


def entry_of(project: Path, result, step: str) -> Path:
    (record,) = [s for s in result.manifest["steps"] if s["name"] == step]
    return StepCache(project / "cache").entry(record["key"])


def snapshot(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).as_posix() not in skip
    }


def test_every_entry_records_its_files_and_verifies(project, registry, brighten):
    result = run(project, registry, "out")
    entry = entry_of(project, result, "bright")
    record = json.loads((entry / "entry.json").read_text())
    assert record["meta"] == {
        "kind": "generator",
        "component": "brighten",
        "step": "bright",
        "plugin": record["meta"]["plugin"],
    }
    assert "samples.jsonl" in record["files"] and all(len(sha) == 64 for _, sha in record["files"].values())
    verify_entry(entry)


def test_a_shortened_samples_file_is_detected_and_the_step_recomputed(project, registry, brighten):
    first = run(project, registry, "out")
    entry = entry_of(project, first, "bright")
    samples = entry / "samples.jsonl"
    lines = samples.read_text().splitlines(keepends=True)
    samples.write_text("".join(lines[:-3]))  # three samples fewer: plausible, and wrong
    messages: list[str] = []
    second = run(project, registry, "again", messages)
    assert any("is damaged" in m and "samples.jsonl" in m for m in messages)
    bright = next(s for s in second.manifest["steps"] if s["name"] == "bright")
    assert bright["timing"]["cached"] is False and bright["new_samples"] == 4
    assert second.metrics == first.metrics
    assert list((project / "cache" / "damaged").iterdir())  # kept for inspection, never reused
    verify_entry(entry)  # rebuilt


@pytest.mark.parametrize("damage", ["truncate", "delete", "flip", "record"])
def test_any_damage_is_rebuilt_not_a_failure(project, registry, brighten, damage):
    first = run(project, registry, "out")
    entry = entry_of(project, first, "bright")
    image = next((entry / "files").rglob("*.png"))
    if damage == "truncate":
        image.write_bytes(image.read_bytes()[:20])
    elif damage == "delete":
        image.unlink()
    elif damage == "flip":
        data = bytearray(image.read_bytes())
        data[len(data) // 2] ^= 0xFF
        image.write_bytes(bytes(data))
    else:
        (entry / "entry.json").write_text("{")
    run(project, registry, "again")
    assert snapshot(project / "again", ("manifest.json",)) == snapshot(project / "out", ("manifest.json",))


def test_cache_verify_and_prune_commands(project, registry, brighten):
    run(project, registry, "out")
    cache_dir = str(project / "cache")
    runner = CliRunner()
    listed = runner.invoke(cli, ["cache", "ls", "--cache-dir", cache_dir, "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert {row["kind"] for row in rows} == {"load", "generator", "evaluator"}
    usage = json.loads(runner.invoke(cli, ["cache", "du", "--cache-dir", cache_dir, "--json"]).output)
    assert usage["total"] >= sum(row["bytes"] for row in rows) > 0
    assert runner.invoke(cli, ["cache", "verify", "--cache-dir", cache_dir]).exit_code == 0
    damaged = next(row for row in rows if row["kind"] == "generator")
    shard = project / "cache" / "steps" / damaged["key"][:2] / damaged["key"]
    (shard / "samples.jsonl").write_text("")
    checked = runner.invoke(cli, ["cache", "verify", "--cache-dir", cache_dir])
    assert checked.exit_code == 1 and "1 damaged" in checked.output
    # Prune by age: entries whose last use is older than the cut-off go, newer stay.
    old = next(row for row in rows if row["kind"] == "evaluator")
    old_record = project / "cache" / "steps" / old["key"][:2] / old["key"] / "entry.json"
    an_hour_ago = time.time() - 3600
    os.utime(old_record, (an_hour_ago, an_hour_ago))
    pruned = runner.invoke(cli, ["cache", "prune", "--cache-dir", cache_dir, "--older-than", "30m"])
    assert pruned.exit_code == 0 and pruned.output.startswith("removed 1 entries")
    assert not old_record.exists()
    pruned = runner.invoke(cli, ["cache", "prune", "--cache-dir", cache_dir, "--max-size", "0"])
    assert pruned.exit_code == 0 and not list(StepCache(project / "cache").entries())
    bad = runner.invoke(cli, ["cache", "prune", "--cache-dir", cache_dir, "--older-than", "soon"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_editing_a_source_installed_plugin_changes_the_key(project, registry, brighten, monkeypatch):
    first = run(project, registry, "out")
    monkeypatch.setattr(registry, "plugin_source_hash", lambda name: "edited-" + name)
    second = run(project, registry, "again")
    assert [s["key"] for s in first.manifest["steps"]] != [s["key"] for s in second.manifest["steps"]]
    assert not any(s["timing"]["cached"] for s in second.manifest["steps"])


def test_library_versions_are_in_the_key(project, registry, brighten, monkeypatch):
    first = run(project, registry, "out")
    monkeypatch.setattr("fewgen.engine.library_versions", lambda: {**provenance.library_versions(), "torch": "99.0"})
    second = run(project, registry, "again")
    assert first.manifest["steps"][0]["key"] != second.manifest["steps"][0]["key"]


def test_source_hash_covers_an_editable_package_and_follows_its_edits(tmp_path, monkeypatch):
    package = tmp_path / "src" / "myplugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.setattr(provenance, "_is_editable", lambda distribution: True)
    provenance.source_hash.cache_clear()
    before = provenance.source_hash("myplugin", "myplugin.hooks")
    (package / "__init__.py").write_text("VALUE = 2\n")
    provenance.source_hash.cache_clear()
    after = provenance.source_hash("myplugin", "myplugin.hooks")
    assert before and after and before != after
    monkeypatch.setattr(provenance, "_is_editable", lambda distribution: False)
    provenance.source_hash.cache_clear()
    assert provenance.source_hash("myplugin", "myplugin.hooks") is None  # pinned by its version instead
    provenance.source_hash.cache_clear()


def test_timings_leave_metrics_for_the_manifest():
    metrics = {
        "map50": 0.4,
        "seconds": 12.0,
        "runs": [{"seed": 0, "train_seconds": 3.1, "map50": 0.3}, {"seed": 1, "map50": 0.5}],
        "speed": {"images_per_second": 40.0, "images": 10},
    }
    kept, timings = split_timings(metrics)
    assert kept == {
        "map50": 0.4,
        "runs": [{"seed": 0, "map50": 0.3}, {"seed": 1, "map50": 0.5}],
        "speed": {"images": 10},
    }
    assert timings == {"seconds": 12.0, "runs": [{"train_seconds": 3.1}, {}], "speed": {"images_per_second": 40.0}}


def test_a_cached_rerun_is_byte_identical_but_for_the_manifest(project, registry, brighten):
    run(project, registry, "out")
    again = run(project, registry, "again")
    assert all(s["timing"]["cached"] for s in again.manifest["steps"])
    assert snapshot(project / "again", ("manifest.json",)) == snapshot(project / "out", ("manifest.json",))
