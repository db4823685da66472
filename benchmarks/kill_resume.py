"""Kill `fewgen run` with SIGKILL at random and chosen moments, rerun it, and compare with an uninterrupted run.

    .venv/bin/python benchmarks/kill_resume.py --n 10 --seed 0 --json

Each trial starts a run (a small native dataset, two augment steps and dataset_stats), kills
it, then runs the same command again (with ``--overwrite``, in case the killed run had got as
far as finishing) and checks that every file of the run folder except
``manifest.json`` is byte-identical to an uninterrupted run's. The moments cycle through:
a random time in the run; inside a cache store (while ``entry.json`` is written, and between
building an entry and renaming it into place); in the final swap of the run folder, between
its two renames (the fallback path where the system has no atomic exchange) and with the
exchange; and during ``--overwrite`` of an earlier run, where the earlier run must stay
recoverable. Some trials also damage a cache entry after the kill: the rerun must notice,
set it aside and rebuild it. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = """\
name: kill_resume
seed: 3
dataset:
  format: fewgen
  root: data
steps:
  - name: night
    generator: augment
    params: {preset: [night], fraction: 1.0}
  - name: rain
    generator: augment
    draw_from: real
    params: {preset: [rain], fraction: 0.5}
  - name: stats
    evaluator: dataset_stats
output:
  format: yolo
"""

# Runs fewgen in this process after arranging a SIGKILL at the Nth call of one internal function.
KILLER = """
import os, signal, sys
point, nth = sys.argv[1], int(sys.argv[2])
calls = [0]
def dying(original):
    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == nth and point.endswith(":before"):
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if calls[0] == nth and point.endswith(":after"):
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return wrapper
import fewgen.cache, fewgen.rundir
name = point.split(":")[0]
if name == "record_entry":
    fewgen.cache.record_entry = dying(fewgen.cache.record_entry)
elif name == "store_rename":
    real = os.rename
    def rename(source, target, *a, **k):
        if "/tmp/" in str(source) and "/steps/" in str(target):
            return dying(real)(source, target, *a, **k)
        return real(source, target, *a, **k)
    fewgen.cache.os.rename = rename
elif name == "swap_two_renames":
    fewgen.rundir._exchange = lambda first, second: False
    real = os.rename
    def rename(source, target, *a, **k):
        if ".old-" in str(target):
            return dying(real)(source, target, *a, **k)
        return real(source, target, *a, **k)
    fewgen.rundir.os.rename = rename
elif name == "swap_exchange":
    fewgen.rundir._exchange = dying(fewgen.rundir._exchange)
sys.argv = ["fewgen", *sys.argv[3:]]
from fewgen.cli import main
main()
"""


def build_project(root: Path, images: int) -> Path:
    from fewgen.testing import make_native_dataset

    make_native_dataset(root / "data", count=images, size=(160, 120), seed=11)
    (root / "recipe.yaml").write_text(RECIPE)
    return root / "recipe.yaml"


def fewgen_command(recipe: Path, out: Path, overwrite: bool) -> list[str]:
    return ["run", str(recipe), "--out", str(out), "--no-progress", *(["--overwrite"] if overwrite else [])]


def run_fewgen(args: list[str], cache: Path, killer: tuple[str, int] | None = None, kill_after: float | None = None):
    env = {**os.environ, "FEWGEN_CACHE": str(cache), "FEWGEN_THREADS": "1"}
    if killer:
        command = [sys.executable, "-c", KILLER, killer[0], str(killer[1]), *args]
    else:
        command = [sys.executable, "-m", "fewgen.cli", *args]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_after is not None:
        try:
            process.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
    _out, err = process.communicate()
    return process.returncode, time.perf_counter() - started, err


def snapshot(folder: Path) -> dict[str, bytes]:
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def damage_one_entry(cache: Path, rng: random.Random) -> str | None:
    files = sorted(p for p in (cache / "steps").rglob("*") if p.is_file() and p.name != "entry.json")
    if not files:
        return None
    victim = rng.choice(files)
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    return victim.relative_to(cache).as_posix()


MOMENTS = [
    ("random", None),
    ("record_entry:before", 2),
    ("store_rename:before", 3),
    ("store_rename:after", 1),
    ("swap_two_renames:after", 1),
    ("swap_exchange:after", 1),
    ("random-overwrite", None),
    ("record_entry:after", 4),
    ("swap_two_renames:before", 1),
    ("random-damage", None),
]


def trial(index: int, moment: tuple[str, int | None], work: Path, recipe: Path, reference, ref_seconds, rng):
    point, nth = moment
    cache, out = work / f"cache-{index}", work / f"out-{index}"
    overwrite = point.startswith("swap") or point == "random-overwrite"
    previous = None
    if overwrite:  # an earlier run of another seed sits in --out: --overwrite must not lose it half-way
        run_fewgen([*fewgen_command(recipe, out, False), "--set", "seed=99"], cache)
        previous = snapshot(out)
    result: dict = {"trial": index, "moment": point if nth is None else f"{point} #{nth}", "overwrite": overwrite}
    if nth is None:
        kill_after = rng.uniform(0.3, ref_seconds)
        result["kill_after_s"] = round(kill_after, 2)
        rc, _, _ = run_fewgen(fewgen_command(recipe, out, overwrite), cache, kill_after=kill_after)
    else:
        rc, _, _ = run_fewgen(fewgen_command(recipe, out, overwrite), cache, killer=(point, nth))
    result["killed"] = rc == -signal.SIGKILL
    if previous is not None:
        recoverable = [out, *sorted(work.glob(f".{out.name}.old-*"))]
        now = [snapshot(folder) for folder in recoverable]
        result["previous_recoverable"] = previous in now or reference in now  # replaced only by the finished run
    if point == "random-damage":
        result["damaged_file"] = damage_one_entry(cache, rng)
    # The user's rerun: the same command, with --overwrite in case the killed run had already finished.
    rc, seconds, err = run_fewgen(fewgen_command(recipe, out, True), cache)
    result.update(rerun_rc=rc, rerun_seconds=round(seconds, 2), identical=snapshot(out) == reference)
    if point == "random-damage" and result["damaged_file"]:
        result["damage_detected"] = "is damaged" in err
    if rc != 0:
        result["rerun_error"] = err.strip().splitlines()[-1:] if err.strip() else []
    leftovers = sorted(p.name for p in work.glob(f".{out.name}.*") if not p.name.endswith(".lock"))
    leftovers += sorted(p.name for p in (cache / "tmp").glob("*")) if (cache / "tmp").is_dir() else []
    result["leftovers"] = leftovers
    return result


def passed(result: dict) -> bool:
    kept_previous = result.get("previous_recoverable", True) and result.get("damage_detected", True)
    return result["rerun_rc"] == 0 and result["identical"] and kept_previous


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10, help="Trials; moments cycle through the list above.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=48, help="Images of the generated dataset.")
    parser.add_argument("--json", action="store_true", help="Print only the JSON object (the default output).")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="fewgen-kill-") as tmp:
        work = Path(tmp)
        recipe = build_project(work, args.images)
        rc, ref_seconds, err = run_fewgen(fewgen_command(recipe, work / "reference", False), work / "cache-ref")
        if rc != 0:
            raise SystemExit(f"uninterrupted run failed: {err.strip().splitlines()[-1:]}")
        reference = snapshot(work / "reference")
        shutil.rmtree(work / "cache-ref")
        trials = [trial(i, MOMENTS[i % len(MOMENTS)], work, recipe, reference, ref_seconds, rng) for i in range(args.n)]
    summary = {
        "n": args.n,
        "seed": args.seed,
        "uninterrupted_seconds": round(ref_seconds, 2),
        "killed": sum(t["killed"] for t in trials),
        "reruns_ok": sum(t["rerun_rc"] == 0 for t in trials),
        "identical": sum(t["identical"] for t in trials),
        "previous_recoverable": [t["previous_recoverable"] for t in trials if "previous_recoverable" in t],
        "damage_detected": [t["damage_detected"] for t in trials if "damage_detected" in t],
        "leftovers": sum(len(t["leftovers"]) for t in trials),
        "all_passed": all(
            t["rerun_rc"] == 0
            and t["identical"]
            and t.get("previous_recoverable", True)
            and t.get("damage_detected", True)
            for t in trials
        ),
        "trials": trials,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
