"""Finds plugins through the ``fewgen`` entry-point group and collects what they register.

The core imports no plugin: built-in formats and generators are entry points of their
own distributions, loaded exactly like a third party's. ``FEWGEN_LOAD_PLUGINS``
(comma-separated entry-point names; empty for none) limits which are loaded, and
``FEWGEN_TRACE_PLUGINS=1`` prints every hook call.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import pluggy

from fewgen import hookspecs
from fewgen.api import DatasetFormat, Evaluator, Generator
from fewgen.errors import UsageError, did_you_mean

ENTRY_POINT_GROUP = "fewgen"
T = TypeVar("T")


@dataclass
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    generators: list[str] = field(default_factory=list)
    evaluators: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    cards: list[str] = field(default_factory=list)
    benchmarks: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    workloads: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "generators": self.generators,
            "evaluators": self.evaluators,
            "formats": self.formats,
            "cards": self.cards,
            "benchmarks": self.benchmarks,
            "commands": self.commands,
            "workloads": self.workloads,
            "hooks": self.hooks,
        }


class Registry:
    """The plugin manager plus lookups of the generators, evaluators and formats it offers."""

    def __init__(self, pm: pluggy.PluginManager, versions: dict[str, tuple[str | None, str | None]]):
        self.pm = pm
        self._versions = versions

    # Registration hooks are called through pluggy one plugin at a time, so each class is
    # attributed to the plugin that registered it (for `fewgen plugins` and the cache key)
    # while tracing and hook options keep working.
    def _collect(self, hook_name: str, kind: str) -> dict[str, tuple[str, Any]]:
        found: dict[str, tuple[str, Any]] = {}
        article = "an" if kind[0] in "aeiou" else "a"
        plugins = [plugin for _, plugin in self.pm.list_name_plugin() if plugin is not None]
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            others = [plugin for plugin in plugins if plugin is not impl.plugin]

            def register(item: Any, _plugin: str = impl.plugin_name) -> None:
                if kind not in ("card folder", "benchmark", "command") and not isinstance(item, type):
                    raise TypeError(
                        f"plugin {_plugin!r} registered an instance, not a class, as {article} {kind}: {item!r}"
                    )
                key = str(item) if kind == "card folder" else item.name
                if key in found and found[key][0] != _plugin:
                    raise UsageError(f"{kind} {key!r} is registered by both {found[key][0]!r} and {_plugin!r}")
                found[key] = (_plugin, item)

            self.pm.subset_hook_caller(hook_name, remove_plugins=others)(register=register)
        return found

    @cached_property
    def generators(self) -> dict[str, tuple[str, type[Generator]]]:
        return self._collect("register_generators", "generator")

    @cached_property
    def evaluators(self) -> dict[str, tuple[str, type[Evaluator]]]:
        return self._collect("register_evaluators", "evaluator")

    @cached_property
    def formats(self) -> dict[str, tuple[str, type[DatasetFormat]]]:
        return self._collect("register_dataset_formats", "dataset format")

    @cached_property
    def card_folders(self) -> dict[str, tuple[str, Path]]:
        return self._collect("register_dataset_cards", "card folder")

    @cached_property
    def benchmarks(self) -> dict[str, tuple[str, Any]]:
        return self._collect("register_benchmarks", "benchmark")

    @cached_property
    def commands(self) -> dict[str, tuple[str, Any]]:
        return self._collect("register_commands", "command")

    @cached_property
    def workloads(self) -> dict[str, tuple[str, Any]]:
        return self._collect("register_workloads", "workload")

    def generator(self, name: str) -> type[Generator]:
        return self._lookup(self.generators, name, "generator")[1]

    def evaluator(self, name: str) -> type[Evaluator]:
        return self._lookup(self.evaluators, name, "evaluator")[1]

    def dataset_format(self, name: str) -> type[DatasetFormat]:
        return self._lookup(self.formats, name, "dataset format")[1]

    def plugin_version(self, component_table: dict[str, tuple[str, Any]], name: str) -> str:
        plugin = component_table[name][0]
        return self._versions.get(plugin, (None, None))[1] or "unversioned"

    def plugin_source_hash(self, plugin_name: str) -> str | None:
        """Hash of the plugin's source code when it is installed from a source folder (see fewgen.provenance)."""
        from fewgen.provenance import source_hash

        plugin = self.pm.get_plugin(plugin_name)
        module = getattr(plugin, "__name__", None) or getattr(plugin, "__module__", None)
        distribution = self._versions.get(plugin_name, (None, None))[0]
        return source_hash(distribution, module) if module else None

    @staticmethod
    def _lookup(table: dict[str, tuple[str, T]], name: str, kind: str) -> tuple[str, T]:
        if name not in table:
            known = f"available: {', '.join(sorted(table))}" if table else f"no {kind} is installed"
            raise UsageError(f"unknown {kind} {name!r}{did_you_mean(name, table)} ({known})")
        return table[name]

    def describe(self) -> list[PluginInfo]:
        infos: dict[str, PluginInfo] = {}
        for plugin_name, plugin in self.pm.list_name_plugin():
            if plugin_name == "fewgen.hookspecs" or plugin is None:
                continue
            dist, version = self._versions.get(plugin_name, (None, None))
            hooks = sorted(c.name for c in self.pm.get_hookcallers(plugin) or [])
            infos[plugin_name] = PluginInfo(plugin_name, dist, version, hooks=hooks)
        for table, attr in (
            (self.generators, "generators"),
            (self.evaluators, "evaluators"),
            (self.formats, "formats"),
            (self.card_folders, "cards"),
            (self.benchmarks, "benchmarks"),
            (self.commands, "commands"),
            (self.workloads, "workloads"),
        ):
            for key, (plugin_name, _) in sorted(table.items()):
                getattr(infos[plugin_name], attr).append(key)
        return sorted(infos.values(), key=lambda info: info.name)


def _allowed_plugins() -> set[str] | None:
    value = os.environ.get("FEWGEN_LOAD_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def load_registry(extra_plugins: list[object] | None = None) -> Registry:
    """Load the entry-point plugins (filtered by ``FEWGEN_LOAD_PLUGINS``) and validate hook names."""
    pm = pluggy.PluginManager("fewgen")
    pm.add_hookspecs(hookspecs)
    versions: dict[str, tuple[str | None, str | None]] = {}
    allowed = _allowed_plugins()
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        # A broken third-party plugin is reported and left out; it must not take the CLI down.
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
            _check_hook_names(pm, module)
        except Exception as exc:
            if pm.get_plugin(ep.name) is not None:
                pm.unregister(name=ep.name)
            print(f"fewgen: plugin {ep.name!r} not loaded: {exc}", file=sys.stderr)
            continue
        versions[ep.name] = (ep.dist.name, ep.dist.version) if ep.dist else (None, None)
    try:
        for plugin in extra_plugins or []:
            # Named by its class, not by pluggy's default (its id()), so the plugin named in a
            # step's cache key is the same in every registry that holds it.
            name = f"{type(plugin).__module__}.{type(plugin).__qualname__}"
            pm.register(plugin, name=None if pm.has_plugin(name) else name)
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise UsageError(f"invalid plugin: {exc}") from None
    if os.environ.get("FEWGEN_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda text: print(text, end="", file=sys.stderr))
        pm.enable_tracing()
    return Registry(pm, versions)


def _check_hook_names(pm: pluggy.PluginManager, plugin: object) -> None:
    """``check_pending`` for one plugin, naming the closest real hook."""
    for caller in pm.get_hookcallers(plugin) or []:
        if not caller.has_spec():
            hooks = [name for name in dir(hookspecs) if name.startswith(("register_", "before_", "after_", "on_"))]
            raise pluggy.PluginValidationError(
                plugin, f"implements unknown hook {caller.name!r}{did_you_mean(caller.name, hooks)}"
            )


_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _registry
    if _registry is None:
        _registry = load_registry()
    return _registry


def reset_registry(registry: Registry | None = None) -> None:
    """Replace the process-wide registry (tests use this to inject inline plugins)."""
    global _registry
    _registry = registry
