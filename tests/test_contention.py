"""``fewgen bench contention`` and the ``register_workloads`` hook, on a tiny inline workload."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from fewgen import contention, contention_plugin
from fewgen.cli import cli
from fewgen.contention import TARGET_SLOWDOWN, Workload
from fewgen.hookspecs import hookimpl
from fewgen.plugins import Registry, load_registry, reset_registry


class SpinWorkload(Workload):
    name = "spin"
    description = "a few milliseconds of pure Python"
    folders: ClassVar[list[Path]] = []
    runs = 0

    def setup(self, folder: Path) -> None:
        (folder / "data.txt").write_text("made in setup")
        type(self).folders.append(folder)

    def run(self) -> None:
        type(self).runs += 1
        sum(range(20_000))


class FailingWorkload(SpinWorkload):
    name = "fails-when-loaded"

    def run(self) -> None:
        super().run()
        if type(self).runs > 2:  # the warm-up and one idle run pass, the loaded run fails
            raise RuntimeError("broken workload")


class WorkloadPlugin:
    def __init__(self, *workloads: type[Workload]) -> None:
        self.workloads = workloads

    @hookimpl
    def register_workloads(self, register: Callable[[type[Workload]], None]) -> None:
        for workload in self.workloads:
            register(workload)


@pytest.fixture
def use_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Registry]]:
    """The CLI's registry: the core's contention benchmark and the given inline plugins, nothing installed."""
    monkeypatch.setenv("FEWGEN_LOAD_PLUGINS", "")
    monkeypatch.setattr(contention, "BUSY_SETTLE_SECONDS", 0.1)
    SpinWorkload.runs = FailingWorkload.runs = 0
    SpinWorkload.folders.clear()

    def install(*plugins: object) -> Registry:
        registry = load_registry(extra_plugins=[contention_plugin, *plugins])
        reset_registry(registry)
        return registry

    yield install
    reset_registry(None)


@pytest.fixture
def busy_children(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[Any]]:
    """Every process the benchmark starts."""
    started: list[subprocess.Popen[Any]] = []
    real_popen = subprocess.Popen

    def recording(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        child = real_popen(*args, **kwargs)
        started.append(child)
        return child

    monkeypatch.setattr(contention.subprocess, "Popen", recording)
    return started


def test_bench_times_each_workload_idle_and_loaded_and_kills_the_busy_process(
    use_plugins: Callable[..., Registry], busy_children: list[subprocess.Popen[Any]]
) -> None:
    use_plugins(WorkloadPlugin(SpinWorkload))
    result = CliRunner().invoke(cli, ["bench", "contention", "--json", "--repeats", "2"])
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.stdout)
    assert set(envelope) == {"benchmark", "settings", "machine", "figures", "target", "met"}
    assert envelope["benchmark"] == "contention" and envelope["target"] == {"slowdown_at_most": TARGET_SLOWDOWN}
    assert envelope["settings"]["repeats"] == 2 and isinstance(envelope["met"], bool)
    report = envelope["figures"]
    assert set(report) >= {"usable_cpus", "busy_process", "workloads"}
    entry = report["workloads"]["spin"]
    assert set(entry) >= {
        "idle_seconds",
        "loaded_seconds",
        "slowdown",
        "idle_threads",
        "loaded_threads",
        "default_threads",
        "default_loaded_seconds",
        "default_slowdown",
        "plugin",
        "description",
    }
    assert entry["description"] == SpinWorkload.description
    assert [len(entry["runs"][c]) for c in ("idle", "loaded", "default_loaded")] == [2, 2, 2]
    assert SpinWorkload.runs == 1 + 3 * 2  # one untimed warm-up, then two runs per condition
    assert entry["slowdown"] == round(entry["loaded_seconds"] / entry["idle_seconds"], 2)
    assert 1 <= entry["loaded_threads"] <= entry["idle_threads"] <= report["usable_cpus"]
    assert entry["default_threads"] == report["usable_cpus"]
    # The busy process was started once, is the one reported, and is gone.
    (child,) = busy_children
    assert report["busy_process"]["pid"] == child.pid
    assert child.returncode is not None and not Path(f"/proc/{child.pid}").exists()
    # Its set-up folder is removed too.
    assert SpinWorkload.folders and not any(folder.exists() for folder in SpinWorkload.folders)


def test_the_busy_process_is_killed_when_a_workload_fails(
    use_plugins: Callable[..., Registry], busy_children: list[subprocess.Popen[Any]]
) -> None:
    use_plugins(WorkloadPlugin(FailingWorkload))
    result = CliRunner().invoke(cli, ["bench", "contention", "--json", "--repeats", "1", "--no-contrast"])
    assert isinstance(result.exception, RuntimeError)
    (child,) = busy_children
    assert child.returncode is not None


def test_workloads_can_be_chosen_and_unknown_ones_are_named(
    use_plugins: Callable[..., Registry], busy_children: list[subprocess.Popen[Any]]
) -> None:
    use_plugins(WorkloadPlugin(SpinWorkload, FailingWorkload))
    result = CliRunner().invoke(
        cli, ["bench", "contention", "--json", "--repeats", "1", "--no-contrast", "--workload", "spin"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["figures"]
    assert list(report["workloads"]) == ["spin"]
    assert "default_loaded_seconds" not in report["workloads"]["spin"]
    result = CliRunner().invoke(cli, ["bench", "contention", "--workload", "spinn"])
    assert result.exit_code == 2
    assert "unknown workload 'spinn'" in result.output and "fails-when-loaded, spin" in result.output


def test_without_workloads_the_bench_says_so(use_plugins: Callable[..., Registry]) -> None:
    use_plugins()
    result = CliRunner().invoke(cli, ["bench", "contention"])
    assert result.exit_code == 2
    assert "no plugin registers a workload" in result.output


def test_register_workloads_wants_classes(use_plugins: Callable[..., Registry]) -> None:
    class InstancePlugin:
        @hookimpl
        def register_workloads(self, register: Callable[[Any], None]) -> None:
            register(SpinWorkload())

    use_plugins(InstancePlugin())
    result = CliRunner().invoke(cli, ["bench", "contention"])
    assert isinstance(result.exception, TypeError)
    assert "not a class, as a workload" in str(result.exception)
