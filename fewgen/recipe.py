"""Recipes: YAML files that name a dataset and the steps that augment and evaluate it.

Validation happens before anything runs and reports ``file:line: message`` for the first
problem. Step parameters are validated against the ``Params`` model of the plugin the
step names, so a typo inside ``params`` is caught as early as one at the top level.

Recipes and cards are read with :class:`RecipeLoader`, which turns every problem into one
line and keeps hostile YAML cheap: duplicate keys, tags other than plain values, integers
longer than ``MAX_INT_DIGITS`` digits, nesting deeper than ``MAX_YAML_DEPTH`` and documents
whose aliases expand to more than ``MAX_YAML_NODES`` values (a "billion laughs") are refused
while composing, before anything walks the expanded tree.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from fewgen.errors import UsageError, did_you_mean
from fewgen.paths import BASE_DIR
from fewgen.plugins import Registry

if TYPE_CHECKING:
    from fewgen.cards import DatasetCard

Lines = dict[tuple[Any, ...], int]

# Limits on what a recipe or card file may hold; real ones are far below each.
MAX_YAML_BYTES = 1_000_000  # read no further: a device or a huge file is not a recipe
MAX_YAML_NODES = 100_000  # values in the document as expanded, an alias counting each time it is used
MAX_YAML_DEPTH = 64  # levels of nested lists and mappings, aliases expanded
MAX_INT_DIGITS = 100
MAX_NAME_LENGTH = 100
MAX_PATH_LENGTH = 4096
MAX_OVERRIDE_KEY_LENGTH = 256
MAX_SEED = 2**32 - 1
MAX_THREADS = 256
ThreadCount = Annotated[int, Field(ge=1, le=MAX_THREADS)]  # the bounds for the schema; _check_threads tells the user

# Recipe and step names become folder names (runs/NAME-TIME, reports/STEP): one safe path component.
NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_NAME_LENGTH - 1}}}")
NAME_RULE = (
    "may hold only letters, digits, '_', '-' and '.', start with a letter or digit"
    f" and be at most {MAX_NAME_LENGTH} characters long"
)
DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]{1,3})?")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # C0, C1 and line separators


def check_device(value: str) -> str:
    """A device name as recipes and ``--device`` give it: auto, cpu, cuda or cuda:N (else a UsageError)."""
    problem = _device_problem(value)
    if problem:
        raise UsageError(problem)
    return value


def _device_problem(value: str) -> str | None:
    return None if DEVICE.fullmatch(value) else f"device {shown(value)} is not one of auto, cpu, cuda, cuda:N"


def check_path_text(value: str | None) -> str | None:
    """Recipe text that names a file or folder: no control characters (NUL, newline) and not absurdly long."""
    if value is not None:
        if len(value) > MAX_PATH_LENGTH:
            raise ValueError(f"a path of at most {MAX_PATH_LENGTH} characters is expected")
        if CONTROL_CHARACTERS.search(value):
            raise ValueError(f"the path {shown(value)} holds a control character")
    return value


def _check_name(value: str, what: str) -> str:
    if not NAME.fullmatch(value):
        raise ValueError(f"{what} {shown(value)} {NAME_RULE}")
    return value


def _check_threads(value: Any) -> Any:
    # bool is an int to Python, but `threads: true` is a mistake, not one thread.
    if value == "auto" or (type(value) is int and 1 <= value <= MAX_THREADS):
        return value
    raise ValueError(f"'threads' must be 'auto' or a whole number from 1 to {MAX_THREADS}")


def shown(value: Any, limit: int = 60) -> str:
    """``repr`` of a value for a one-line message, cut short when long."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 4]}...{text[-1]}"


def probe(path: Path, kind: Literal["dir", "file"]) -> bool:
    """Whether ``path`` is a folder (or file); False, not an exception, for names the OS cannot take."""
    try:
        return path.is_dir() if kind == "dir" else path.is_file()
    except (OSError, ValueError):
        return False


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSource(Strict):
    """The real dataset a recipe starts from: a card, or a format, and a root folder."""

    card: str | None = Field(None, description="Name of a dataset card (see `fewgen cards`) or path to a card file.")
    root: str | None = Field(None, description="Dataset folder; relative paths are relative to the recipe file.")
    format: str | None = Field(None, description="Dataset format, when no card is given or to override the card's.")
    options: dict[str, Any] = Field(default_factory=dict, description="Format options; merged over the card's.")
    where: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="Keep only samples whose label, domain or split is (one of) the given value(s).",
    )
    limit: int | dict[Literal["train", "val", "test"], int] | None = Field(
        None,
        description="At most N samples per split (or per named split: {train: 20}), chosen at random by the seed.",
    )
    limit_group: str | None = Field(
        None,
        description="Regular expression over sample ids whose first group names what belongs together (a board's "
        "defective image and its template): 'limit' then counts groups, and keeps or drops each whole.",
    )
    domain: str | None = Field(None, description="Domain for samples whose layout names none; overrides the card's.")

    @field_validator("limit_group")
    @classmethod
    def _group_pattern(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"limit_group is not a regular expression: {exc}") from None
        if compiled.groups < 1:
            raise ValueError("limit_group needs a group, e.g. '^(.*)_(?:test|temp)$'")
        return pattern

    @field_validator("card", "root")
    @classmethod
    def _path_text(cls, value: str | None) -> str | None:
        return check_path_text(value)

    @model_validator(mode="after")
    def _card_or_format(self) -> DatasetSource:
        if set(self.where) - {"label", "domain", "split"}:
            raise ValueError("'where' can match label, domain or split")
        limits = self.limit.values() if isinstance(self.limit, dict) else [self.limit or 1]
        if any(n < 1 for n in limits):
            raise ValueError("'limit' must be at least 1")
        if self.limit_group is not None and self.limit is None:
            raise ValueError("'limit_group' needs a 'limit' to apply to")
        if self.card is None and self.format is None:
            raise ValueError("give either 'card' or 'format'")
        if self.card is None and self.root is None:
            raise ValueError("'root' is required when no card is given")
        return self


class OutputSpec(Strict):
    format: str = Field("yolo", description="Format of the exported dataset under OUT/dataset (besides samples.jsonl).")
    options: dict[str, Any] = Field(default_factory=dict, description="Options of the output format.")


class Step(Strict):
    """One recipe step: exactly one of ``generator`` or ``evaluator``."""

    name: str | None = Field(None, description="Unique step name; defaults to the plugin name.")
    generator: str | None = Field(None, description="Generator plugin that adds synthetic samples.")
    evaluator: str | None = Field(None, description="Evaluator plugin that measures the dataset.")
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters of the plugin.")
    splits: list[Literal["train", "val", "test"]] = Field(
        default_factory=lambda: ["train"],
        description="Splits a generator draws from and adds to. Test data stays real unless you list it.",
    )
    draw_from: Literal["all", "real"] = Field(
        "all", description="Samples a generator draws from: 'all' (with earlier steps' output) or only 'real' ones."
    )
    where: dict[str, str | list[str | None] | None] | None = Field(
        None,
        description="Samples a generator draws from, by label or domain (null: none set): {label: defective} "
        "rotates the defective boards and leaves their defect-free templates alone.",
    )
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, strict=True, description="Seed of this step; derived from the recipe seed when absent."
    )
    threads: Literal["auto"] | ThreadCount | None = Field(
        None, description="Torch threads of this step: 'auto', a fixed count, or the recipe's when absent."
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        return value if value is None else _check_name(value, "step name")

    @field_validator("where")
    @classmethod
    def _where_keys(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and set(value) - {"label", "domain"}:
            raise ValueError("a step's 'where' can match label or domain (its splits are 'splits')")
        return value

    @field_validator("splits", "draw_from", "where")
    @classmethod
    def _generators_only(cls, value: Any, info: ValidationInfo) -> Any:
        # Given explicitly (a default is not validated), so an evaluator step that sets it is a mistake.
        if info.data.get("evaluator") is not None and info.data.get("generator") is None:
            raise ValueError(f"'{info.field_name}' applies to generator steps only; an evaluator sees every split")
        return value

    @field_validator("threads", mode="before")
    @classmethod
    def _thread_count(cls, value: Any) -> Any:
        return None if value is None else _check_threads(value)

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        if (self.generator is None) == (self.evaluator is None):
            raise ValueError("a step needs exactly one of 'generator' or 'evaluator'")
        return self

    @property
    def kind(self) -> str:
        return "generator" if self.generator else "evaluator"

    @property
    def component(self) -> str:
        return self.generator or self.evaluator or ""


class Recipe(Strict):
    """A dataset, the steps that augment and evaluate it, and where the result goes."""

    name: str = Field(description="Recipe name; used for run folders.")
    description: str = ""
    seed: int = Field(0, ge=0, le=MAX_SEED, strict=True, description="Master seed; each step derives its own from it.")
    device: str = Field("auto", description="'auto' (CUDA when present, else CPU), 'cpu', 'cuda' or 'cuda:N'.")
    threads: Literal["auto"] | ThreadCount = Field(
        "auto", description="Torch threads per step: 'auto' takes a fair share of the free cores, or a fixed count."
    )
    dataset: DatasetSource
    steps: list[Step] = Field(default_factory=list)
    output: OutputSpec = Field(default_factory=OutputSpec)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return _check_name(value, "recipe name")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        problem = _device_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("threads", mode="before")
    @classmethod
    def _thread_count(cls, value: Any) -> Any:
        return _check_threads(value)

    @model_validator(mode="after")
    def _unique_names(self) -> Recipe:
        seen: set[str] = set()
        for step in self.steps:
            name = step.name or step.component
            if name in seen:
                raise ValueError(f"two steps are named {name!r}; give each a distinct 'name'")
            seen.add(name)
            step.name = name
        return self


class LoadedRecipe:
    """A validated recipe, where it came from, and its parameters resolved per step."""

    def __init__(self, recipe: Recipe, path: Path, step_params: list[BaseModel], lines: Lines):
        self.recipe = recipe
        self.path = path
        self.base_dir = path.parent.resolve()
        self.step_params = step_params
        self.lines = lines
        # The dataset card the recipe names, its format, options and root: read and checked while validating.
        self.card: DatasetCard | None = None
        self.source_format: str = ""
        self.source_options: BaseModel | None = None
        self.source_root: Path | None = None

    def validate(self, model: type[BaseModel], data: Any, prefix: tuple[Any, ...]) -> Any:
        """Validate a part of the recipe, reporting errors at its line in the recipe file."""
        return _validate(model, data, self.path, self.lines, prefix)

    def error_at(self, key: tuple[Any, ...], message: str) -> UsageError:
        line = _line_for(key, self.lines)
        return UsageError(f"{self.path}:{line}: {message}" if line else f"{self.path}: {message}")

    def resolve_path(self, value: str) -> Path:
        """Relative paths in a recipe are relative to the recipe's folder."""
        try:
            return (self.base_dir / Path(value).expanduser()).resolve()
        except (RuntimeError, OSError, ValueError) as exc:  # ~user without a home, a NUL
            raise UsageError(f"{self.path}: cannot use the path {shown(value)}: {exc}") from None

    def resolved(self) -> dict[str, Any]:
        """The recipe as it will run: defaults filled in, step parameters validated, paths absolute."""
        data = self.recipe.model_dump(mode="json")
        for step, params in zip(data["steps"], self.step_params, strict=True):
            step["params"] = params.model_dump(mode="json")
            step.pop("evaluator" if step["generator"] else "generator")
        if self.recipe.dataset.root is not None:
            data["dataset"]["root"] = str(self.resolve_path(self.recipe.dataset.root))
        return data


# --- YAML with line numbers and limits ------------------------------------------------

JSON_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map"))
# Plain scalars resolve to these; `<<` merge keys keep working, dates and `=` stay strings.
RESOLVED_TAGS = JSON_TAGS | {"tag:yaml.org,2002:merge"}


class YAMLRefused(yaml.MarkedYAMLError):
    """Well-formed YAML that a recipe may not hold: too big, too deep, a duplicate key, an exotic tag."""


class RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the limits a file from anyone needs, checked while composing.

    The values of the document as expanded are counted as it is composed: a new node counts
    one, an alias counts the values of the node it names (computed once, when that node was
    composed), so a bomb of nested aliases is refused after a few thousand steps instead of
    being walked. Heights are kept the same way, for nesting through aliases. Values are
    JSON's: strings, numbers, booleans, null, lists and mappings (a date stays a string).
    """

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag in RESOLVED_TAGS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, text: str):
        super().__init__(text)
        self._values = 0
        self._depth = 0
        self._open_anchors: set[str] = set()
        self._measured: dict[int, tuple[int, int]] = {}  # id(node) -> (values as expanded, height)

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # The scanner looks ahead across open brackets (quadratic in their number): stop it early.
        if self.flow_level >= MAX_YAML_DEPTH:
            raise YAMLRefused(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                raise YAMLRefused(None, None, f"alias *{event.anchor} is used inside its own anchor", event.start_mark)
            node = super().compose_node(parent, index)
            self._count(self._measured[id(node)][0], event.start_mark)
            return node
        if self._depth >= MAX_YAML_DEPTH:
            raise YAMLRefused(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", event.start_mark)
        self._count(1, event.start_mark)
        anchor = event.anchor
        self._depth += 1
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open_anchors.discard(anchor)
        self._measure(node)
        return node

    def _count(self, values: int, mark: yaml.Mark) -> None:
        self._values += values
        if self._values > MAX_YAML_NODES:
            problem = f"more than {MAX_YAML_NODES:,} values (an alias counts as often as it is used)"
            raise YAMLRefused(None, None, problem, mark)

    def _measure(self, node: yaml.Node) -> None:
        if isinstance(node, yaml.MappingNode):
            _check_keys(node)
            children = [child for pair in node.value for child in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        size = 1 + sum(self._measured[id(child)][0] for child in children)
        height = 1 + max((self._measured[id(child)][1] for child in children), default=0)
        if height > MAX_YAML_DEPTH:
            problem = f"nested deeper than {MAX_YAML_DEPTH} levels once aliases are expanded"
            raise YAMLRefused(None, None, problem, node.start_mark)
        self._measured[id(node)] = (size, height)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node.tag not in JSON_TAGS:
            problem = (
                f"tag {_tag_name(node.tag)} is not allowed (use strings, numbers, booleans, null, lists, mappings)"
            )
            raise YAMLRefused(None, None, problem, node.start_mark)
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, KeyError, IndexError, OverflowError):
            # `!!int x`, `!!bool maybe`: PyYAML's constructors fail with Python errors that have no line.
            value = shown(node.value) if isinstance(node, yaml.ScalarNode) else f"a {node.id}"
            problem = f"cannot read {value} as {_tag_name(node.tag)}"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None

    def construct_limited_int(self, node: yaml.Node) -> int:
        if isinstance(node.value, str) and len(node.value.lstrip("+-").replace("_", "")) > MAX_INT_DIGITS:
            raise YAMLRefused(None, None, f"integer with more than {MAX_INT_DIGITS} digits", node.start_mark)
        return self.construct_yaml_int(node)


RecipeLoader.add_constructor("tag:yaml.org,2002:int", RecipeLoader.construct_limited_int)


def _check_keys(node: yaml.MappingNode) -> None:
    first_line: dict[tuple[str, str], int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise YAMLRefused(None, None, "a key must be a plain value, not a list or a mapping", key_node.start_mark)
        key = (key_node.tag, key_node.value)
        if key in first_line:
            problem = f"duplicate key {shown(key_node.value)} (first at line {first_line[key]})"
            raise YAMLRefused(None, None, problem, key_node.start_mark)
        first_line[key] = key_node.start_mark.line + 1


def _tag_name(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else shown(tag)


# What composing and constructing can raise; the limits above keep RecursionError away, this keeps it one line.
YAML_FAILURES = (yaml.YAMLError, ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError)


def _read_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree and the data of a one-document YAML text; raises one of ``YAML_FAILURES``."""
    loader = RecipeLoader(text)  # checks the characters, so it may raise too
    try:
        node = loader.get_single_node()
        return node, loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def _yaml_message(exc: BaseException, text: str, source: str) -> str:
    """``source:line: problem`` in one line, for any of ``YAML_FAILURES``."""
    line = None
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        character = f"#x{exc.character:04x}" if isinstance(exc.character, int) else shown(exc.character)
        problem = f"{exc.reason}: character {character}"
    elif isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or type(exc).__name__
        if exc.context:
            context_line = f" (line {exc.context_mark.line + 1})" if exc.context_mark else ""
            problem = f"{exc.context}{context_line}: {problem}"
    elif isinstance(exc, RecursionError):
        problem = "nested too deeply"
    else:
        problem = str(exc) or type(exc).__name__
    if not isinstance(exc, YAMLRefused):
        problem = f"malformed YAML: {problem}"
    where = f"{source}:{line}" if line else source
    return " ".join(f"{where}: {problem}".split())


def load_yaml_file(path: Path) -> tuple[Any, Lines]:
    """Parse YAML and remember the line of every key, so errors can point at it."""
    try:
        with path.open("rb") as stream:
            content = stream.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"file not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if len(content) > MAX_YAML_BYTES:
        raise UsageError(f"{path}: larger than {MAX_YAML_BYTES:,} bytes; a recipe or card is a few kilobytes")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content.count(b"\n", 0, exc.start) + 1
        raise UsageError(f"{path}:{line}: not UTF-8 text (byte {content[exc.start]:#04x}: {exc.reason})") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> tuple[Any, Lines]:
    """Data and key lines of a YAML document, or a one-line UsageError naming the line of the problem."""
    try:
        node, data = _read_yaml(text)
    except YAML_FAILURES as exc:
        raise UsageError(_yaml_message(exc, text, source)) from None
    lines: Lines = {}
    if node is not None:
        _collect_lines(node, (), lines)
    return data, lines


def _collect_lines(node: yaml.Node, path: tuple[Any, ...], lines: Lines) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _collect_lines(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_lines(item, (*path, index), lines)


# --- Overrides -------------------------------------------------------------------------


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> None:
    """Apply ``key.path=value`` overrides; steps are addressed by name or index."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {shown(override)}: expected KEY=VALUE, e.g. --set steps.night.params.fraction=0.5")
        parts = key.split(".")
        if not all(parts) or len(key) > MAX_OVERRIDE_KEY_LENGTH or len(parts) > MAX_YAML_DEPTH:
            raise UsageError(
                f"--set {shown(override)}: KEY must be names joined by '.' (at most {MAX_OVERRIDE_KEY_LENGTH}"
                " characters), e.g. steps.night.params.fraction"
            )
        value = _override_value(raw, override)
        if isinstance(value, str) and _names_existing_relative_path(value):
            # On the command line a relative path means "from here", as in any CLI.
            value = str(Path(value).resolve())
        target: Any = data
        for depth, part in enumerate(parts[:-1]):
            target = _child(target, part, parts[: depth + 1], override)
        last = parts[-1]
        if isinstance(target, list):
            target[_step_index(target, last, override)] = value
        elif isinstance(target, dict):
            target[last] = value
        else:
            raise UsageError(f"--set {shown(override)}: {'.'.join(parts[:-1])} is not a mapping")


def _override_value(raw: str, override: str) -> Any:
    """The value of ``--set KEY=VALUE`` as YAML, or the text itself when it is not YAML (``a: b``)."""
    if not raw.strip():
        return ""
    try:
        return _read_yaml(raw)[1]
    except YAMLRefused as exc:
        raise UsageError(f"--set {shown(override)}: {exc.problem}") from None
    except YAML_FAILURES:
        return raw


def _names_existing_relative_path(value: str) -> bool:
    if Path(value).is_absolute() or not ("/" in value or value.startswith(".")):
        return False
    return probe(Path(value), "dir") or probe(Path(value), "file")


def _child(target: Any, part: str, path: list[str], override: str) -> Any:
    if isinstance(target, list):
        return target[_step_index(target, part, override)]
    if not isinstance(target, dict):
        raise UsageError(f"--set {shown(override)}: {'.'.join(path[:-1])} is not a mapping")
    if part not in target or target[part] is None:
        target[part] = {}
    return target[part]


def _step_index(items: list[Any], part: str, override: str) -> int:
    if part.isascii() and part.isdigit() and int(part) < len(items):
        return int(part)
    names = [
        item.get("name") or item.get("generator") or item.get("evaluator") if isinstance(item, dict) else None
        for item in items
    ]
    if part in names:
        return names.index(part)
    known = [name for name in names if isinstance(name, str)]
    raise UsageError(f"--set {shown(override)}: no step {shown(part)}{did_you_mean(part, known)}")


# --- Validation ------------------------------------------------------------------------


def validation_message(
    exc: Exception,
    source: Path | str,
    lines: Lines,
    prefix: tuple[Any, ...] = (),
    model: type[BaseModel] | None = None,
) -> str:
    """One line for the first validation error: ``file:line: key 'a.b': problem``."""
    if not isinstance(exc, ValidationError):
        return " ".join(f"{source}: {exc}".split())
    errors = exc.errors()
    first = errors[0]
    loc = (*prefix, *first["loc"])
    line = _line_for(loc, lines)
    where = f"{source}:{line}" if line else str(source)
    dotted = _dotted(loc)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, first["loc"]) if model else []
        return f"{where}: unknown key '{dotted}'{did_you_mean(str(loc[-1])[:MAX_NAME_LENGTH], allowed)}{more}"
    if first["type"] == "missing":
        return f"{where}: missing required key '{dotted}'{more}"
    # A plugin's own validator may raise a message of several lines.
    message = " ".join(first["msg"].removeprefix("Value error, ").split())
    return f"{where}: key '{dotted}': {message}{more}" if dotted else f"{where}: {message}{more}"


def _line_for(loc: tuple[Any, ...], lines: Lines) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        name = shown(part)[1:-1] if isinstance(part, str) else str(part)  # escapes control characters, cuts long keys
        text += f"[{part}]" if isinstance(part, int) else (f".{name}" if text else name)
    return text


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model that ``loc`` (minus its last key) points into."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", {})
        if part not in fields:
            return []
        annotation = fields[part].annotation
        current = _model_in(annotation)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _validate(
    model: type[BaseModel],
    data: Any,
    source: Path | str,
    lines: Lines,
    prefix: tuple[Any, ...] = (),
    base_dir: Path | None = None,
) -> Any:
    """``model`` validated from ``data``; input-path parameters (:mod:`fewgen.paths`) resolve against ``base_dir``."""
    try:
        return model.model_validate(data, context={BASE_DIR: base_dir} if base_dir is not None else None)
    except ValidationError as exc:
        raise UsageError(validation_message(exc, source, lines, prefix, model)) from None


def load_recipe(path: Path, registry: Registry, overrides: list[str] | None = None) -> LoadedRecipe:
    """Read, override and validate a recipe, including every step's plugin parameters."""
    data, lines = load_yaml_file(path)
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a recipe must be a YAML mapping with 'name', 'dataset' and 'steps'")
    apply_overrides(data, overrides or [])
    recipe: Recipe = _validate(Recipe, data, path, lines)
    step_params: list[BaseModel] = []
    for index, step in enumerate(recipe.steps):
        table = registry.generators if step.generator else registry.evaluators
        if step.component not in table:
            line = lines.get(("steps", index, step.kind))
            where = f"{path}:{line}" if line else str(path)
            known = f"installed: {', '.join(sorted(table))}" if table else f"no {step.kind} plugin is installed"
            raise UsageError(
                f"{where}: unknown {step.kind} {shown(step.component)}{did_you_mean(step.component, table)} ({known})"
            )
        component = table[step.component][1]
        params = _validate(
            component.Params, step.params, path, lines, ("steps", index, "params"), base_dir=path.parent.resolve()
        )
        _check_step_references(params, recipe.steps[:index], path, lines, index)
        step_params.append(params)
    loaded = LoadedRecipe(recipe, path, step_params, lines)
    _check_formats(loaded, registry)
    return loaded


def _check_step_references(params: BaseModel, earlier: list[Step], path: Path, lines: Lines, index: int) -> None:
    # Any pydantic model may serve as Params; only fewgen.api.Params subclasses can refer to steps.
    references = params.step_references() if hasattr(params, "step_references") else {}
    generators = [step.name for step in earlier if step.generator]
    for key, names in references.items():
        for name in names:
            if name not in generators:
                line = lines.get(("steps", index, "params", *key)) or lines.get(("steps", index, "params"))
                where = f"{path}:{line}" if line else str(path)
                known = (
                    f"generator steps before it: {', '.join(generators)}"
                    if generators
                    else "no generator step before it"
                )
                raise UsageError(
                    f"{where}: steps[{index}].params.{'.'.join(key)} names step {shown(name)},"
                    f" which is not a generator step before this one{did_you_mean(name, generators)} ({known})"
                )


def _check_formats(loaded: LoadedRecipe, registry: Registry) -> None:
    """The dataset card, formats, options and root, as ``fewgen run`` will read them, are checked before running."""
    from fewgen.cards import load_card

    recipe = loaded.recipe
    spec = recipe.dataset
    for key, name in (("dataset", "format"), spec.format), (("output", "format"), recipe.output.format):
        if name is not None and name not in registry.formats:
            known = ", ".join(sorted(registry.formats)) or "none installed"
            raise loaded.error_at(
                key, f"unknown dataset format {shown(name)}{did_you_mean(name, registry.formats)} ({known})"
            )
    if spec.root is not None:
        loaded.source_root = loaded.resolve_path(spec.root)
        if not probe(loaded.source_root, "dir"):
            raise loaded.error_at(("dataset", "root"), f"dataset root not found: {loaded.source_root}")
    card = None
    if spec.card is not None:
        try:
            card = loaded.card = load_card(spec.card, registry, loaded.base_dir)
            if spec.format is None:
                registry.dataset_format(card.format)
        except UsageError as exc:
            raise loaded.error_at(("dataset", "card"), str(exc)) from None
    if loaded.source_root is None:
        if card is None or card.root is None or card.path is None:
            raise loaded.error_at(
                ("dataset", "card"),
                f"dataset card {shown(spec.card)} has no default root;"
                " set 'dataset.root' (or --set dataset.root=FOLDER)",
            )
        loaded.source_root = (card.path.parent / card.root).resolve()
        if not probe(loaded.source_root, "dir"):
            raise loaded.error_at(
                ("dataset", "card"), f"dataset root of card {card.name!r} not found: {loaded.source_root}"
            )
    loaded.source_format = spec.format or (card.format if card else "")
    options = {**(card.options if card else {}), **spec.options}
    dataset_format = registry.dataset_format(loaded.source_format)
    loaded.source_options = loaded.validate(dataset_format.Options, options, ("dataset", "options"))
    output_format = registry.dataset_format(recipe.output.format)
    if not output_format().writable:
        raise loaded.error_at(("output", "format"), f"format {shown(recipe.output.format)} can only be read")
    loaded.validate(output_format.write_options(), recipe.output.options, ("output", "options"))


def recipe_json_schema(registry: Registry) -> dict[str, Any]:
    """JSON Schema of recipes, with each installed plugin's parameters, for editor completion."""
    variants: list[Any] = []
    for kind, table in (("generator", registry.generators), ("evaluator", registry.evaluators)):
        for name, (_, component) in sorted(table.items()):
            fields: dict[str, Any] = {
                kind: (Literal[name], Field(description=component.description or f"The {name} {kind}.")),
                "params": (component.Params, Field(default_factory=dict)),
            }
            model_name = f"{kind.title()}Step_" + re.sub(r"\W", "_", name)
            variant = create_model(model_name, __base__=Step, **fields)
            variants.append(variant)
    step_type: Any = Annotated[Step, Field()]
    if variants:
        from typing import Union

        step_type = Union[tuple(variants)]  # noqa: UP007 - built from a runtime tuple
    schema_model = create_model("RecipeSchema", __base__=Recipe, steps=(list[step_type], Field(default_factory=list)))
    schema = schema_model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "fewgen recipe"
    return schema
