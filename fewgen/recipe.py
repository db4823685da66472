"""Recipes: YAML files that name a dataset and the steps that augment and evaluate it.

Validation happens before anything runs and reports ``file:line: message`` for the first
problem. Step parameters are validated against the ``Params`` model of the plugin the
step names, so a typo inside ``params`` is caught as early as one at the top level.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from fewgen.errors import UsageError, did_you_mean
from fewgen.plugins import Registry

if TYPE_CHECKING:
    from fewgen.cards import DatasetCard

Lines = dict[tuple[Any, ...], int]
STEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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
    domain: str | None = Field(None, description="Domain for samples whose layout names none; overrides the card's.")

    @model_validator(mode="after")
    def _card_or_format(self) -> DatasetSource:
        if set(self.where) - {"label", "domain", "split"}:
            raise ValueError("'where' can match label, domain or split")
        limits = self.limit.values() if isinstance(self.limit, dict) else [self.limit or 1]
        if any(n < 1 for n in limits):
            raise ValueError("'limit' must be at least 1")
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
    seed: int | None = Field(None, description="Seed of this step; derived from the recipe seed when absent.")

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        if (self.generator is None) == (self.evaluator is None):
            raise ValueError("a step needs exactly one of 'generator' or 'evaluator'")
        if self.name is not None and not STEP_NAME.match(self.name):
            raise ValueError(f"step name {self.name!r} may hold only letters, digits, '_', '-' and '.'")
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
    seed: int = Field(0, description="Master seed; each step derives its own from it.")
    device: str = Field("auto", description="'auto' (CUDA when present, else CPU), 'cpu', 'cuda' or 'cuda:N'.")
    dataset: DatasetSource
    steps: list[Step] = Field(default_factory=list)
    output: OutputSpec = Field(default_factory=OutputSpec)

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
        # The dataset card the recipe names, read once while validating.
        self.card: DatasetCard | None = None

    def validate(self, model: type[BaseModel], data: Any, prefix: tuple[Any, ...]) -> Any:
        """Validate a part of the recipe, reporting errors at its line in the recipe file."""
        return _validate(model, data, self.path, self.lines, prefix)

    def error_at(self, key: tuple[Any, ...], message: str) -> UsageError:
        line = _line_for(key, self.lines)
        return UsageError(f"{self.path}:{line}: {message}" if line else f"{self.path}: {message}")

    def resolve_path(self, value: str) -> Path:
        """Relative paths in a recipe are relative to the recipe's folder."""
        return (self.base_dir / Path(value).expanduser()).resolve()

    def resolved(self) -> dict[str, Any]:
        """The recipe as it will run: defaults filled in, step parameters validated, paths absolute."""
        data = self.recipe.model_dump(mode="json")
        for step, params in zip(data["steps"], self.step_params, strict=True):
            step["params"] = params.model_dump(mode="json")
            step.pop("evaluator" if step["generator"] else "generator")
        if self.recipe.dataset.root is not None:
            data["dataset"]["root"] = str(self.resolve_path(self.recipe.dataset.root))
        return data


# --- YAML with line numbers ------------------------------------------------------------


def load_yaml_file(path: Path) -> tuple[Any, Lines]:
    """Parse YAML and remember the line of every key, so errors can point at it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> tuple[Any, Lines]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise UsageError(f"{where}: malformed YAML: {problem}") from None
    finally:
        loader.dispose()
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
            raise UsageError(f"--set {override!r}: expected KEY=VALUE, e.g. --set steps.night.params.fraction=0.5")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str) and _names_existing_relative_path(value):
            # On the command line a relative path means "from here", as in any CLI.
            value = str(Path(value).resolve())
        parts = key.split(".")
        target: Any = data
        for depth, part in enumerate(parts[:-1]):
            target = _child(target, part, parts[: depth + 1], override)
        last = parts[-1]
        if isinstance(target, list):
            target[_step_index(target, last, override)] = value
        elif isinstance(target, dict):
            target[last] = value
        else:
            raise UsageError(f"--set {override!r}: {'.'.join(parts[:-1])} is not a mapping")


def _names_existing_relative_path(value: str) -> bool:
    return not Path(value).is_absolute() and ("/" in value or value.startswith(".")) and Path(value).exists()


def _child(target: Any, part: str, path: list[str], override: str) -> Any:
    if isinstance(target, list):
        return target[_step_index(target, part, override)]
    if not isinstance(target, dict):
        raise UsageError(f"--set {override!r}: {'.'.join(path[:-1])} is not a mapping")
    if part not in target or target[part] is None:
        target[part] = {}
    return target[part]


def _step_index(items: list[Any], part: str, override: str) -> int:
    if part.isdigit() and int(part) < len(items):
        return int(part)
    names = [
        item.get("name") or item.get("generator") or item.get("evaluator") for item in items if isinstance(item, dict)
    ]
    if part in names:
        return names.index(part)
    raise UsageError(f"--set {override!r}: no step {part!r}{did_you_mean(part, [n for n in names if n])}")


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
        return f"{source}: {exc}"
    errors = exc.errors()
    first = errors[0]
    loc = (*prefix, *first["loc"])
    line = _line_for(loc, lines)
    where = f"{source}:{line}" if line else str(source)
    dotted = _dotted(loc)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, first["loc"]) if model else []
        return f"{where}: unknown key '{dotted}'{did_you_mean(str(loc[-1]), allowed)}{more}"
    if first["type"] == "missing":
        return f"{where}: missing required key '{dotted}'{more}"
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: key '{dotted}': {message}{more}" if dotted else f"{where}: {message}{more}"


def _line_for(loc: tuple[Any, ...], lines: Lines) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
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


def _validate(model: type[BaseModel], data: Any, source: Path | str, lines: Lines, prefix: tuple[Any, ...] = ()) -> Any:
    try:
        return model.model_validate(data)
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
                f"{where}: unknown {step.kind} {step.component!r}{did_you_mean(step.component, table)} ({known})"
            )
        component = table[step.component][1]
        params = _validate(component.Params, step.params, path, lines, ("steps", index, "params"))
        step_params.append(params)
    loaded = LoadedRecipe(recipe, path, step_params, lines)
    _check_formats(loaded, registry)
    return loaded


def _check_formats(loaded: LoadedRecipe, registry: Registry) -> None:
    """Names of the dataset card and formats, and the output options, are checked before running."""
    from fewgen.cards import load_card

    recipe = loaded.recipe
    for key, name in (("dataset", "format"), recipe.dataset.format), (("output", "format"), recipe.output.format):
        if name is not None and name not in registry.formats:
            known = ", ".join(sorted(registry.formats)) or "none installed"
            raise loaded.error_at(
                key, f"unknown dataset format {name!r}{did_you_mean(name, registry.formats)} ({known})"
            )
    if recipe.dataset.root is not None and not loaded.resolve_path(recipe.dataset.root).is_dir():
        raise loaded.error_at(
            ("dataset", "root"), f"dataset root not found: {loaded.resolve_path(recipe.dataset.root)}"
        )
    if recipe.dataset.card is not None:
        try:
            loaded.card = load_card(recipe.dataset.card, registry, loaded.base_dir)
        except UsageError as exc:
            raise loaded.error_at(("dataset", "card"), str(exc)) from None
    output_format = registry.dataset_format(recipe.output.format)
    if not output_format().writable:
        raise loaded.error_at(("output", "format"), f"format {recipe.output.format!r} can only be read")
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
