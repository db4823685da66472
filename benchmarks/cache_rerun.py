"""Time a recipe run with an empty cache, then a rerun into a new folder, and compare outputs.

    .venv/bin/python benchmarks/cache_rerun.py [RECIPE] [--repeat N] [-- --set KEY=VALUE ...]

Prints one JSON object: wall seconds of each run (whole CLI processes, as a user sees
them), their ratio, and whether the dataset and metrics files of the two run folders
are byte-identical.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_run(recipe: str, out: Path, cache: Path, extra: list[str]) -> float:
    env = {**os.environ, "FEWGEN_CACHE": str(cache)}
    command = [sys.executable, "-m", "fewgen.cli", "run", recipe, "--out", str(out), "--no-progress", *extra]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def identical_outputs(first: Path, second: Path) -> bool:
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file() and p.name != "manifest.json")
    same = [p for p in files if (second / p).is_file() and filecmp.cmp(first / p, second / p, shallow=False)]
    return len(same) == len(files) == sum(1 for p in second.rglob("*") if p.is_file() and p.name != "manifest.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", default="recipes/night_pedestrians.yaml")
    parser.add_argument("--repeat", type=int, default=3, help="Fresh-cache trials; medians are reported.")
    parser.add_argument("extra", nargs="*", help="Arguments passed to `fewgen run` (after --).")
    args = parser.parse_args()
    cold, warm, identical = [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            cold.append(timed_run(args.recipe, root / "first", root / "cache", args.extra))
            warm.append(timed_run(args.recipe, root / "second", root / "cache", args.extra))
            identical.append(identical_outputs(root / "first", root / "second"))
            shutil.rmtree(root / "cache", ignore_errors=True)
    result = {
        "benchmark": "cache_rerun",
        "recipe": args.recipe,
        "repeat": args.repeat,
        "cold_seconds": [round(t, 3) for t in cold],
        "warm_seconds": [round(t, 3) for t in warm],
        "median_cold_seconds": round(statistics.median(cold), 3),
        "median_warm_seconds": round(statistics.median(warm), 3),
        "speedup": round(statistics.median(cold) / statistics.median(warm), 2),
        "outputs_identical": all(identical),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
