"""Fuzz `fewgen validate` with mutated copies of the shipped recipes: every case must end cleanly and fast.

    .venv/bin/python benchmarks/fuzz_recipes.py [--n 1000] [--seed 0] [--workers 2] [--timeout 10] [--json]
    .venv/bin/python benchmarks/fuzz_recipes.py --show CASE     # the mutated recipe and --set options of one case

Each case takes a recipe from recipes/*.yaml and mutates it: values of another type, unknown
or missing keys, unicode and control characters, deep nesting, aliases (reused, self-referencing,
"billion laughs" bombs), tags (`!!int x`, `!!python/object`), duplicate keys, huge numbers,
hostile names and paths, odd `--set` overrides, truncation and flipped bytes. Cases run through
the CLI entry point (`fewgen validate`, in-process through click's CliRunner) in long-lived worker
processes, one case at a time each; a watchdog kills and replaces a worker whose case runs past
--timeout, so a hang is counted rather than waited on. Outcomes: valid (exit 0), clean_error
(exit 2 and one `Error:` line on stderr), unclean_error (any other exit or more than one line),
traceback (an exception escaped) and hang. Cases are derived from (seed, case number) alone, so
a case reproduces with --show whatever the number of workers.

Prints one JSON object: counts by outcome and by mutation, per-case seconds (max, p99, median),
the slowest cases and up to 10 examples of tracebacks, hangs and unclean errors. Target: no
traceback, no hang, no case over 2 s.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import queue
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))
OUTCOMES = ("valid", "clean_error", "unclean_error", "traceback", "hang")
SLOW_SECONDS = 2.0

# --- Ingredients of mutations ----------------------------------------------------------

ODD_VALUES = [
    "[]", "{}", "[1, 2]", "{a: 1}", "[[1], {b: [2]}]", "null", "~", "true", "yes", "off", "-1", "0", "1.5",
    ".nan", ".inf", "-.inf", "''", '""', "2024-01-01", "2001-12-14t21:59:43.10-05:00", "0x1F", "0o17", "0b101",
    "1_000", "1:30:00", "=", "<<", "'quoted'", "|\n  block", ">\n  folded", "-", "?", ":", "[", "]", "{", "}",
]  # fmt: skip
TAGS = [
    "!!int x", "!!float x", "!!bool maybe", "!!str [1]", "!!map x", "!!seq x", "!!null x", "!!int 0x",
    "!!binary aGVsbG8=", "!!binary '!!!'", "!!set {a, b}", "!!omap [a: 1]", "!!pairs [a: 1]",
    "!!timestamp 2001-13-99", "!!timestamp x", "!!python/object:os.system x",
    "!!python/object/apply:os.system [echo hi]", "!!python/name:os.system ''", "!!python/tuple [1]",
    "!custom x", "!<tag:yaml.org,2002:int> 5", "!<tag:example.com,2000:x> 1", "!!merge x", "!!value x", "! x",
]  # fmt: skip
UNICODE = [
    "nacht_fußgänger", "ünïcødé", "日本語のレシピ", "😀🚀", "\u202eevil\u202c", "a\u200bb", "e\u0301", "\ufeffbom",
    "\U0010fffd", "Ω≈ç√∫", "ǅǈ", "İı", "ﬁ", "٣", "²",
]  # fmt: skip
CONTROL = ["\x00", "\x01", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x1b[31m", "\x7f", "\x85", "\x9b", "\u2028",
           "\u2029", "\ufeff", "\r", "\t", "\n", "\ud800"]  # fmt: skip
PATHS = ["../x", "../../../etc", "/abs/path", "a/b", ".", "..", "", " ", "~no_such_user/x", "~", "x" * 300,
         "x/" * 2000, "con", "a\\b", "%s%n", "$HOME", "-rf", "NUL", "a:b", "*", "name\x00", "line\nbreak"]  # fmt: skip
INT_LENGTHS = [50, 100, 101, 500, 4300, 4301, 5000, 100_000]
DEPTHS = [10, 63, 64, 65, 100, 1000, 50_000]

SCALAR_LINE = re.compile(r"^(?P<head>[ ]*(?:- )?[A-Za-z_][\w.-]*:)(?P<rest>[ ]+[^#\s].*)?$", re.M)
KEY_LINE = re.compile(r"^(?P<head>[ ]*(?:- )?)(?P<key>[A-Za-z_][\w.-]*):", re.M)


@dataclass
class Case:
    number: int
    recipe: str
    mutation: str
    detail: str
    data: bytes
    args: list[str] = field(default_factory=list)


@dataclass
class Base:
    name: str
    text: str
    data: dict[str, Any]
    args: list[str]


# --- Value generators --------------------------------------------------------------------


def huge_number(rng: random.Random) -> str:
    digits = rng.choice(INT_LENGTHS)
    return rng.choice(["9" * digits, "-" + "1" * digits, "0x" + "f" * digits, "1e" + "9" * min(digits, 50),
                       "0." + "1" * digits, "1" * digits + ".5", "+" + "7_" * (digits // 2)])  # fmt: skip


def deep_value(rng: random.Random) -> str:
    depth = rng.choice(DEPTHS)
    return rng.choice(["[" * depth + "1" + "]" * depth, "{a: " * depth + "1" + "}" * depth, "[" * depth])


def alias_bomb(rng: random.Random, flow: bool = False) -> tuple[str, str]:
    """Anchors a0..aD, each a list of W aliases of the one before; returns (definitions, deepest alias)."""
    width, depth = rng.randint(2, 10), rng.randint(3, 12)
    items = ", ".join(['"lol"'] * width)
    levels = [f"&a0 [{items}]"] + [f"&a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, depth)]
    if flow:
        return "[" + ", ".join(levels) + "]", f"*a{depth - 1}"
    return "".join(f"bomb_{i}: {level}\n" for i, level in enumerate(levels)), f"*a{depth - 1}"


def random_python_value(rng: random.Random) -> Any:
    return rng.choice([[], {}, 1, -7, 1.5, float("inf"), "text", True, False, None, [1, [2, [3]]],
                       {"a": {"b": 1}}, 10**60, rng.choice(UNICODE), rng.choice(PATHS), ["train", "nope"]])  # fmt: skip


def odd_text_value(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.25:
        return rng.choice(ODD_VALUES)
    if kind < 0.45:
        return rng.choice(TAGS)
    if kind < 0.6:
        return huge_number(rng)
    if kind < 0.75:
        return deep_value(rng)
    if kind < 0.85:
        return rng.choice(["&a [*a]", "&a {x: *a}", "*undefined", "&a 1", "&a [1, &a 2]"])
    return rng.choice(UNICODE + CONTROL + PATHS)


# --- Mutations on the parsed recipe (re-dumped as YAML) ------------------------------------


def _paths(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*path, index))
    return found


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10_000)


def change_type(rng: random.Random, base: Base) -> tuple[str, list[str], str]:
    data = copy.deepcopy(base.data)
    path = rng.choice(_paths(data)[1:])
    value = random_python_value(rng)
    _get(data, path[:-1])[path[-1]] = value
    return _dump(data), base.args, f"{_dotted(path)} -> {type(value).__name__}"


def unknown_key(rng: random.Random, base: Base) -> tuple[str, list[str], str]:
    data = copy.deepcopy(base.data)
    mappings = [path for path in _paths(data) if isinstance(_get(data, path), dict)]
    target = _get(data, rng.choice(mappings))
    existing = list(target) or ["key"]
    word = str(rng.choice(existing))
    key = rng.choice([
        word[1:] or "x", word + "s", word.upper(), word.replace("_", "-"), word[::-1], rng.choice(UNICODE),
        "", " ", "__class__", "0", "null", "true", word + rng.choice(CONTROL), "x" * 5000,
    ])  # fmt: skip
    target[key] = random_python_value(rng)
    return _dump(data), base.args, f"added key {key[:40]!r}"


def missing_key(rng: random.Random, base: Base) -> tuple[str, list[str], str]:
    data = copy.deepcopy(base.data)
    keyed = [path for path in _paths(data)[1:] if isinstance(path[-1], str)]
    path = rng.choice(keyed)
    del _get(data, path[:-1])[path[-1]]
    return _dump(data), base.args, f"removed {_dotted(path)}"


def path_text(rng: random.Random, base: Base) -> tuple[str, list[str], str]:
    data = copy.deepcopy(base.data)
    targets = [("name",), ("dataset", "root"), ("dataset", "card"), ("output", "format")]
    targets += [("steps", i, "name") for i in range(len(_step_names(data)))]
    # An earlier mutation (see `combined`) may have turned a container into a plain value.
    path = rng.choice([path for path in targets if _container(data, path[:-1])] or [("name",)])
    value = rng.choice(PATHS + UNICODE) + (rng.choice(CONTROL) if rng.random() < 0.3 else "")
    _get(data, path[:-1])[path[-1]] = value
    return _dump(data), base.args, f"{_dotted(path)} = {value[:40]!r}"


# --- Mutations of the text ---------------------------------------------------------------


def _replace_value(rng: random.Random, text: str, value: str) -> tuple[str, str]:
    """``text`` with the value of a random ``key: value`` line replaced (or such a line added); and the key."""
    matches = list(SCALAR_LINE.finditer(text))
    if not matches:
        return f"{text}\nextra: {value}\n", "extra:"
    match = rng.choice(matches)
    head = match.group("head")
    return text[: match.start()] + head + " " + value + text[match.end() :], head.strip()


def tag(rng: random.Random, base: Base) -> tuple[str, list[str], str]:
    value = rng.choice(TAGS)
    text, key = _replace_value(rng, base.text, value)
    return text, base.args, f"{key} {value}"


def huge_numbers(rng: random.Random, base: Base) -> tuple[str, list[str], str]:
    value = huge_number(rng)
    text, key = _replace_value(rng, base.text, value)
    return text, base.args, f"{key} number of {len(value)} characters"


def deep_nesting(rng: random.Random, base: Base) -> tuple[str, list[str], str]:
    if rng.random() < 0.3:
        depth = rng.choice(DEPTHS[:5])
        block = "".join("  " * (level + 1) + f"k{level}:\n" for level in range(depth)) + "  " * (depth + 1) + "v\n"
        return base.text + "nested:\n" + block, base.args, f"block nesting {depth}"
    value = deep_value(rng)
    text, key = _replace_value(rng, base.text, value)
    return text, base.args, f"{key} flow nesting of {len(value)} characters"


def alias(rng: random.Random, base: Base) -> tuple[str, list[str], str]:
    kind = rng.choice(["bomb", "bomb", "self", "reuse", "merge", "undefined", "duplicate_anchor", "alias_key"])
    text = base.text
    if kind == "bomb":
        definitions, deepest = alias_bomb(rng)
        text, key = _replace_value(rng, definitions + text, deepest)
        return text, base.args, f"bomb {definitions.count(chr(10))} levels, used at {key}"
    if kind == "self":
        value = rng.choice(["&a [*a]", "&a {x: *a}", "&a [1, [2, *a]]", "&a {<<: *a}", "&a {k: [*a]}"])
        text, key = _replace_value(rng, text, value)
        return text, base.args, f"{key} {value}"
    if kind == "reuse" and "params:" in text:
        first = text.index("params:")
        text = text[:first] + "params: &p" + text[first + len("params:") :]
        text = text.replace("evaluator:", "params: *p\n    evaluator:", 1)
        return text, base.args, "step params anchored and reused"
    if kind == "merge":
        defaults = "defaults: &d {preset: tiny, fraction: 0.5}\n"
        text = defaults + text.replace("params:\n", "params:\n      <<: *d\n", 1)
        return text, base.args, "merge key into the first params"
    if kind == "duplicate_anchor":
        return "x: &a 1\ny: &a 2\n" + text, base.args, "anchor defined twice"
    if kind == "alias_key":
        return "k: &k seed\n*k : 5\n" + text, base.args, "alias used as a key"
    text, key = _replace_value(rng, text, "*nowhere")
    return text, base.args, f"{key} *nowhere"


def duplicate_key(rng: random.Random, base: Base) -> tuple[str, list[str], str]:
    matches = list(SCALAR_LINE.finditer(base.text))
    if not matches:  # a text an earlier mutation (see `combined`) left without one
        return base.text + "\nseed: 1\nseed: 2\n", base.args, "appended seed twice"
    match = rng.choice(matches)
    line = match.group(0)
    copy_line = line if not line.lstrip().startswith("- ") else line.replace("- ", "  ", 1)
    text = base.text[: match.end()] + "\n" + copy_line + base.text[match.end() :]
    return text, base.args, f"duplicated {line.strip()[:40]!r}"


def unicode(rng: random.Random, base: Base) -> tuple[str, list[str], str]:
    value = rng.choice(UNICODE)
    if rng.random() < 0.5:
        text, key = _replace_value(rng, base.text, value)
        return text, base.args, f"{key} {value!r}"
    matches = list(KEY_LINE.finditer(base.text))
    if not matches:
        return f"{value}: 1\n{base.text}", base.args, f"key {value!r} prepended"
    match = rng.choice(matches)
    text = base.text[: match.start("key")] + value + base.text[match.start("key") :]
    return text, base.args, f"key prefixed with {value!r}"


def control_characters(rng: random.Random, base: Base) -> tuple[str, list[str], str]:
    char = rng.choice(CONTROL)
    where = rng.random()
    if where < 0.4:
        position = rng.randrange(len(base.text) + 1)
        return base.text[:position] + char + base.text[position:], base.args, f"{char!r} at {position}"
    if where < 0.7:  # escaped in a double-quoted string: the YAML is fine, the value holds the character
        escaped = json.dumps("a" + char + "b")
        text, key = _replace_value(rng, base.text, escaped)
        return text, base.args, f"{key} {escaped}"
    text, key = _replace_value(rng, base.text, "value" + char + "end")
    return text, base.args, f"{key} raw {char!r}"


def truncate(rng: random.Random, base: Base) -> tuple[str, list[str], str]:
    cut = rng.randrange(len(base.text))
    return base.text[:cut], base.args, f"cut at {cut} of {len(base.text)}"


def set_override(rng: random.Random, base: Base) -> tuple[str, list[str], str]:
    paths = [_dotted_key(path) for path in _paths(base.data)[1:]]
    paths = paths or ["seed"]  # an earlier mutation (see `combined`) may have left little to address
    steps = _step_names(base.data) or ["night"]
    overrides = []
    for _ in range(rng.randint(1, 3)):
        key = rng.choice([
            rng.choice(paths), rng.choice(paths), f"steps.{rng.choice(steps)}.params.{rng.choice(UNICODE)}",
            "steps.99.params.x", "steps.-1.name", "steps..name", ".seed", "seed.", "", "a" * 300,
            ".".join(["a"] * 100), "steps.\u00b2.name", f"name.{rng.choice(paths)}", "steps", "dataset",
            rng.choice(UNICODE), "seed" + rng.choice(CONTROL), "threads", "device", "steps.0.threads",
        ])  # fmt: skip
        value = rng.choice([odd_text_value(rng), odd_text_value(rng), alias_bomb(rng, flow=True)[0], ""])
        overrides.append(f"{key}={value}" if rng.random() < 0.95 else key)
    args = list(base.args)
    for override in overrides:
        args += ["--set", override]
    return base.text, args, "; ".join(override[:40] for override in overrides)


def flip_bytes(rng: random.Random, base: Base) -> tuple[bytes, list[str], str]:
    data = bytearray(base.text.encode())
    positions = [rng.randrange(len(data)) for _ in range(rng.randint(1, 8))]
    for position in positions:
        data[position] ^= rng.randrange(1, 256)
    return bytes(data), base.args, f"flipped bytes at {positions}"


STRUCTURAL: dict[str, Callable[[random.Random, Base], tuple[Any, list[str], str]]] = {
    "change_type": change_type,
    "unknown_key": unknown_key,
    "missing_key": missing_key,
    "path_text": path_text,
}
TEXTUAL: dict[str, Callable[[random.Random, Base], tuple[Any, list[str], str]]] = {
    "unicode": unicode,
    "control_characters": control_characters,
    "deep_nesting": deep_nesting,
    "alias": alias,
    "tag": tag,
    "duplicate_key": duplicate_key,
    "huge_number": huge_numbers,
    "set_override": set_override,
    "truncate": truncate,
    "byte_flip": flip_bytes,
}
MUTATIONS = [*STRUCTURAL, *TEXTUAL, "combined"]


def combined(rng: random.Random, base: Base) -> tuple[Any, list[str], str]:
    """A structural mutation (or none), then one or two textual ones, each on the previous result."""
    details = []
    current = base
    steps = [rng.choice(list(STRUCTURAL))] if rng.random() < 0.6 else []
    steps += rng.sample([name for name in TEXTUAL if name != "byte_flip"], rng.randint(1, 2))
    for name in steps:
        text, args, detail = {**STRUCTURAL, **TEXTUAL}[name](rng, current)
        details.append(f"{name}: {detail}")
        current = Base(current.name, text, current.data if name in TEXTUAL else yaml.safe_load(text), args)
    return current.text, current.args, " | ".join(details)


def _step_names(data: dict[str, Any]) -> list[Any]:
    steps = data.get("steps")
    return [step.get("name") for step in steps if isinstance(step, dict)] if isinstance(steps, list) else []


def _container(data: Any, path: tuple[Any, ...]) -> bool:
    try:
        return isinstance(_get(data, path), dict | list)
    except (KeyError, IndexError, TypeError):
        return False


def _dotted(path: tuple[Any, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")


def _dotted_key(path: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in path)


def make_case(number: int, seed: int, bases: list[Base]) -> Case:
    rng = random.Random(f"{seed}:{number}")
    base = rng.choice(bases)
    mutation = MUTATIONS[number % len(MUTATIONS)]
    mutate = combined if mutation == "combined" else {**STRUCTURAL, **TEXTUAL}[mutation]
    text, args, detail = mutate(rng, base)
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return Case(number, base.name, mutation, detail, data, args)


# --- Worker: runs cases in-process through the CLI -------------------------------------------


def worker() -> None:
    """Read cases as JSON lines on stdin, answer each with one JSON line on the original stdout."""
    from click.testing import CliRunner

    from fewgen.cli import cli

    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # plugins printing at import time cannot garble the protocol
    folder = Path(tempfile.mkdtemp(prefix="fewgen-fuzz-"))
    runner = CliRunner()
    runner.invoke(cli, ["validate", str(RECIPES[0])])  # loads the registry, once per worker
    answers.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        path = folder / "recipe.yaml"
        path.write_bytes(base64.b64decode(request["data"]))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        result = runner.invoke(cli, ["validate", str(path), *request["args"]])
        seconds = time.perf_counter() - started
        grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        outcome, first_line = classify(result)
        answer = {"outcome": outcome, "seconds": seconds, "first_line": first_line[:300], "rss_growth_kb": grown_kb}
        answers.write(json.dumps(answer) + "\n")


def classify(result: Any) -> tuple[str, str]:
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return "traceback", traceback.format_exception_only(result.exception)[-1].strip()
    lines = result.stderr.strip().splitlines()
    if result.exit_code == 0:
        return "valid", result.stdout.strip()
    if result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: "):
        return "clean_error", lines[0]
    return "unclean_error", f"exit {result.exit_code}, {len(lines)} lines: " + " / ".join(lines[:3])


class Worker:
    """A worker process and a thread that reads its answers, so the driver can wait with a timeout."""

    def __init__(self, log: Path):
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("ab"),
            text=True,
            env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"},
        )
        self.answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.dead = False
        threading.Thread(target=self._read, daemon=True).start()
        ready = self.answers.get(timeout=300)
        if not ready or not ready.get("ready"):
            raise RuntimeError(f"fuzz worker did not start (see {log})")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.answers.put(json.loads(line))
        self.answers.put(None)

    def run(self, case: Case, timeout: float) -> dict[str, Any] | None:
        """The worker's answer; None when it took longer than ``timeout``. A worker that died answers a traceback."""
        assert self.process.stdin is not None
        request = {"data": base64.b64encode(case.data).decode(), "args": case.args}
        started = time.perf_counter()
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            answer = self.answers.get(timeout=timeout)
        except queue.Empty:
            return None
        except BrokenPipeError:
            answer = None
        if answer is None:
            self.dead = True
            code = self.process.wait()
            seconds = time.perf_counter() - started
            return {"outcome": "traceback", "seconds": seconds, "first_line": f"worker died with exit code {code}"}
        return answer

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


# --- Driver --------------------------------------------------------------------------------


def load_bases(baseline: Worker, timeout: float, root: Path) -> tuple[list[Base], dict[str, str]]:
    """The shipped recipes; those whose card has no default root get --set dataset.root=(an empty folder)."""
    bases, outcomes = [], {}
    for path in RECIPES:
        text = path.read_text(encoding="utf-8")
        base = Base(path.stem, text, yaml.safe_load(text), [])
        answer = baseline.run(Case(-1, path.stem, "none", "", text.encode(), []), timeout)
        if answer and "no default root" in answer["first_line"]:
            base.args = ["--set", f"dataset.root={root}"]
            answer = baseline.run(Case(-1, path.stem, "none", "", text.encode(), base.args), timeout)
        outcomes[path.stem] = answer["outcome"] if answer else "hang"
        bases.append(base)
    return bases, outcomes


def drive(cases: list[Case], workers: int, timeout: float, log: Path) -> list[dict[str, Any]]:
    pending: queue.Queue[Case] = queue.Queue()
    for case in cases:
        pending.put(case)
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def loop() -> None:
        current = Worker(log)
        while True:
            try:
                case = pending.get_nowait()
            except queue.Empty:
                break
            answer = current.run(case, timeout)
            if answer is None:
                answer = {"outcome": "hang", "seconds": timeout, "first_line": f"no answer in {timeout} s"}
            if answer["outcome"] == "hang" or current.dead:
                current.stop()
                current = Worker(log)
            with lock:
                results.append({"case": case.number, "recipe": case.recipe, "mutation": case.mutation,
                                "detail": case.detail[:200], **answer})  # fmt: skip
        current.stop()

    threads = [threading.Thread(target=loop) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(results, key=lambda result: result["case"])


def summary(results: list[dict[str, Any]], args: argparse.Namespace, baseline: dict[str, str], wall: float) -> dict:
    seconds = sorted(result["seconds"] for result in results)
    by_mutation: dict[str, Counter[str]] = {}
    for result in results:
        by_mutation.setdefault(result["mutation"], Counter())[result["outcome"]] += 1
    shown = ("case", "recipe", "mutation", "detail", "outcome", "seconds", "first_line")
    bad = [result for result in results if result["outcome"] in ("traceback", "hang", "unclean_error")]
    slowest = sorted(results, key=lambda result: -result["seconds"])[:5]
    return {
        "n": len(results),
        "seed": args.seed,
        "workers": args.workers,
        "timeout_s": args.timeout,
        "baseline": baseline,
        "counts": {outcome: sum(r["outcome"] == outcome for r in results) for outcome in OUTCOMES},
        "by_mutation": {name: dict(counts) for name, counts in sorted(by_mutation.items())},
        "seconds": {
            "max": round(seconds[-1], 4),
            "p99": round(seconds[min(len(seconds) - 1, int(0.99 * len(seconds)))], 4),
            "median": round(statistics.median(seconds), 4),
            "wall": round(wall, 1),
        },
        f"over_{SLOW_SECONDS:g}s": sum(value > SLOW_SECONDS for value in seconds),
        "max_rss_growth_mb": round(max(r.get("rss_growth_kb", 0) for r in results) / 1024, 1),
        "slowest": [{key: _rounded(result[key]) for key in shown} for result in slowest],
        "examples": [{key: _rounded(result[key]) for key in shown} for result in bad[:10]],
    }


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="Number of cases.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="Worker processes (one case at a time each).")
    parser.add_argument("--timeout", type=float, default=10.0, help="Seconds after which a case counts as a hang.")
    parser.add_argument("--json", action="store_true", help="Print only the JSON object.")
    parser.add_argument("--show", type=int, metavar="CASE", help="Print the recipe and options of one case and stop.")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    with tempfile.TemporaryDirectory(prefix="fewgen-fuzz-") as tmp:
        root, log = Path(tmp) / "empty_dataset", Path(tmp) / "workers.log"
        root.mkdir()
        baseline_worker = Worker(log)
        bases, baseline = load_bases(baseline_worker, args.timeout, root)
        baseline_worker.stop()
        if args.show is not None:
            case = make_case(args.show, args.seed, bases)
            print(f"# case {case.number}: {case.recipe}, {case.mutation}: {case.detail}")
            print(f"# options: {case.args}")
            sys.stdout.write(case.data.decode("utf-8", "backslashreplace"))
            return
        cases = [make_case(number, args.seed, bases) for number in range(args.n)]
        started = time.perf_counter()
        results = drive(cases, args.workers, args.timeout, log)
        report = summary(results, args, baseline, time.perf_counter() - started)
    if not args.json:
        counts = ", ".join(f"{count} {outcome}" for outcome, count in report["counts"].items())
        print(f"{report['n']} cases: {counts}; max {report['seconds']['max']} s", file=sys.stderr)
    print(json.dumps(report, indent=2, ensure_ascii=True))


if __name__ == "__main__":
    main()
