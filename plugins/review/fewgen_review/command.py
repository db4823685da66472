"""``fewgen review``: export a run folder to FiftyOne and open it in the App."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import click

from fewgen.errors import UsageError
from fewgen_review.app import DEFAULT_ADDRESS, DEFAULT_PORT
from fewgen_review.convert import DEFAULT_MIN_CONFIDENCE, SYNTHETIC_VIEW


@click.command("review")
@click.argument("run_dir", required=False, type=click.Path(path_type=Path))
@click.option("--list", "list_datasets", is_flag=True, help="List the FiftyOne datasets exported from fewgen runs.")
@click.option("--json", "as_json", is_flag=True, help="With --list: machine-readable output.")
@click.option("--name", help="Dataset name (default: the run folder's name).")
@click.option("--overwrite", is_flag=True, help="Replace a dataset of that name that holds another run.")
@click.option("--no-launch", is_flag=True, help="Create or update the dataset, print its name and size, and exit.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True, help="App port.")
@click.option(
    "--address",
    default=DEFAULT_ADDRESS,
    show_default=True,
    help="Address the App listens on; another than 127.0.0.1 exposes the data to the network.",
)
@click.option(
    "--min-confidence",
    type=click.FloatRange(0.0, 1.0),
    default=DEFAULT_MIN_CONFIDENCE,
    show_default=True,
    help="Model predictions below this confidence are left out (and not matched to the ground truth).",
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def review(
    run_dir: Path | None,
    list_datasets: bool,
    as_json: bool,
    name: str | None,
    overwrite: bool,
    no_launch: bool,
    port: int,
    address: str,
    min_confidence: float,
    no_progress: bool,
) -> None:
    """Export RUN_DIR (a finished `fewgen run` folder) to a FiftyOne dataset and open it in the App.

    The dataset is named after the run folder and replaced when the same run is reviewed again.
    Real and synthetic samples are tagged, carry their provenance, and the models' predictions
    are evaluated against the ground truth; saved views gather the cases to look at first.
    """
    if list_datasets:
        if run_dir is not None:
            raise UsageError("--list takes no RUN_DIR")
        _print_list(as_json)
        return
    if run_dir is None:
        raise UsageError("give a RUN_DIR to review, or --list")
    from fewgen_review.app import app_url, check_port_free, launch
    from fewgen_review.convert import export_run
    from fewgen_review.runfolder import read_run

    run = read_run(run_dir)
    if not no_launch:
        check_port_free(address, port)  # before minutes of export, not after
    summary = export_run(run, name, overwrite=overwrite, min_confidence=min_confidence, progress=not no_progress)
    synthetic = summary.views.get(SYNTHETIC_VIEW, 0)
    click.echo(
        f"FiftyOne dataset {summary.name!r}: {summary.samples} samples"
        f" ({summary.samples - synthetic} real, {synthetic} synthetic), {summary.boxes} ground-truth boxes"
    )
    if summary.eval_keys:
        click.echo(f"  evaluations: {', '.join(summary.eval_keys)}")
    for view, count in summary.views.items():
        click.echo(f"  saved view {view!r}: {count} samples")
    if no_launch:
        return
    import fiftyone as fo

    session = launch(fo.load_dataset(summary.name), address, port)
    click.echo(f"FiftyOne App: {app_url(address, port)} (Ctrl-C to stop)", color=False)
    # A supervisor (or a test) stops the App with SIGTERM: the same clean stop as Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        session.wait(-1)
    except KeyboardInterrupt:
        click.echo("App stopped.", err=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _print_list(as_json: bool) -> None:
    from fewgen_review.convert import list_run_datasets

    found = list_run_datasets()
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo("no FiftyOne datasets from fewgen runs")
    for entry in found:
        click.echo(f"{entry['name']}\t{entry['samples']} samples\t{entry['run']}")
