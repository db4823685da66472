"""Runs a recipe: load the source dataset, run each step (or restore it from the cache), export.

Every step is a pure function of its input dataset, its plugin (and version), its
parameters and its seed, so its output is stored under a hash of those. The run folder
is built beside its final name and renamed into place at the end: a folder with a
``manifest.json`` is always a complete run.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import random
import re
import shutil
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from fewgen import __version__
from fewgen.api import DatasetFormat, Params, StepContext
from fewgen.cache import StepCache, content_key
from fewgen.cards import SplitRule, assign_splits
from fewgen.dataset import SPLITS, Dataset, Sample
from fewgen.errors import StepFailed, UsageError
from fewgen.fingerprint import tree_fingerprint
from fewgen.imageio import max_image_pixels
from fewgen.paths import params_inputs_fingerprint
from fewgen.plugins import Registry
from fewgen.provenance import library_versions, source_hash
from fewgen.recipe import LoadedRecipe, Step
from fewgen.rundir import RUN_KIND, check_target, recover, run_lock, swap_into_place
from fewgen.threads import apply_threads, resolve_threads

log = logging.getLogger("fewgen")

# Bumped when the engine changes how step outputs are stored, so old entries are not reused.
CACHE_FORMAT = 4


@dataclass
class StepRecord:
    name: str
    kind: str
    component: str
    plugin: str
    version: str
    seed: int
    key: str
    params: dict[str, Any]
    new_samples: int = 0
    annotated: int = 0
    device: str | None = None
    threads: int | None = None
    issues: list[dict[str, str]] = field(default_factory=list)
    files_read: list[dict[str, Any]] = field(default_factory=list)
    cached: bool = False
    seconds: float = 0.0
    # Timings an evaluator reported with its metrics; kept here so metrics.json holds results only.
    reported_timings: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    out_dir: Path
    dataset: Dataset
    metrics: dict[str, Any]
    manifest: dict[str, Any]


def resolve_device(requested: str) -> str:
    """'auto' means CUDA when torch sees a GPU, else CPU; an explicit CUDA request must be satisfiable."""
    if requested == "cpu":
        return "cpu"
    try:
        import torch
    except ImportError:
        if requested == "auto":
            return "cpu"
        raise UsageError(f"device {requested!r} needs PyTorch, which is not installed") from None
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {requested!r} was requested but no CUDA GPU is available")
    return requested


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and, if a plugin imported it, torch before a step runs.

    torch is not imported here (seconds of start-up for steps that never use it); plugins
    that import it inside their methods call ``ctx.seed_torch()``.
    """
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def derive_seed(master: int, step_name: str) -> int:
    digest = hashlib.sha256(f"{master}:{step_name}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class Engine:
    def __init__(
        self,
        registry: Registry,
        cache: StepCache | None = None,
        device: str | None = None,
        show_progress: bool = True,
        echo: Any = None,
    ):
        self.registry = registry
        self.cache = cache or StepCache()
        self.requested_device = device
        self.show_progress = show_progress
        self.echo = echo or (lambda message: print(message, file=sys.stderr))
        self._device: str | None = None

    # --- source ------------------------------------------------------------------------

    def _source(self, loaded: LoadedRecipe) -> tuple[type[DatasetFormat], Params, Path, list[SplitRule] | None, dict]:
        # Loading the recipe validated the format, its options and the root (fewgen validate sees the same).
        spec, card = loaded.recipe.dataset, loaded.card
        format_name, options, root = loaded.source_format, loaded.source_options, loaded.source_root
        assert options is not None and root is not None
        fmt = self.registry.dataset_format(format_name)
        if not root.is_dir():  # it may have gone since the recipe was loaded
            raise UsageError(f"dataset root not found: {root}")
        describe = {
            "card": card.name if card else None,
            "format": format_name,
            "root": str(root),
            "options": options.model_dump(mode="json"),
            "domain": spec.domain or (card.domain if card else None),
        }
        return fmt, options, root, card.splits if card else None, describe

    def load_source(self, loaded: LoadedRecipe) -> tuple[Dataset, str, dict[str, Any]]:
        fmt, options, root, splits, describe = self._source(loaded)
        recipe = loaded.recipe
        key = content_key(
            {
                "engine": CACHE_FORMAT,
                "kind": "load",
                "format": describe["format"],
                "format_version": self.registry.plugin_version(self.registry.formats, describe["format"]),
                "code": self._code_key(self.registry.formats[describe["format"]][0]),
                "max_image_pixels": max_image_pixels(),  # decides which images a reader skips
                "options": describe["options"],
                "root": describe["root"],
                "files": tree_fingerprint(root),
                "splits": [rule.model_dump() for rule in splits] if splits else None,
                "where": recipe.dataset.where,
                "limit": recipe.dataset.limit,
                "limit_group": recipe.dataset.limit_group,
                "domain": describe["domain"],
                "seed": recipe.seed,
            }
        )
        started = time.perf_counter()
        cached = self.cache.has(key)
        if not cached:
            self.echo(f"reading {describe['format']} dataset from {root} ...")
            with self.cache.build(key, {"kind": "load", "format": describe["format"], "root": str(root)}) as tmp:
                result = fmt().read(root, options)
                dataset = result.dataset
                if describe["domain"]:
                    dataset = dataset.with_samples(s.derive(domain=s.domain or describe["domain"]) for s in dataset)
                if splits:
                    dataset = assign_splits(dataset, splits, recipe.seed)
                if recipe.dataset.where:
                    dataset = _select(dataset, recipe.dataset.where)
                if recipe.dataset.limit:
                    dataset = _limit_per_split(dataset, recipe.dataset.limit, recipe.seed, recipe.dataset.limit_group)
                if not dataset.samples:
                    raise UsageError(f"no usable samples in {root} (format {describe['format']!r})")
                dataset.save(tmp / "dataset")
                _write_json(tmp / "issues.json", [asdict(issue) for issue in result.issues])
        entry = self.cache.entry(key)
        dataset = Dataset.load(entry / "dataset")
        issues = json.loads((entry / "issues.json").read_text())
        describe.update(
            key=key,
            samples=len(dataset),
            skipped=len(issues),
            issues=issues,
            timing={"cached": cached, "seconds": round(time.perf_counter() - started, 3)},
        )
        if issues:
            self.echo(f"skipped {len(issues)} unusable samples (listed in manifest.json)")
        return dataset, key, describe

    # --- steps -------------------------------------------------------------------------

    def _code_key(self, plugin_name: str) -> dict[str, Any]:
        """What else decides a step's result: library versions and, for source installs, the code itself."""
        return {
            "core": source_hash("fewgen", "fewgen"),
            "plugin": self.registry.plugin_source_hash(plugin_name),
            "libraries": library_versions(),
        }

    def device(self, requested: str) -> str:
        if self._device is None:
            self._device = resolve_device(self.requested_device or requested)
        return self._device

    def run_step(
        self, loaded: LoadedRecipe, index: int, dataset: Dataset, input_key: str
    ) -> tuple[Dataset, str, dict[str, Any], StepRecord, Path]:
        step: Step = loaded.recipe.steps[index]
        params = loaded.step_params[index]
        table = self.registry.generators if step.kind == "generator" else self.registry.evaluators
        plugin_name, component_cls = table[step.component]
        version = self.registry.plugin_version(table, step.component)
        seed = step.seed if step.seed is not None else derive_seed(loaded.recipe.seed, step.name or "")
        params_json = params.model_dump(mode="json")
        key = content_key(
            {
                "engine": CACHE_FORMAT,
                "kind": step.kind,
                "component": step.component,
                "plugin": plugin_name,
                "version": version,
                "code": self._code_key(plugin_name),
                "params": params_json,
                # What the files and folders the parameters name hold (fewgen.paths): editing them
                # must recompute the step, though its parameters read the same.
                "inputs": params_inputs_fingerprint(params),
                "seed": seed,
                "splits": step.splits if step.kind == "generator" else None,
                "draw_from": step.draw_from if step.kind == "generator" else None,
                "where": step.where if step.kind == "generator" else None,
                "input": input_key,
            }
        )
        record = StepRecord(step.name or "", step.kind, step.component, plugin_name, version, seed, key, params_json)
        entry = self.cache.entry(key)
        ctx = StepContext(
            step=record.name,
            seed=seed,
            work_dir=entry / "files",
            device="unresolved",
            log=logging.getLogger(f"fewgen.{record.name}"),
            show_progress=self.show_progress,
            scratch_dir=self.cache.scratch(key),
        )
        record.cached = self.cache.has(key)
        hook = self.registry.pm.hook
        hook.before_step(step=ctx, kind=step.kind, component=step.component, params=params_json, cached=record.cached)
        started = time.perf_counter()
        if not record.cached:
            ctx.device = self.device(loaded.recipe.device)
            try:
                meta = {"kind": step.kind, "component": step.component, "step": record.name, "plugin": plugin_name}
                with self.cache.build(key, meta) as tmp:
                    ctx.work_dir = tmp / "files"
                    ctx.work_dir.mkdir()
                    ctx.scratch_dir.mkdir(parents=True, exist_ok=True)
                    ctx.threads = resolve_threads(step.threads if step.threads is not None else loaded.recipe.threads)
                    apply_threads(ctx.threads)
                    seed_everything(seed)
                    component = component_cls(params)
                    if step.kind == "generator":
                        chosen = dataset.with_samples(
                            s
                            for s in dataset
                            if s.split in step.splits and (step.draw_from == "all" or not s.is_synthetic)
                        )
                        if step.where:
                            chosen = _select(chosen, step.where)
                        if component_cls.learns:
                            component.fit(chosen, ctx)
                        new = _check_new_samples(list(component.generate(chosen, ctx)), dataset, ctx, record.name)
                        # Saved at the entry's top so paths into files/ stay relative and survive the rename.
                        Dataset(new, dataset.classes, dataset.name).save(tmp)
                    else:
                        metrics = component.evaluate(dataset, ctx)
                        _write_json(tmp / "metrics.json", _json_ready(metrics, record.name))
                    _write_json(tmp / "annotations.json", _check_annotations(ctx.annotations, dataset, record.name))
                    # The device is part of the result's provenance: a restored step reports the one it ran on.
                    _write_json(
                        tmp / "step.json",
                        {
                            "device": ctx.device,
                            "threads": ctx.threads,
                            "issues": [asdict(i) for i in ctx.issues],
                            "files_read": ctx.files_read,
                        },
                    )
            except UsageError:
                raise
            except BaseException as exc:
                hook.on_step_error(step=ctx, kind=step.kind, component=step.component, error=exc)
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                raise StepFailed(self._failure(record, exc)) from exc
        metrics: dict[str, Any] = {}
        annotations = json.loads((entry / "annotations.json").read_text())
        record.annotated = len(annotations)
        if annotations:
            dataset = _annotate(dataset, annotations, record.name)
        if step.kind == "generator":
            new_samples = Dataset.load(entry).samples
            record.new_samples = len(new_samples)
            output = dataset.with_samples([*dataset.samples, *new_samples])
            output_key = key
        else:
            metrics, record.reported_timings = split_timings(json.loads((entry / "metrics.json").read_text()))
            # An evaluator that annotated samples changed the dataset; one that did not passes it on.
            output, output_key = dataset, key if annotations else input_key
        stored = json.loads((entry / "step.json").read_text())
        record.issues, record.device = stored["issues"], stored["device"]
        record.threads, record.files_read = stored.get("threads"), stored.get("files_read", [])
        record.seconds = round(time.perf_counter() - started, 3)
        hook.after_step(step=ctx, kind=step.kind, component=step.component, dataset=output, metrics=metrics)
        return output, output_key, metrics, record, entry / "files"

    def _failure(self, record: StepRecord, exc: BaseException) -> str:
        return (
            f"step {record.name!r} ({record.kind} {record.component!r}) failed: {type(exc).__name__}: {exc}"
            f" (traceback in {self._write_traceback(record.name, exc)})"
        )

    def _write_traceback(self, label: str, exc: BaseException) -> Path:
        log_dir = self.cache.root / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{label}.log"
        log_path.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
        return log_path

    def _after_run(self, out_dir: Path, manifest: dict[str, Any], metrics: dict[str, Any]) -> None:
        """Call ``after_run`` on the complete run folder; what plugins return goes into ``manifest.json``.

        Their values describe this run (an export's dataset name, its time), not a result, so
        they stay out of ``metrics.json``, which a cached rerun reproduces byte for byte.
        """
        try:
            results = self.registry.pm.hook.after_run(run_dir=out_dir, manifest=manifest, metrics=metrics)
            added = [item for result in results if result for item in result.items()]
            for step, values in added:
                if step not in metrics:
                    raise RuntimeError(f"after_run returned values for {step!r}, which is no evaluator step of the run")
                reported = manifest.setdefault("after_run", {})
                reported[step] = {**reported.get(step, {}), **_json_ready(values, step)}
        except UsageError:
            raise
        except Exception as exc:
            log_path = self._write_traceback("after_run", exc)
            raise StepFailed(
                f"after_run failed: {type(exc).__name__}: {exc} (traceback in {log_path};"
                f" the run folder {out_dir} is complete)"
            ) from exc
        if added:
            _write_json(out_dir / "manifest.json", manifest)

    # --- the whole run -----------------------------------------------------------------

    def protected_folders(self, loaded: LoadedRecipe) -> list[tuple[str, Path]]:
        """Folders no run may replace or contain, whatever ``--out`` says."""
        folders = [("the recipe's folder", loaded.base_dir), ("the step cache", self.cache.root)]
        with contextlib.suppress(UsageError):  # no dataset root: reading the source says so in its own words
            folders.insert(0, ("the dataset", self._source(loaded)[2]))
        return [*folders, ("the home folder", Path.home()), ("the root folder", Path("/"))]

    def run(self, loaded: LoadedRecipe, out_dir: Path, overwrite: bool = False) -> RunResult:
        out_dir = out_dir.resolve()
        protected = self.protected_folders(loaded)
        check_target(out_dir, overwrite, protected)
        with run_lock(out_dir):
            if recover(out_dir) is not None:
                self.echo(f"put back the previous run at {out_dir} (an earlier run was killed while replacing it)")
            check_target(out_dir, overwrite, protected)  # again under the lock: another run may have finished
            self.cache.clean_stale_builds()
            return self._run_locked(loaded, out_dir)

    def _run_locked(self, loaded: LoadedRecipe, out_dir: Path) -> RunResult:
        recipe = loaded.recipe
        if (self.requested_device or recipe.device) != "auto":
            self.device(recipe.device)  # an impossible explicit device fails now, not after hours of work
        output_format = self.registry.dataset_format(recipe.output.format)
        output_options = loaded.validate(output_format.write_options(), recipe.output.options, ("output", "options"))
        started_at = datetime.now(UTC)
        started = time.perf_counter()

        dataset, key, source = self.load_source(loaded)
        records: list[StepRecord] = []
        metrics: dict[str, Any] = {}
        reports: dict[str, Path] = {}
        total = len(recipe.steps)
        for index, step in enumerate(recipe.steps):
            self.echo(f"[{index + 1}/{total}] {step.name}: {step.kind} {step.component} ...")
            dataset, key, step_metrics, record, files = self.run_step(loaded, index, dataset, key)
            records.append(record)
            if step.kind == "evaluator":
                metrics[record.name] = step_metrics
                reports[record.name] = files
            outcome = "restored from cache" if record.cached else f"done in {record.seconds:.1f} s"
            extra = f", {record.new_samples} new samples" if step.kind == "generator" else ""
            extra += f", {record.annotated} samples annotated" if record.annotated else ""
            skipped = f", {len(record.issues)} skipped" if record.issues else ""
            self.echo(f"[{index + 1}/{total}] {step.name}: {outcome}{extra}{skipped}")

        tmp_out = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
        shutil.rmtree(tmp_out, ignore_errors=True)
        tmp_out.mkdir(parents=True)
        try:
            self.echo(f"writing {len(dataset)} samples ({recipe.output.format}) ...")
            exported = output_format().write(dataset, tmp_out / "dataset", output_options)
            if not (tmp_out / "dataset" / "samples.jsonl").exists():
                exported.save(tmp_out / "dataset")
            for name, files in reports.items():
                if files.is_dir() and any(files.iterdir()):
                    shutil.copytree(files, tmp_out / "reports" / name)
            _write_json(tmp_out / "metrics.json", metrics)
            (tmp_out / "recipe.yaml").write_text(
                yaml.safe_dump(loaded.resolved(), sort_keys=False, allow_unicode=True), encoding="utf-8"
            )
            manifest = self._manifest(loaded, source, records, dataset, started_at, time.perf_counter() - started)
            _write_json(tmp_out / "manifest.json", manifest)
            swap_into_place(tmp_out, out_dir)
        except BaseException:
            shutil.rmtree(tmp_out, ignore_errors=True)
            raise
        # Plugins that act on the finished run (an export, a notification) are called only once it is complete.
        self._after_run(out_dir, manifest, metrics)
        # Reloaded so the returned paths point into the final folder, not the temporary one.
        return RunResult(out_dir, Dataset.load(out_dir / "dataset"), metrics, manifest)

    def _manifest(
        self,
        loaded: LoadedRecipe,
        source: dict[str, Any],
        records: list[StepRecord],
        dataset: Dataset,
        started_at: datetime,
        seconds: float,
    ) -> dict[str, Any]:
        steps = []
        for record in records:
            item = asdict(record)
            item["timing"] = {"cached": item.pop("cached"), "seconds": item.pop("seconds")}
            reported = item.pop("reported_timings")
            if reported:
                item["timing"]["reported"] = reported
            steps.append(item)
        return {
            "kind": RUN_KIND,
            "fewgen": __version__,
            "recipe": {"path": str(loaded.path), "resolved": loaded.resolved()},
            "seed": loaded.recipe.seed,
            "device": self.requested_device or loaded.recipe.device,
            "source": source,
            "steps": steps,
            "dataset": dataset.summary(),
            "skipped_samples": source["skipped"] + sum(len(r.issues) for r in records),
            "versions": _versions(self.registry),
            "timing": {"started": started_at.isoformat(timespec="seconds"), "seconds": round(seconds, 3)},
        }


def _versions(registry: Registry) -> dict[str, Any]:
    uname = platform.uname()  # platform.platform() reads the libc version from disk: slow for a manifest line
    versions: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": f"{uname.system}-{uname.release}-{uname.machine}",
    }
    for info in registry.describe():
        versions[info.name] = {"distribution": info.distribution, "version": info.version}
    for package in ("numpy", "pillow", "torch", "torchvision", "albumentations", "ultralytics", "fiftyone"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _select(dataset: Dataset, where: dict[str, Any]) -> Dataset:
    """The samples whose fields (label, domain, split) are the given value or one of the given list."""
    wanted = {key: {value} if value is None or isinstance(value, str) else set(value) for key, value in where.items()}
    return dataset.with_samples(s for s in dataset if all(getattr(s, k) in v for k, v in wanted.items()))


def _limit_per_split(
    dataset: Dataset, limit: int | dict[str, int], seed: int, group_pattern: str | None = None
) -> Dataset:
    """At most ``limit`` samples (or groups of samples) per split, picked in a seeded hash order (not
    the first N, which would take one folder of a sorted layout), kept in their original order.

    With ``group_pattern``, samples whose ids give the same first group count once and are kept
    or dropped together (an id that does not match is a group of its own).
    """
    pattern = re.compile(group_pattern) if group_pattern else None

    def group_of(sample: Sample) -> str:
        found = pattern.match(sample.id) if pattern else None
        return found.group(1) if found else sample.id

    by_split: dict[str, dict[str, list[Sample]]] = {}
    for sample in dataset:
        by_split.setdefault(sample.split, {}).setdefault(group_of(sample), []).append(sample)
    kept: set[str] = set()
    for split, groups in by_split.items():
        cap = limit.get(split) if isinstance(limit, dict) else limit
        ordered = sorted(groups, key=lambda key: hashlib.sha256(f"{seed}:{key}".encode()).hexdigest())
        for key in ordered if cap is None else ordered[:cap]:
            kept.update(s.id for s in groups[key])
    return dataset.with_samples(s for s in dataset if s.id in kept)


def _check_new_samples(new: list[Sample], dataset: Dataset, ctx: StepContext, step: str) -> list[Sample]:
    """Generators are plugins: check the contract before their output enters the cache."""
    existing = {s.id for s in dataset}
    seen: set[str] = set()
    for sample in new:
        if sample.id in existing or sample.id in seen:
            raise RuntimeError(f"generated sample id {sample.id!r} is not unique")
        seen.add(sample.id)
        for path in (sample.image, sample.mask):
            if path is not None and not Path(path).resolve().is_relative_to(ctx.work_dir.resolve()):
                raise RuntimeError(f"generated file {path} is outside the step's work folder")
            if path is not None and not Path(path).is_file():
                raise RuntimeError(f"generated file {path} does not exist")
        if sample.provenance is None:
            raise RuntimeError(f"generated sample {sample.id!r} has no provenance")
        if sample.split not in SPLITS:  # a split names a folder of the exported dataset
            raise RuntimeError(f"generated sample {sample.id!r} has split {sample.split!r}, not one of {SPLITS}")
    return new


def _check_annotations(
    annotations: dict[str, dict[str, Any]], dataset: Dataset, step: str
) -> dict[str, dict[str, Any]]:
    """Annotations must name samples the step was given and hold plain JSON."""
    known = {s.id for s in dataset}
    unknown = sorted(set(annotations) - known)
    if unknown:
        raise RuntimeError(f"step {step!r} annotated {len(unknown)} unknown sample ids, e.g. {unknown[0]!r}")
    try:
        json.dumps(annotations, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RuntimeError(f"step {step!r} annotated samples with values that are not plain JSON: {exc}") from None
    return annotations


def _annotate(dataset: Dataset, annotations: dict[str, dict[str, Any]], step: str) -> Dataset:
    return dataset.with_samples(
        s.derive(attributes={**s.attributes, step: annotations[s.id]}) if s.id in annotations else s for s in dataset
    )


def _json_ready(metrics: Any, step: str) -> Any:
    try:
        json.dumps(metrics, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise RuntimeError(f"evaluator of step {step!r} returned metrics that are not plain JSON: {exc}") from None
    return metrics


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def is_timing_key(name: str) -> bool:
    """Keys that hold how long something took, not what it measured: they vary from run to run."""
    return name in ("seconds", "timing", "timings") or name.endswith(("_seconds", "per_second", "_per_sec"))


def split_timings(metrics: Any) -> tuple[Any, Any]:
    """(metrics without timing keys, the timing values alone in the same nesting).

    Evaluators may report timings beside their results; the engine moves them to the step's
    record in ``manifest.json`` so ``metrics.json`` is the same on an idle and a busy machine.
    """
    if isinstance(metrics, dict):
        kept, timings = {}, {}
        for name, value in metrics.items():
            if is_timing_key(str(name)):
                timings[name] = value
                continue
            kept[name], nested = split_timings(value)
            if nested:
                timings[name] = nested
        return kept, timings
    if isinstance(metrics, list):
        pairs = [split_timings(item) for item in metrics]
        timings = [nested for _, nested in pairs]
        return [item for item, _ in pairs], timings if any(timings) else []
    return metrics, {}
