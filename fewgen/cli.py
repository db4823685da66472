"""The ``fewgen`` command line."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from fewgen import __version__
from fewgen.errors import StepFailed, UsageError


class PluginCommandError(click.ClickException):
    """A plugin command that cannot be added (its name is taken): a user's installation problem, exit code 2."""

    exit_code = 2


class FewgenGroup(click.Group):
    """Turns user errors into one line on stderr and exit code 2, plugin failures into exit 1.

    Besides the built-in commands it offers those plugins register (``register_commands``),
    loaded only when a name is not built in or the command list is asked for.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *plugin_commands()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, name) or plugin_commands().get(name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except StepFailed as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted; finished steps are cached and a rerun resumes from there.", err=True)
            sys.exit(130)


@click.group(cls=FewgenGroup)
@click.version_option(__version__, prog_name="fewgen")
@click.option("-v", "--verbose", is_flag=True, help="Log plugin messages at INFO level.")
def cli(verbose: bool) -> None:
    """Generate synthetic training data with plugins, and measure whether it helps."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def _registry():
    from fewgen.plugins import get_registry

    return get_registry()


def plugin_commands() -> dict[str, click.Command]:
    """The commands plugins register, by name; a name that shadows a built-in command is an error."""
    try:
        registered = _registry().commands
    except UsageError as exc:  # two plugins registered the same name
        raise PluginCommandError(str(exc)) from None
    for name, (plugin, _) in registered.items():
        if name in cli.commands:
            raise PluginCommandError(
                f"plugin {plugin!r} registers the command {name!r}, which is a built-in fewgen command"
            )
    return {name: command for name, (_, command) in registered.items()}


def _load(recipe: str, overrides: tuple[str, ...]):
    from fewgen.recipe import load_recipe

    return load_recipe(Path(recipe), _registry(), list(overrides))


set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value, e.g. --set dataset.root=data --set steps.night.params.fraction=0.5",
)


cache_dir_option = click.option(
    "--cache-dir", type=click.Path(file_okay=False), help="Step cache (default: $FEWGEN_CACHE or user cache)."
)


@cli.command()
@click.argument("recipe")
@set_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Run folder (default: runs/NAME-TIME).")
@click.option("--device", help="Override the recipe's device: auto, cpu, cuda, cuda:N.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty run folder (only once the new run is complete).")
@cache_dir_option
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
def run(
    recipe: str,
    overrides: tuple[str, ...],
    out_dir: str | None,
    device: str | None,
    overwrite: bool,
    cache_dir: str | None,
    no_progress: bool,
) -> None:
    """Run RECIPE: load the dataset, run its steps (reusing cached ones) and write the run folder."""
    from fewgen.cache import StepCache
    from fewgen.engine import Engine

    if device is not None:
        from fewgen.recipe import check_device

        check_device(device)
    loaded = _load(recipe, overrides)
    target = Path(out_dir) if out_dir else Path("runs") / f"{loaded.recipe.name}-{datetime.now():%Y%m%d-%H%M%S}"
    engine = Engine(
        _registry(),
        cache=StepCache(Path(cache_dir)) if cache_dir else None,
        device=device,
        show_progress=not no_progress,
        echo=lambda message: click.echo(message, err=True),
    )
    result = engine.run(loaded, target, overwrite=overwrite)
    summary = result.manifest["dataset"]
    click.echo(
        f"wrote {result.out_dir} ({summary['samples']} samples, {summary['synthetic']} synthetic;"
        f" {result.manifest['skipped_samples']} skipped; {result.manifest['timing']['seconds']:.1f} s)"
    )


@cli.command()
@click.argument("recipe")
@set_option
def validate(recipe: str, overrides: tuple[str, ...]) -> None:
    """Check RECIPE (and every step's parameters) without running it."""
    loaded = _load(recipe, overrides)
    steps = ", ".join(f"{s.name} ({s.component})" for s in loaded.recipe.steps) or "no steps"
    click.echo(f"{recipe}: valid recipe {loaded.recipe.name!r}: {steps}")


@cli.command()
def schema() -> None:
    """Print the JSON Schema of recipes, including the installed plugins' parameters."""
    from fewgen.recipe import recipe_json_schema

    click.echo(json.dumps(recipe_json_schema(_registry()), indent=2))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json: bool) -> None:
    """List installed plugins, their versions and what they register."""
    plugin_commands()  # a command that clashes with a built-in is reported here too
    infos = _registry().describe()
    if as_json:
        click.echo(json.dumps([info.as_dict() for info in infos], indent=2))
        return
    if not infos:
        click.echo("no plugins installed")
    for info in infos:
        click.echo(f"{info.name} ({info.distribution or '?'} {info.version or ''})".rstrip())
        for label in ("generators", "evaluators", "formats", "cards", "benchmarks", "commands", "workloads"):
            values = getattr(info, label)
            if values:
                click.echo(f"  {label}: {', '.join(values)}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cards(as_json: bool) -> None:
    """List the dataset cards recipes can name."""
    from fewgen.cards import available_cards, load_card

    registry = _registry()
    found = [load_card(str(path), registry) for path in available_cards(registry).values()]
    if as_json:
        click.echo(json.dumps([card.model_dump(mode="json") | {"path": str(card.path)} for card in found], indent=2))
        return
    for card in found:
        click.echo(
            f"{card.name:16} {card.format:8} {card.description.strip().splitlines()[0] if card.description else ''}"
        )


def _open_cache(cache_dir: str | None):
    from fewgen.cache import StepCache

    return StepCache(Path(cache_dir)) if cache_dir else StepCache()


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _parse_amount(text: str, units: dict[str, int], what: str, example: str) -> float:
    value = text.strip().lower()
    if what == "size":
        value = value.removesuffix("ib").removesuffix("b")
    number, unit = (value[:-1], value[-1]) if value and value[-1] in units else (value, "")
    try:
        amount = float(number)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a {what} like {example}") from None
    if not 0 <= amount < float("inf"):
        raise click.BadParameter(f"{text!r} is not a {what} like {example}")
    return amount * units[unit]


def _human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


@cli.group()
def cache() -> None:
    """Inspect, check and trim the step cache."""


@cache.command("ls")
@cache_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cache_ls(cache_dir: str | None, as_json: bool) -> None:
    """List cache entries: key, what made them, size, last use."""
    store = _open_cache(cache_dir)
    infos = list(store.entries())
    if as_json:
        rows = [
            {"key": i.key, **i.meta, "bytes": i.bytes, "files": i.files, "created": i.created, "last_used": i.last_used}
            for i in infos
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    for info in sorted(infos, key=lambda i: i.last_used, reverse=True):
        what = f"{info.meta.get('kind', '?')} {info.meta.get('component') or info.meta.get('format', '')}".strip()
        used = datetime.fromtimestamp(info.last_used).strftime("%Y-%m-%d %H:%M")
        step = info.meta.get("step", "")
        click.echo(f"{info.key[:12]}  {used}  {_human_bytes(info.bytes):>10}  {what} {step}".rstrip())
    click.echo(f"{len(infos)} entries in {store.root}")


@cache.command("du")
@cache_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cache_du(cache_dir: str | None, as_json: bool) -> None:
    """Disk use of the cache, by kind of entry and in total."""
    from fewgen.cache import folder_bytes

    store = _open_cache(cache_dir)
    by_component: dict[str, int] = {}
    for info in store.entries():
        label = info.meta.get("component") or info.meta.get("kind") or "unknown"
        by_component[label] = by_component.get(label, 0) + info.bytes
    usage = {
        "entries": by_component,
        **{name: folder_bytes(store.root / name) for name in ("scratch", "tmp", "damaged", "logs")},
    }
    usage["total"] = folder_bytes(store.root)
    if as_json:
        click.echo(json.dumps(usage, indent=2, sort_keys=True))
        return
    for label, size in sorted(by_component.items(), key=lambda item: -item[1]):
        click.echo(f"{_human_bytes(size):>10}  {label}")
    for name in ("scratch", "tmp", "damaged", "logs"):
        if usage[name]:
            click.echo(f"{_human_bytes(usage[name]):>10}  ({name}/)")
    click.echo(f"{_human_bytes(usage['total']):>10}  total in {store.root}")


@cache.command("verify")
@cache_dir_option
def cache_verify(cache_dir: str | None) -> None:
    """Check every entry's files against their recorded sizes and hashes; damaged ones are set aside."""
    store = _open_cache(cache_dir)
    checked, damaged = store.verify_all()
    for key, problem, moved in damaged:
        click.echo(f"damaged {key[:12]}: {problem} (moved to {moved})")
    click.echo(f"{checked} entries checked, {len(damaged)} damaged")
    if damaged:
        sys.exit(1)


@cache.command("prune")
@cache_dir_option
@click.option("--older-than", metavar="AGE", help="Remove entries unused for AGE (e.g. 30d, 12h, 90m).")
@click.option("--max-size", metavar="SIZE", help="Then remove the least recently used until the cache is under SIZE.")
def cache_prune(cache_dir: str | None, older_than: str | None, max_size: str | None) -> None:
    """Remove cache entries by age or to fit a size; leftovers of killed runs go too."""
    if older_than is None and max_size is None:
        raise UsageError("give --older-than AGE, --max-size SIZE or both (e.g. --older-than 30d --max-size 20G)")
    age = _parse_amount(older_than, _DURATION_UNITS, "duration", "30d or 12h") if older_than else None
    size = int(_parse_amount(max_size, _SIZE_UNITS, "size", "20G or 500M")) if max_size else None
    store = _open_cache(cache_dir)
    stale = store.clean_stale_builds()
    removed = store.prune(older_than_s=age, max_bytes=size)
    freed = sum(info.bytes for info in removed)
    click.echo(f"removed {len(removed)} entries ({_human_bytes(freed)}) and {len(stale)} leftovers of killed runs")


class BenchGroup(click.Group):
    """``fewgen bench``: its commands come from plugins, loaded only when this group is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_registry().benchmarks)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        found = _registry().benchmarks.get(name)
        return found[1] if found else None


@cli.group(cls=BenchGroup)
def bench() -> None:
    """Benchmarks that plugins provide; each prints one JSON object on stdout."""


def main() -> None:
    cli(prog_name="fewgen")


if __name__ == "__main__":
    main()
