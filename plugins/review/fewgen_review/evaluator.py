"""The ``fiftyone`` evaluator: a recipe step that exports its run to FiftyOne when the run is complete.

A step sees the dataset, not the run folder (which is written after the last step), and a cached
step would not run again: so the step only checks its settings, and the export itself happens in
the ``after_run`` hook, on the finished folder, on every run. That is the same export
``fewgen review RUN_DIR --no-launch`` makes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from pydantic import Field

from fewgen.api import Evaluator, Params, StepContext
from fewgen.dataset import Dataset
from fewgen.errors import UsageError
from fewgen_review.convert import DEFAULT_MIN_CONFIDENCE


class FiftyOneParams(Params):
    dataset: str | None = Field(
        None, min_length=1, description="FiftyOne dataset name; default: the run folder's name."
    )
    overwrite: bool = Field(False, description="Replace a dataset of that name that holds another run.")
    min_confidence: float = Field(
        DEFAULT_MIN_CONFIDENCE,
        ge=0.0,
        le=1.0,
        description="Model predictions below this confidence are left out of the review.",
    )


class FiftyOneExport(Evaluator):
    name = "fiftyone"
    description = (
        "Exports the finished run (real and synthetic samples, provenance, predictions, evaluations, saved views) "
        "to a persistent FiftyOne dataset; put it last. Metrics: the dataset's name and sample count."
    )
    Params = FiftyOneParams

    def evaluate(self, dataset: Dataset, ctx: StepContext) -> dict[str, Any]:
        if importlib.util.find_spec("fiftyone") is None:
            raise UsageError("the fiftyone step needs FiftyOne: pip install fewgen-review with its dependencies")
        ctx.note("the run is exported to FiftyOne once its folder is complete")
        return {"samples": len(dataset)}


def export_finished_run(run_dir: Path, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Export ``run_dir`` once for each ``fiftyone`` step of its recipe; that step's metrics, by step name."""
    from fewgen_review.convert import export_run
    from fewgen_review.runfolder import read_run

    steps = [s for s in manifest.get("steps", []) if s.get("kind") == "evaluator" and s["component"] == "fiftyone"]
    if not steps:
        return {}
    run = read_run(run_dir)
    added = {}
    for step in steps:
        params = FiftyOneParams(**step["params"])
        summary = export_run(
            run,
            params.dataset,
            overwrite=params.overwrite,
            min_confidence=params.min_confidence,
            progress=sys.stderr.isatty(),
        )
        print(
            f"{step['name']}: exported {summary.samples} samples to the FiftyOne dataset {summary.name!r}"
            f" (open it with: fewgen review {run_dir})",
            file=sys.stderr,
        )
        added[step["name"]] = {"dataset": summary.name, "samples": summary.samples, "seconds": summary.seconds["total"]}
    return added
