"""The recipe steps on a tiny rendered defect-types dataset: the few-shot evaluator and the adapter."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fewgen.cli import cli
from fewgen.testing import run_recipe
from fewgen.verdicts import VERDICTS

REPOSITORY = Path(__file__).resolve().parents[3]

RECIPE = """\
name: tiny_fewshot
seed: 3
dataset:
  card: defect_types_sample
  root: {root}
steps:
  - name: fewshot
    evaluator: fewshot
    params:
      novel_classes: ["hatch/*"]
      ways: 3
      shots: 1
      queries: 2
      size: 16
      meta_steps: 4
      meta_batch_size: 2
      pretrain_steps: 3
      finetune_steps: 2
      tasks: 6
      validation_tasks: 2
      validation_share: 0.4
  - name: label
    evaluator: maml_adapter
    params:
      novel_classes: ["hatch/*"]
      shots: 2
      queries: 1
      size: 16
      meta_steps: 3
      meta_batch_size: 2
output:
  format: fewgen
"""


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three families of three kinds, six images a kind (4 train, 2 test by the card)."""
    spec = importlib.util.spec_from_file_location("renderer", REPOSITORY / "datasets" / "make_defect_types_sample.py")
    assert spec is not None and spec.loader is not None
    renderer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(renderer)
    root = tmp_path_factory.mktemp("defects")
    renderer.render_defect_types_sample(root, seed=1, size=32, families=["dent", "ring", "hatch"], kinds=3, per_kind=6)
    return root


def run(tmp_path: Path, root: Path, recipe: str = RECIPE):
    return run_recipe(tmp_path, recipe.format(root=root))


def test_evaluator_and_adapter_report_and_label(tmp_path: Path, tiny_root: Path) -> None:
    result = run(tmp_path, tiny_root)
    report = result.metrics["fewshot"]
    assert report["ways"] == 3 and report["chance"] == pytest.approx(1 / 3, abs=1e-4)
    # 6 base kinds: 40 % is 2, but a 3-way validation episode needs 3 held-out kinds
    assert report["classes"] == {"train": 3, "validation": 3, "test": 3}
    for method in ("maml", "finetune", "protonets"):
        accuracy = report[method]["accuracy"]
        assert accuracy["tasks"] == 6 and 0 <= accuracy["mean"] <= 1 and accuracy["ci95"] >= 0
        assert "seconds" not in report[method]  # timings go to the manifest, so reruns match byte for byte
    assert len(report["maml"]["accuracy_by_step"]) == 4  # before adapting, then 3 steps
    assert len(report["finetune"]["accuracy_by_step"]) == 3
    assert report["maml"]["meta_updates"] == 4 and report["finetune"]["lr"] in (0.01, 0.03, 0.1, 0.3, 1.0)
    # pretrain_steps: 3 in the recipe overrides the match; ProtoNets follows MAML's 4 meta-updates.
    assert report["compute"]["gradient_steps"] == {"maml": 4, "finetune": 3, "protonets": 4}
    assert {entry["verdict"]["verdict"] for entry in report["comparisons"].values()} <= set(VERDICTS)
    written = json.loads((tmp_path / "out" / "reports" / "fewshot" / "report.json").read_text())
    assert all(written[method]["seconds"] >= 0 for method in ("maml", "finetune", "protonets"))

    labels = result.metrics["label"]
    assert labels["ways"] == 3 and labels["novel_classes"] == ["hatch/hatch_00", "hatch/hatch_01", "hatch/hatch_02"]
    assert labels["labelled"] == 3 * 6 - 3 * 2  # every hatch image but the 2 support images per kind
    assert sum(map(sum, labels["confusion"])) == labels["labelled"]
    annotated = {s.id: s.attributes["label"] for s in result.dataset if "label" in s.attributes}
    assert len(annotated) == 18
    support = [a for a in annotated.values() if a["support"]]
    assert len(support) == 6 and all(a["class"] == a["truth"] for a in support)
    predicted = [a for a in annotated.values() if not a["support"]]
    assert all(a["class"] in labels["novel_classes"] and 0 < a["confidence"] <= 1 for a in predicted)
    assert all(s.id not in annotated for s in result.dataset if not s.label.startswith("hatch/"))
    # The labels travel with the exported dataset.
    lines = (tmp_path / "out" / "dataset" / "samples.jsonl").read_text().splitlines()
    assert sum("label" in json.loads(line).get("attributes", {}) for line in lines) == 18


def test_unknown_novel_classes_are_a_clean_usage_error(tmp_path: Path, tiny_root: Path) -> None:
    recipe = RECIPE.replace('["hatch/*"]', '["bubble/*"]', 1)
    (tmp_path / "recipe.yaml").write_text(recipe.format(root=tiny_root))
    outcome = CliRunner().invoke(cli, ["run", str(tmp_path / "recipe.yaml"), "--out", str(tmp_path / "out")])
    assert outcome.exit_code != 0
    assert "match none of the 9 classes" in outcome.output and "Traceback" not in outcome.output
    assert not (tmp_path / "out").exists()


def test_too_few_novel_classes_for_the_ways_is_a_clean_usage_error(tmp_path: Path, tiny_root: Path) -> None:
    recipe = RECIPE.replace("ways: 3", "ways: 5")
    (tmp_path / "recipe.yaml").write_text(recipe.format(root=tiny_root))
    outcome = CliRunner().invoke(cli, ["run", str(tmp_path / "recipe.yaml"), "--out", str(tmp_path / "out")])
    assert outcome.exit_code != 0 and "5-way test episodes need 5 novel classes" in outcome.output
