"""``--out`` and ``--overwrite``: only what fewgen wrote is replaced, one run per folder, nothing lost mid-swap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fewgen import rundir
from fewgen.cache import StepCache
from fewgen.engine import Engine
from fewgen.errors import UsageError
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
STATS_ONLY = """\
  - name: stats
    evaluator: dataset_stats
output:
  format: fewgen
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    make_native_dataset(tmp_path / "data", count=6)
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "recipe.yaml").write_text(RECIPE.replace("root: data", "root: ../data"))
    return tmp_path


def _engine(project: Path, registry) -> Engine:
    return Engine(registry, cache=StepCache(project / "cache"), show_progress=False, echo=lambda _: None)


def run(project: Path, registry, out: Path, **kwargs):
    loaded = load_recipe(project / "recipes" / "recipe.yaml", registry)
    return _engine(project, registry).run(loaded, out, **kwargs)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("target", ["data", "recipes", "cache", "."])
def test_overwrite_refuses_the_dataset_recipe_folder_cache_and_their_parents(project, registry, brighten, target):
    run(project, registry, project / "cache" / ".." / "warm")  # fills the cache, so it is a real folder
    out = (project / target).resolve()
    before = snapshot(out)
    with pytest.raises(UsageError, match=r"refusing --out .*: it (is|contains) the"):
        run(project, registry, out, overwrite=True)
    assert snapshot(out) == before


def test_overwrite_refuses_home_and_root(project, registry, brighten, monkeypatch):
    home = project / "home"
    make_native_dataset(home / "photos", count=1)
    monkeypatch.setenv("HOME", str(home))
    before = snapshot(home)
    with pytest.raises(UsageError, match="it is the home folder"):
        run(project, registry, home, overwrite=True)
    with pytest.raises(UsageError, match="it is the root folder"):
        run(project, registry, Path("/"), overwrite=True)
    assert snapshot(home) == before


def test_overwrite_refuses_a_folder_fewgen_did_not_write(project, registry, brighten):
    mine = project / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("only copy")
    with pytest.raises(UsageError, match="not a fewgen run folder"):
        run(project, registry, mine, overwrite=True)
    assert (mine / "chapter1.tex").read_text() == "only copy"
    # A manifest.json of something else does not count either.
    (mine / "manifest.json").write_text('{"name": "my app"}')
    with pytest.raises(UsageError, match="not a fewgen run folder"):
        run(project, registry, mine, overwrite=True)


def test_overwrite_replaces_an_empty_folder_and_an_earlier_run(project, registry, brighten):
    empty = project / "empty"
    empty.mkdir()
    run(project, registry, empty)
    manifest = json.loads((empty / "manifest.json").read_text())
    assert manifest["kind"] == rundir.RUN_KIND
    (empty / "stale.txt").write_text("from the previous run")
    run(project, registry, empty, overwrite=True)
    assert not (empty / "stale.txt").exists() and (empty / "manifest.json").is_file()
    assert not rundir.leftovers(empty, "old") and not rundir.leftovers(empty, "partial")


def test_a_second_run_into_the_same_folder_stops_while_the_first_holds_it(project, registry, brighten):
    out = project / "busy"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from fewgen.rundir import run_lock\n"
            "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UsageError, match=rf"another fewgen run \(pid {holder.pid}\) is writing"):
            run(project, registry, out)
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    run(project, registry, out)  # the kernel dropped the dead holder's lock
    assert (out / "manifest.json").is_file()


def test_a_run_killed_between_the_two_renames_is_put_back(project, registry, brighten, monkeypatch):
    out = project / "out"
    run(project, registry, out)
    previous = snapshot(out)
    # Where the system has no atomic exchange, the swap is two renames; die after the first.
    monkeypatch.setattr(rundir, "_exchange", lambda first, second: False)
    real_rename = os.rename

    def rename_then_die(source, target):
        real_rename(source, target)
        if Path(source) == out:  # the previous run moved aside: the first of the two renames
            raise KeyboardInterrupt  # stands in for SIGKILL: nothing after it runs

    monkeypatch.setattr(rundir.os, "rename", rename_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(project, registry, out, overwrite=True)
    monkeypatch.setattr(rundir.os, "rename", real_rename)
    assert not out.exists()
    (moved,) = rundir.leftovers(out, "old")
    assert snapshot(moved) == previous  # recoverable under its own name
    # The next run into the folder puts it back first, then refuses as usual without --overwrite.
    with pytest.raises(UsageError, match="is not empty"):
        run(project, registry, out)
    assert snapshot(out) == previous and not rundir.leftovers(out, "old")


def test_swap_is_atomic_where_the_system_can_exchange(tmp_path):
    final, built = tmp_path / "run", tmp_path / ".run.partial-1"
    final.mkdir()
    (final / "old.txt").write_text("old")
    built.mkdir()
    (built / "new.txt").write_text("new")
    if not rundir._exchange(built, final):
        pytest.skip("no renameat2 RENAME_EXCHANGE here")
    rundir._exchange(built, final)  # swap back, then through the real function
    rundir.swap_into_place(built, final)
    assert [p.name for p in final.iterdir()] == ["new.txt"] and not built.exists()


def test_leftovers_of_killed_runs_are_removed(project, registry, brighten):
    out = project / "out"
    partial = project / f".out.partial-{2**22 + 7}"
    partial.mkdir()
    (partial / "half.json").write_text("{")
    stale_build = project / "cache" / "tmp" / f"{'a' * 64}-{2**22 + 7}-deadbeef"
    stale_build.mkdir(parents=True)
    run(project, registry, out)
    assert not partial.exists() and not stale_build.exists()


def test_cli_overwrite_refusal_is_one_line(project):
    env = {**os.environ, "FEWGEN_CACHE": str(project / "cache")}
    recipe = project / "recipes" / "stats.yaml"
    recipe.write_text(RECIPE.replace("root: data", "root: ../data").split("  - name: bright")[0] + STATS_ONLY)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "fewgen.cli", "run", str(recipe), "--out", str(project / "data"), "--overwrite"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("Error: refusing --out") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr and time.perf_counter() - started < 30
