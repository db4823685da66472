"""Every recipe problem is one line, exit code 2, fast: hostile or broken YAML never gives a traceback."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from fewgen.cards import load_card
from fewgen.cli import cli
from fewgen.errors import UsageError
from fewgen.recipe import MAX_YAML_DEPTH, check_device, load_recipe, parse_yaml

RECIPE = """\
name: tiny
seed: 3
dataset:
  format: fewgen
  root: data
steps:
  - name: bright
    generator: brighten
    params:
      offset: 20
  - evaluator: dataset_stats
"""

# 491 bytes: nine levels of nine aliases, 9**9 "lol"s once expanded.
ALIAS_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str, registry, overrides: list[str] | None = None) -> str:
    with pytest.raises(UsageError) as info:
        load_recipe(write(tmp_path, text), registry, overrides)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    return message


# --- YAML the reader, composer or constructor cannot take -----------------------------


@pytest.mark.parametrize(
    "text, line, problem",
    [
        (RECIPE.replace("seed: 3", "seed: !!int x"), 2, "cannot read 'x' as !!int"),
        (RECIPE.replace("seed: 3", "seed: !!float x"), 2, "cannot read 'x' as !!float"),
        (RECIPE.replace("seed: 3", "seed: !!bool maybe"), 2, "cannot read 'maybe' as !!bool"),
        (RECIPE.replace("seed: 3", "seed: 3\x00"), 2, "character #x0000"),
        (RECIPE.replace("      offset: 20", "      offset: 20\x07"), 10, "character #x0007"),
        (RECIPE.replace("  root: data", "\troot: data"), 5, "found character '\\t'"),
        (RECIPE.replace("seed: 3", "seed: *nowhere"), 2, "undefined alias 'nowhere'"),
        (RECIPE.replace("  root: data", "  root: [data"), 6, "malformed YAML"),
        (RECIPE + "---\nname: again\n", 12, "expected a single document"),
    ],
    ids=["int-tag", "float-tag", "bool-tag", "nul", "bell", "tab", "undefined-alias", "unclosed", "two-documents"],
)
def test_malformed_yaml_is_one_line_with_its_line(tmp_path, registry, text, line, problem):
    message = error_of(tmp_path, text, registry)
    assert message.startswith(f"{tmp_path / 'recipe.yaml'}:{line}: malformed YAML: "), message
    assert problem in message


@pytest.mark.parametrize("tag", ["!!python/object:os.system", "!!python/name:os.system", "!!binary", "!!set", "!foo"])
def test_tags_other_than_plain_values_are_refused(tmp_path, registry, tag):
    message = error_of(tmp_path, RECIPE.replace("seed: 3", f"seed: {tag} x"), registry)
    assert ":2: tag " in message and "is not allowed" in message


def test_dates_stay_strings_and_merge_keys_work():
    data, lines = parse_yaml("base: &base {a: 1, b: 2}\nday: 2024-01-01\nmine:\n  <<: *base\n  b: 3\n", "t")
    assert data["day"] == "2024-01-01"
    assert data["mine"] == {"a": 1, "b": 3}
    assert lines[("mine", "b")] == 5


def test_duplicate_key_names_both_lines(tmp_path, registry):
    message = error_of(tmp_path, RECIPE + "seed: 4\n", registry)
    assert message == f"{tmp_path / 'recipe.yaml'}:12: duplicate key 'seed' (first at line 2)"


def test_duplicate_key_inside_a_step(tmp_path, registry):
    message = error_of(tmp_path, RECIPE.replace("      offset: 20", "      offset: 20\n      offset: 30"), registry)
    assert ":11: duplicate key 'offset' (first at line 10)" in message


def test_non_scalar_key_is_refused(tmp_path, registry):
    assert ":12: a key must be a plain value" in error_of(tmp_path, RECIPE + "? [a, b]\n: c\n", registry)


def test_alias_bomb_is_refused_fast_and_small(tmp_path, registry):
    assert len(ALIAS_BOMB.encode()) < 500
    path = write(tmp_path, RECIPE + ALIAS_BOMB.replace("a: &a", "lol: &a"))
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(UsageError, match=r"more than 100,000 values \(an alias counts as often as it is used\)"):
        load_recipe(path, registry)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 1.0
    assert peak < 100 * 2**20


def test_many_small_aliases_below_the_limit_still_load():
    data, _ = parse_yaml(ALIAS_BOMB.split("d: ")[0], "t")  # a, b, c: 9 + 81 + 729 values
    assert len(data["c"]) == 9 and data["c"][0][0] == data["a"]


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n", "a: &a [1, [2, *a]]\n"])
def test_self_referencing_alias_is_refused(text):
    with pytest.raises(UsageError, match=r"^t:1: alias \*a is used inside its own anchor$"):
        parse_yaml(text, "t")


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 100_000,
        "a: " + "{b: " * 100_000,
        "- " * 10_000 + "x",
        "".join("  " * depth + "k:\n" for depth in range(200)),
    ],
    ids=["flow-lists", "flow-maps", "block-lists", "block-maps"],
)
def test_deep_nesting_is_refused_quickly(text):
    started = time.perf_counter()
    with pytest.raises(UsageError, match=f"nested deeper than {MAX_YAML_DEPTH} levels"):
        parse_yaml(text, "t")
    assert time.perf_counter() - started < 1.0


def test_deep_nesting_through_aliases_is_refused():
    nested = "[" * 40 + "]" * 40
    text = f"a: &a {nested}\nb: {nested[:40]}*a{nested[40:]}\n"
    with pytest.raises(UsageError, match=r"^t:2: nested deeper than 64 levels once aliases are expanded$"):
        parse_yaml(text, "t")


def test_nesting_within_the_limit_loads():
    data, _ = parse_yaml("a: " + "[" * 60 + "]" * 60, "t")
    assert isinstance(data["a"], list)


@pytest.mark.parametrize("number", ["9" * 5000, "-" + "1" * 101, "0x" + "f" * 200])
def test_huge_integer_is_refused(tmp_path, registry, number):
    message = error_of(tmp_path, RECIPE.replace("seed: 3", f"seed: {number}"), registry)
    assert message.endswith(":2: integer with more than 100 digits")


def test_oversized_file_is_refused(tmp_path, registry):
    message = error_of(tmp_path, RECIPE + "description: " + "x" * 1_100_000 + "\n", registry)
    assert "larger than 1,000,000 bytes" in message


def test_undecodable_file_is_one_line(tmp_path, registry):
    path = write(tmp_path, RECIPE)
    path.write_bytes(RECIPE.encode() + b"\xff\xfe\n")
    with pytest.raises(UsageError, match=r"recipe.yaml:12: not UTF-8 text \(byte 0xff: invalid start byte\)$"):
        load_recipe(path, registry)


# --- Values of the wrong shape -------------------------------------------------------


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("name: tiny", "name: [tiny]", ":1: key 'name'"),
        ("seed: 3", "seed: {a: 1}", ":2: key 'seed'"),
        ("  root: data", "  root: [data]", ":5: key 'dataset.root'"),
        ("steps:\n", "steps: 3\nx:\n", ":6: key 'steps'"),
        ("      offset: 20", "      offset: [20]", ":10: key 'steps[0].params.offset'"),
        ("    params:\n      offset: 20", "    params: [1]", ":9: key 'steps[0].params'"),
        ("  - evaluator: dataset_stats", "  - evaluator: [dataset_stats]", ":11: key 'steps[1].evaluator'"),
        ("  root: data", "  root: data\n  limit: [1]", ":6: key 'dataset.limit"),
        ("  root: data", "  root: data\n  where: {label: [[a]]}", ":6: key 'dataset.where.label"),
    ],
)
def test_a_list_or_mapping_where_a_value_belongs(tmp_path, registry, old, new, expected):
    assert expected in error_of(tmp_path, RECIPE.replace(old, new), registry)


def test_a_recipe_that_is_not_a_mapping(tmp_path, registry):
    assert "a recipe must be a YAML mapping" in error_of(tmp_path, "- a\n- b\n", registry)


# --- --set ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, problem",
    [
        ("description=" + "[" * 100_000, "nested deeper than 64 levels"),
        ("description=&a [*a]", "alias *a is used inside its own anchor"),
        ("seed=" + "9" * 5000, "integer with more than 100 digits"),
        ("steps..params.offset=1", "KEY must be names joined by '.'"),
        (".seed=1", "KEY must be names joined by '.'"),
        ("seed.=1", "KEY must be names joined by '.'"),
        ("a" * 300 + "=1", "KEY must be names joined by '.'"),
        (".".join(["a"] * 100) + "=1", "KEY must be names joined by '.'"),
        ("steps.\u00b2.params.offset=1", "no step '\u00b2'"),
        ("name.first=x", "name is not a mapping"),
    ],
)
def test_odd_overrides_are_one_line(tmp_path, registry, override, problem):
    started = time.perf_counter()
    message = error_of(tmp_path, RECIPE, registry, [override])
    assert message.startswith("--set ") and problem in message
    assert len(message) < 300 and time.perf_counter() - started < 1.0


def test_override_that_is_not_yaml_is_taken_as_text(tmp_path, registry):
    loaded = load_recipe(write(tmp_path, RECIPE), registry, ["description=a: b: c", "steps.1.name=stats"])
    assert loaded.recipe.description == "a: b: c"
    assert loaded.recipe.steps[1].name == "stats"


def test_override_with_a_wrong_type_names_the_key(tmp_path, registry):
    assert "key 'seed'" in error_of(tmp_path, RECIPE, registry, ["seed=!!int x"])


# --- Names and paths -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", ".", "..", ".hidden", "a\x00b", "a\nb", "a" * 101, "", "x y"])
def test_recipe_name_must_be_one_safe_path_component(tmp_path, registry, name):
    text = RECIPE.replace("name: tiny", "name: " + _yaml_string(name))
    message = error_of(tmp_path, text, registry)
    assert ":1: key 'name': recipe name" in message and "at most 100 characters" in message


def test_recipe_name_override_is_checked(tmp_path, registry):
    assert "recipe name '../no-such-place'" in error_of(tmp_path, RECIPE, registry, ["name=../no-such-place"])


def test_recipe_name_of_100_characters_is_fine(tmp_path, registry):
    assert load_recipe(write(tmp_path, RECIPE.replace("tiny", "t" * 100)), registry).recipe.name == "t" * 100


@pytest.mark.parametrize("name", ["a" * 101, "../x", "ok\n"])
def test_step_name_is_limited(tmp_path, registry, name):
    message = error_of(tmp_path, RECIPE.replace("name: bright", "name: " + _yaml_string(name)), registry)
    assert ":7: key 'steps[0].name': step name" in message


@pytest.mark.parametrize("key", ["root", "card"])
@pytest.mark.parametrize("value", ["da\x00ta", "da\nta", "x" * 5000])
def test_path_text_with_control_characters_or_absurd_length(tmp_path, registry, key, value):
    text = RECIPE.replace("  root: data", f"  {key}: {_yaml_string(value)}")
    assert f"key 'dataset.{key}'" in error_of(tmp_path, text, registry)


def test_path_with_a_too_long_component_is_not_found(tmp_path, registry):
    message = error_of(tmp_path, RECIPE.replace("root: data", "root: " + "x" * 300), registry)
    assert ":5: dataset root not found" in message


def test_path_under_an_unknown_home_is_one_line(tmp_path, registry):
    message = error_of(tmp_path, RECIPE.replace("root: data", "root: ~no_such_user_here/data"), registry)
    assert "cannot use the path '~no_such_user_here/data'" in message


# --- What `fewgen run` would refuse, refused by `fewgen validate` ----------------------


def test_dataset_options_are_checked_against_the_format(tmp_path, registry):
    text = RECIPE.replace("  root: data", "  root: data\n  options:\n    colour: red")
    assert ":7: unknown key 'dataset.options.colour'" in error_of(tmp_path, text, registry)


def test_card_without_a_root_needs_one_from_the_recipe(tmp_path, registry):
    write(tmp_path, "name: mine\nformat: fewgen\n", "mine.yaml")
    text = RECIPE.replace("  format: fewgen\n  root: data\n", "  card: mine.yaml\n")
    assert ":4: dataset card 'mine.yaml' has no default root; set 'dataset.root'" in error_of(tmp_path, text, registry)
    loaded = load_recipe(write(tmp_path, text), registry, [f"dataset.root={tmp_path / 'data'}"])
    assert loaded.source_root == (tmp_path / "data").resolve() and loaded.source_format == "fewgen"


def test_card_options_and_missing_card_root_are_checked(tmp_path, registry):
    write(tmp_path, "name: mine\nformat: fewgen\nroot: gone\noptions: {colour: red}\n", "mine.yaml")
    text = RECIPE.replace("  format: fewgen\n  root: data\n", "  card: mine.yaml\n")
    assert "dataset root of card 'mine' not found" in error_of(tmp_path, text, registry)
    (tmp_path / "gone").mkdir()
    assert "unknown key 'dataset.options.colour'" in error_of(tmp_path, text, registry)


def test_card_naming_an_unknown_format(tmp_path, registry):
    write(tmp_path, "name: mine\nformat: fewgn\nroot: data\n", "mine.yaml")
    text = RECIPE.replace("  format: fewgen\n  root: data\n", "  card: mine.yaml\n")
    message = error_of(tmp_path, text, registry)
    assert ":4: unknown dataset format 'fewgn'" in message and "did you mean 'fewgen'" in message


@pytest.mark.parametrize("key, value", [("splits", "[train, test]"), ("draw_from", "real")])
def test_generator_settings_on_an_evaluator_step_are_errors(tmp_path, registry, key, value):
    text = RECIPE.replace("  - evaluator: dataset_stats", f"  - evaluator: dataset_stats\n    {key}: {value}")
    message = error_of(tmp_path, text, registry)
    assert f":12: key 'steps[1].{key}': '{key}' applies to generator steps only" in message


def test_generator_settings_on_a_generator_step_are_fine(tmp_path, registry):
    text = RECIPE.replace(
        "    generator: brighten", "    generator: brighten\n    splits: [train, val]\n    draw_from: real"
    )
    assert load_recipe(write(tmp_path, text), registry).recipe.steps[0].splits == ["train", "val"]


@pytest.mark.parametrize("seed", ["-1", str(2**32), "1.5", "true"])
def test_seeds_are_32_bit(tmp_path, registry, seed):
    assert ":2: key 'seed'" in error_of(tmp_path, RECIPE.replace("seed: 3", f"seed: {seed}"), registry)
    step = RECIPE.replace("    generator: brighten", f"    generator: brighten\n    seed: {seed}")
    assert ":9: key 'steps[0].seed'" in error_of(tmp_path, step, registry)


def test_largest_seed_is_fine(tmp_path, registry):
    assert load_recipe(write(tmp_path, RECIPE.replace("seed: 3", f"seed: {2**32 - 1}")), registry).recipe.seed


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "CPU", "cuda:0 ", "cuda:12345", "mps"])
def test_device_must_be_auto_cpu_cuda_or_cuda_n(tmp_path, registry, device):
    text = RECIPE.replace("seed: 3", f"seed: 3\ndevice: {_yaml_string(device)}")
    assert ":3: key 'device': device" in error_of(tmp_path, text, registry)
    with pytest.raises(UsageError, match="is not one of auto, cpu, cuda, cuda:N"):
        check_device(device)


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:15"])
def test_known_devices_pass(device):
    assert check_device(device) == device


def test_threads_default_and_valid_values(tmp_path, registry):
    loaded = load_recipe(write(tmp_path, RECIPE), registry)
    assert loaded.recipe.threads == "auto" and loaded.recipe.steps[0].threads is None
    text = RECIPE.replace("seed: 3", "seed: 3\nthreads: 4").replace(
        "    generator: brighten", "    generator: brighten\n    threads: auto"
    )
    loaded = load_recipe(write(tmp_path, text), registry, ["steps.dataset_stats.threads=256"])
    assert loaded.recipe.threads == 4
    assert [step.threads for step in loaded.recipe.steps] == ["auto", 256]


@pytest.mark.parametrize("threads", ["0", "257", "-1", "true", "many", "2.0", "[2]"])
def test_threads_out_of_range_or_of_the_wrong_type(tmp_path, registry, threads):
    message = error_of(tmp_path, RECIPE.replace("seed: 3", f"seed: 3\nthreads: {threads}"), registry)
    assert ":3: key 'threads': 'threads' must be 'auto' or a whole number from 1 to 256" in message
    step = RECIPE.replace("    generator: brighten", f"    generator: brighten\n    threads: {threads}")
    assert ":9: key 'steps[0].threads'" in error_of(tmp_path, step, registry)


# --- Cards go through the same parser ------------------------------------------------


@pytest.mark.parametrize(
    "text, problem",
    [
        ("name: mine\nformat: fewgen\nname: again\n", ":3: duplicate key 'name' (first at line 1)"),
        ("name: mine\nformat: !!python/object:os.system x\n", ":2: tag !!python/object:os.system is not allowed"),
        (ALIAS_BOMB, "more than 100,000 values"),
        ('name: mine\nformat: fewgen\nroot: "da\\0ta"\n', ":3: key 'root'"),
        ("name: mine\nformat: fewgen\nsplits:\n  - fractions: {train: .nan}\n", "add up to 1"),
        ("name: mine\nformat: fewgen\nsplits:\n  - fractions: {train: 1}\n    group: '" + "(" * 5000 + "'\n", "group"),
    ],
    ids=["duplicate", "python-tag", "bomb", "nul-root", "nan-fraction", "deep-regex"],
)
def test_card_problems_are_one_line(tmp_path, registry, text, problem):
    path = write(tmp_path, text, "mine.yaml")
    with pytest.raises(UsageError) as info:
        load_card(str(path), registry)
    assert problem in str(info.value) and "\n" not in str(info.value)


def test_card_name_with_a_too_long_component(tmp_path, registry):
    with pytest.raises(UsageError, match="unknown dataset card"):
        load_card("x" * 300, registry, tmp_path)


# --- Through the command line -------------------------------------------------------


@pytest.mark.parametrize(
    "text, overrides",
    [
        (RECIPE.replace("seed: 3", "seed: !!int x"), []),
        (RECIPE + ALIAS_BOMB.replace("a: &a", "lol: &a"), []),
        (RECIPE.replace("seed: 3", "seed: &s [*s]"), []),
        (RECIPE.replace("seed: 3", "seed: " + "[" * 50_000), []),
        (RECIPE.replace("seed: 3", "seed: " + "7" * 5000), []),
        (RECIPE.replace("name: tiny", "name: ../escape"), []),
        (RECIPE + "seed: 4\n", []),
        (RECIPE.replace("seed: 3", "seed: 3\x1b[31m"), []),
        (RECIPE, ["description=" + "[" * 50_000]),
        (RECIPE, ["steps..x=1"]),
        (RECIPE, ["device=gpu"]),
        (RECIPE, ["dataset.options.colour=red"]),
    ],
    ids=[
        "int-tag",
        "bomb",
        "self-alias",
        "deep",
        "huge-int",
        "name",
        "duplicate",
        "escape",
        "set-deep",
        "set-key",
        "set-device",
        "set-options",
    ],
)
def test_validate_exits_2_with_one_line(tmp_path, registry, monkeypatch, text, overrides):
    write(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    args = ["validate", "recipe.yaml", *[arg for override in overrides for arg in ("--set", override)]]
    started = time.perf_counter()
    result = CliRunner().invoke(cli, args)
    assert time.perf_counter() - started < 2.0
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr


def _yaml_string(value: str) -> str:
    """A double-quoted YAML scalar holding exactly ``value`` (control characters escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in escaped) + '"'
