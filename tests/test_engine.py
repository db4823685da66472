from __future__ import annotations

import json
from pathlib import Path

import pytest

from fewgen.cache import StepCache
from fewgen.engine import Engine
from fewgen.errors import StepFailed, UsageError
from fewgen.recipe import load_recipe
from fewgen.testing import make_native_dataset

RECIPE = """\
name: tiny
seed: 1
dataset:
  format: fewgen
  root: data
steps:
  - name: bright
    generator: brighten
    params: {offset: 30}
  - name: stats
    evaluator: dataset_stats
output:
  format: fewgen
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    make_native_dataset(tmp_path / "data", count=8)
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    return tmp_path


def run(project: Path, registry, out: str, overrides: list[str] | None = None, **kwargs):
    loaded = load_recipe(project / "recipe.yaml", registry, overrides)
    engine = Engine(registry, cache=StepCache(project / "cache"), show_progress=False, echo=lambda _: None)
    return engine.run(loaded, project / out, **kwargs)


def test_run_writes_dataset_metrics_manifest_and_recipe(project, registry, brighten):
    result = run(project, registry, "out")
    out = project / "out"
    assert {p.name for p in out.iterdir()} == {"dataset", "metrics.json", "manifest.json", "recipe.yaml"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["name"] for s in manifest["steps"]] == ["bright", "stats"]
    assert manifest["steps"][0]["new_samples"] == 4  # the 4 training samples of 8
    assert manifest["dataset"]["synthetic"] == 4
    assert manifest["steps"][0]["params"] == {"offset": 30, "fraction": 1.0}
    assert manifest["recipe"]["resolved"]["seed"] == 1
    assert "python" in manifest["versions"] and manifest["versions"]["fewgen.stats"]["distribution"] == "fewgen"
    synthetic = [s for s in result.dataset if s.is_synthetic]
    assert all(s.split == "train" and s.provenance.step == "bright" for s in synthetic)
    assert all(s.image.is_relative_to(out) for s in result.dataset)
    metrics = json.loads((out / "metrics.json").read_text())
    groups = metrics["stats"]["groups"]
    assert groups["train/day/brighten"]["mean_brightness"] > groups["train/day/real"]["mean_brightness"]


def test_rerun_restores_every_step_from_cache_with_identical_files(project, registry, brighten):
    run(project, registry, "first")
    assert brighten.calls == 1
    result = run(project, registry, "second")
    assert brighten.calls == 1, "the generator ran again instead of being restored"
    assert all(step["timing"]["cached"] for step in result.manifest["steps"])
    for name in ("dataset/samples.jsonl", "dataset/dataset.json", "metrics.json"):
        assert (project / "first" / name).read_bytes() == (project / "second" / name).read_bytes(), name
    first_images = sorted(p.relative_to(project / "first") for p in (project / "first" / "dataset").rglob("*.png"))
    second_images = sorted(p.relative_to(project / "second") for p in (project / "second" / "dataset").rglob("*.png"))
    assert first_images == second_images and len(first_images) == 12


def test_changed_params_or_seed_miss_the_cache(project, registry, brighten):
    run(project, registry, "a")
    run(project, registry, "b", ["steps.bright.params.offset=31"])
    run(project, registry, "c", ["seed=2"])
    assert brighten.calls == 3


def test_failed_step_leaves_no_run_folder_and_rerun_resumes(project, registry, brighten, monkeypatch):
    original = brighten.generate

    def failing(self, dataset, ctx):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(brighten, "generate", failing)
    with pytest.raises(StepFailed, match=r"step 'bright' .* RuntimeError: disk on fire .*traceback in"):
        run(project, registry, "out")
    assert not (project / "out").exists()
    assert not list(project.glob(".out.partial*"))
    monkeypatch.setattr(brighten, "generate", original)
    run(project, registry, "out")
    assert (project / "out" / "manifest.json").is_file()


def test_evaluator_failure_keeps_generator_result_cached(project, registry, brighten, monkeypatch):
    from fewgen.stats import DatasetStats

    monkeypatch.setattr(DatasetStats, "evaluate", lambda self, dataset, ctx: {"bad": float("nan")})
    with pytest.raises(StepFailed, match="not plain JSON"):
        run(project, registry, "out")
    monkeypatch.undo()
    result = run(project, registry, "out")
    assert [s["timing"]["cached"] for s in result.manifest["steps"]] == [True, False]


def test_non_empty_out_dir_is_protected(project, registry, brighten):
    (project / "out").mkdir()
    (project / "out" / "precious.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not empty"):
        run(project, registry, "out")
    assert (project / "out" / "precious.txt").read_text() == "keep me"
    # --overwrite replaces only a run folder fewgen wrote (tests/test_run_folder.py has the rest).
    with pytest.raises(UsageError, match="not a fewgen run folder"):
        run(project, registry, "out", overwrite=True)
    assert (project / "out" / "precious.txt").read_text() == "keep me"


def test_corrupt_source_image_is_skipped_and_listed(project, registry, brighten):
    (project / "data" / "images" / "img2.png").write_bytes(b"\x89PNG not really")
    result = run(project, registry, "out")
    assert result.manifest["source"]["skipped"] == 1
    assert "img2.png" in result.manifest["source"]["issues"][0]["path"]
    assert result.manifest["skipped_samples"] == 1
    assert len(result.dataset) == 7 + 4


def test_missing_root_is_a_usage_error(project, registry):
    with pytest.raises(UsageError, match="dataset root not found"):
        run(project, registry, "out", ["dataset.root=nowhere"])


def test_generators_see_only_their_splits(project, registry, brighten):
    result = run(project, registry, "out", ["steps.bright.splits=[train, val]"])
    assert result.manifest["steps"][0]["new_samples"] == 6
    assert not any(s.split == "test" for s in result.dataset if s.is_synthetic)


def test_steps_chain_unless_drawing_from_real_only(project, registry, brighten):
    text = (
        (project / "recipe.yaml")
        .read_text()
        .replace("  - name: stats", "  - name: again\n    generator: brighten\n    draw_from: DRAW\n  - name: stats")
    )
    (project / "recipe.yaml").write_text(text.replace("DRAW", "all"))
    chained = run(project, registry, "chained")
    assert chained.manifest["steps"][1]["new_samples"] == 8
    (project / "recipe.yaml").write_text(text.replace("DRAW", "real"))
    real_only = run(project, registry, "real_only")
    assert real_only.manifest["steps"][1]["new_samples"] == 4
    assert all(s.provenance.parent.startswith("img") for s in real_only.dataset if s.is_synthetic)


def test_where_and_limit_select_samples_per_split(project, registry, brighten):
    result = run(project, registry, "out", ["dataset.limit={train: 2}", "dataset.where={split: [train, test]}"])
    real = [s for s in result.dataset if not s.is_synthetic]
    assert sorted(s.split for s in real) == ["test", "test", "train", "train"]
    again = run(project, registry, "again", ["dataset.limit={train: 2}", "dataset.where={split: [train, test]}"])
    assert [s.id for s in again.dataset] == [s.id for s in result.dataset]
    other_seed = run(project, registry, "other", ["dataset.limit=1", "seed=5"])
    assert sum(not s.is_synthetic for s in other_seed.dataset) == 3  # one per split


def test_a_step_where_chooses_the_samples_a_generator_draws_from(project, registry, brighten):
    everything = run(project, registry, "all")
    assert everything.manifest["steps"][0]["new_samples"] == 4
    none = run(project, registry, "none", ["steps.bright.where={domain: night}"])
    assert none.manifest["steps"][0]["new_samples"] == 0
    day = run(project, registry, "day", ["steps.bright.where={domain: [day, night], label: null}"])
    assert day.manifest["steps"][0]["new_samples"] == 4
    assert day.manifest["steps"][0]["key"] != everything.manifest["steps"][0]["key"]  # where is in the key
    with pytest.raises(UsageError, match="applies to generator steps only"):
        load_recipe(project / "recipe.yaml", registry, ["steps.stats.where={label: good}"])
    with pytest.raises(UsageError, match="can match label or domain"):
        load_recipe(project / "recipe.yaml", registry, ["steps.bright.where={split: train}"])


# --- annotations: steps writing per-sample values into the dataset ---------------------------


class _WidthLabeller:
    """An evaluator that annotates every test sample with a value computed from its image."""

    @staticmethod
    def build(bad_id: str | None = None, bad_value: object = None):
        from fewgen.api import Evaluator

        class WidthLabeller(Evaluator):
            name = "width_labeller"
            description = "Annotates test samples with their image width."

            def evaluate(self, dataset, ctx):
                for sample in dataset.split("test"):
                    ctx.annotate(sample.id, {"width": sample.width})
                    ctx.annotate(sample.id, {"even": sample.width % 2 == 0})
                if bad_id is not None:
                    ctx.annotate(bad_id, {"width": 1})
                if bad_value is not None:
                    ctx.annotate(dataset.samples[0].id, {"value": bad_value})
                return {"annotated": len(dataset.split("test"))}

        return WidthLabeller


def _labeller_registry(labeller):
    from fewgen.hookspecs import hookimpl as impl
    from fewgen.plugins import load_registry

    class Plugin:
        @impl
        def register_evaluators(self, register):
            register(labeller)

    return load_registry(extra_plugins=[Plugin()])


LABEL_RECIPE = RECIPE.replace("  - name: stats\n", "  - name: label\n    evaluator: width_labeller\n  - name: stats\n")


def test_annotations_land_in_sample_attributes_and_survive_the_cache(project):
    registry = _labeller_registry(_WidthLabeller.build())
    (project / "recipe.yaml").write_text(
        LABEL_RECIPE.replace("generator: brighten\n    params: {offset: 30}", "evaluator: dataset_stats")
    )
    result = run(project, registry, "out")
    test_samples = [s for s in result.dataset if s.split == "test"]
    assert test_samples and all(s.attributes["label"] == {"width": 64, "even": True} for s in test_samples)
    assert all("label" not in s.attributes for s in result.dataset if s.split != "test")
    manifest = json.loads((project / "out" / "manifest.json").read_text())
    assert [s["annotated"] for s in manifest["steps"]] == [0, len(test_samples), 0]
    again = run(project, registry, "again")
    assert all(
        step["timing"]["cached"] for step in json.loads((project / "again" / "manifest.json").read_text())["steps"]
    )
    assert [s.attributes for s in again.dataset] == [s.attributes for s in result.dataset]
    assert (project / "again" / "dataset" / "samples.jsonl").read_text() == (
        project / "out" / "dataset" / "samples.jsonl"
    ).read_text()


@pytest.mark.parametrize(
    ("bad_id", "bad_value", "message"),
    [("no-such-sample", None, "unknown sample ids"), (None, float("nan"), "not plain JSON")],
)
def test_bad_annotations_fail_the_step_cleanly(project, bad_id, bad_value, message):
    registry = _labeller_registry(_WidthLabeller.build(bad_id, bad_value))
    (project / "recipe.yaml").write_text(
        LABEL_RECIPE.replace("generator: brighten\n    params: {offset: 30}", "evaluator: dataset_stats")
    )
    with pytest.raises(StepFailed, match=message):
        run(project, registry, "out")
    assert not (project / "out").exists()


def test_limit_group_keeps_or_drops_whole_groups(tmp_path):
    from fewgen.dataset import Dataset, Sample
    from fewgen.engine import _limit_per_split

    samples = [
        Sample(f"board{b:02d}_{kind}", tmp_path / f"{b}{kind}.png", 8, 8, split="train", label=label)
        for b in range(10)
        for kind, label in (("test", "defective"), ("temp", "good"))
    ]
    dataset = Dataset(samples, ["x"], "boards")
    grouped = _limit_per_split(dataset, {"train": 3}, 0, r"^(.*)_(?:test|temp)$")
    boards = {s.id.split("_")[0] for s in grouped}
    assert len(grouped) == 6 and len(boards) == 3
    assert {s.label for s in grouped} == {"defective", "good"}
    # Without a group the same cap counts samples, so pairs are split.
    assert len(_limit_per_split(dataset, {"train": 3}, 0)) == 3
    # Another seed picks other boards, the same seed the same ones.
    assert _limit_per_split(dataset, {"train": 3}, 0, r"^(.*)_(?:test|temp)$").samples == grouped.samples
    other = {s.id.split("_")[0] for s in _limit_per_split(dataset, {"train": 3}, 1, r"^(.*)_(?:test|temp)$")}
    assert other != boards


def test_limit_group_must_be_a_pattern_with_a_group():
    from pydantic import ValidationError

    from fewgen.recipe import DatasetSource

    with pytest.raises(ValidationError, match="needs a group"):
        DatasetSource(card="x", limit=3, limit_group="^board")
    with pytest.raises(ValidationError, match="not a regular expression"):
        DatasetSource(card="x", limit=3, limit_group="(")
    with pytest.raises(ValidationError, match="needs a 'limit'"):
        DatasetSource(card="x", limit_group="^(.*)$")
