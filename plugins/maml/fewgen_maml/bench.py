"""MAML benchmarks: the paper's sinusoid regression against its pretrained baseline, and meta-iteration speed.

``fewgen bench maml-sinusoid``: Finn et al. 2017, section 5.1. MAML is meta-trained on the paper's
sinusoid distribution with ``PAPER_SETTINGS["sinusoid"]``; the paper's baseline, the same network
trained by plain regression on the same distribution, is fine-tuned at test time by gradient
descent with a step size chosen on validation tasks. Both are measured on the same test tasks
after 1, 5 and 10 gradient steps on K = 5 and K = 10 support points.

``fewgen bench maml-speed``: tasks per second of one full second-order meta-iteration of the
batched MAML here and of a per-task loop with the ``higher`` library (the peer script
``shared/peers/higher_maml_step.py``, given with ``--peer-script`` and run by ``--peer-python``,
the interpreter of its own venv), alternating in the same run.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from fewgen.bench import Bench, BenchResult, bench_command

# --- maml-sinusoid ---------------------------------------------------------------------------------------------------

STEP_COUNTS = (1, 5, 10)  # gradient steps at test time that are reported
EVAL_SHOTS = (5, 10)  # K at test time
QUERY_POINTS = 100  # evenly spaced in [-5, 5], the same for every task
DEFAULT_STEP_SIZES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
# K = 5, mean squared error after 1, 5 and 10 steps, as quoted by the project's issue for the paper.
PAPER_K5 = {
    "maml": {"1": 0.67, "5": 0.38, "10": 0.35},
    "pretrained": {"1": 2.41, "5": 2.23, "10": 2.19},
    "source": "Finn et al. 2017, as quoted by the project's issue",
}
TARGET_K5_ONE_STEP = 0.55  # the target: MAML, K = 5, after one step


def select_step_sizes(
    validation_losses: Mapping[float, Sequence[float]], step_counts: Sequence[int]
) -> dict[int, float]:
    """For each step count, the step size with the lowest mean validation loss after that many steps.

    ``validation_losses[step_size][s]`` is the mean loss over the validation tasks after ``s``
    steps. Ties go to the smaller step size; a non-finite loss (a step size that diverged) never wins.
    """
    if not validation_losses:
        raise ValueError("no step sizes to choose from")
    chosen = {}
    for steps in step_counts:
        finite = [(loss[steps], size) for size, loss in validation_losses.items() if math.isfinite(loss[steps])]
        if not finite:
            raise ValueError(f"every step size diverged after {steps} steps")
        chosen[steps] = min(finite)[1]
    return chosen


def _parse_step_sizes(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        sizes = tuple(sorted({float(part) for part in value.split(",") if part.strip()}))
    except ValueError:
        raise click.BadParameter(f"not a comma-separated list of numbers: {value!r}") from None
    if not sizes or any(not math.isfinite(s) or s <= 0 for s in sizes):
        raise click.BadParameter(f"need one or more positive step sizes, got {value!r}")
    return sizes


def _json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (a diverged fine-tuning) as None, so the JSON stays strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


class _Progress:
    """A line through ``say`` every ``every`` seconds (and at the end) while a model trains."""

    def __init__(self, name: str, total: int, say: Callable[[str], None], every: float = 15.0) -> None:
        self.name, self.total, self.say, self.every = name, total, say, every
        self.started = self.last = time.perf_counter()

    def update(self, done: int, loss: float, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self.last >= self.every:
            self.last = now
            elapsed = now - self.started
            self.say(
                f"{self.name}: {done}/{self.total} updates, {elapsed:.0f} s, "
                f"{done / max(elapsed, 1e-9):.0f}/s, loss {loss:.3f}"
            )


def _eval_tasks(tasks: int, shots: int, generator: Any) -> tuple[Any, Any, Any, Any]:
    """Sinusoids with ``shots`` uniform support points and the evenly spaced query grid."""
    import torch

    from fewgen_maml.tasks import SinusoidTasks

    distribution = SinusoidTasks(shots=shots, queries=1)
    amplitude, phase = distribution.sample_functions(tasks, generator)
    support_x = distribution.sample_inputs(tasks, shots, generator)
    query_x = torch.linspace(-5.0, 5.0, QUERY_POINTS).reshape(1, -1, 1).expand(tasks, -1, -1).contiguous()
    return (
        support_x,
        distribution.evaluate(amplitude, phase, support_x),
        query_x,
        distribution.evaluate(amplitude, phase, query_x),
    )


def _with_shots(tasks: tuple[Any, Any, Any, Any], shots: int) -> Any:
    """The task batch with only the first ``shots`` support points of each task."""
    from fewgen_maml.tasks import TaskBatch

    support_x, support_y, query_x, query_y = tasks
    return TaskBatch(support_x[:, :shots], support_y[:, :shots], query_x, query_y)


def _fine_tune_losses(model: Any, step_size: float, batch: Any, steps: int) -> Any:
    """(T, steps + 1) query MSE of ``model`` fine-tuned by plain gradient descent on each support set."""
    from fewgen_maml.maml import MAML, MAMLConfig

    # MAML's inner loop is exactly this fine-tuning: ``steps`` steps of gradient descent with
    # ``step_size`` on the support MSE, per task, from the model's weights; ``evaluate`` changes nothing.
    tuner = MAML(model, MAMLConfig(loss="mse", inner_lr=step_size, test_inner_steps=steps))
    return tuner.evaluate(batch, steps=steps)["query_loss"]


def _per_step(losses: Any) -> dict[str, dict[str, float | int]]:
    from fewgen_maml.stats import summary

    return {str(s): summary(losses[:, s].tolist()) for s in (0, *STEP_COUNTS)}


@bench_command("maml-sinusoid")
@click.option("--steps", type=click.IntRange(min=1), default=70_000, show_default=True, help="Meta-updates of MAML.")
@click.option(
    "--minutes",
    type=click.FloatRange(min=0, min_open=True),
    help="Wall-clock cap on MAML's meta-training (whichever of --steps and --minutes comes first).",
)
@click.option(
    "--pretrain-steps",
    type=click.IntRange(min=1),
    help="Updates of the pretrained baseline (default: as many as MAML made).",
)
@click.option(
    "--train-shots",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="K of meta-training: support points per task, and as many query points (the official code's "
    "update_batch_size). The paper's setting is 10.",
)
@click.option("--tasks", type=click.IntRange(min=2), default=600, show_default=True, help="Test tasks.")
@click.option(
    "--val-tasks",
    type=click.IntRange(min=1),
    default=600,
    show_default=True,
    help="Validation tasks (not the test tasks) on which the baseline's step size is chosen.",
)
@click.option(
    "--step-sizes",
    callback=_parse_step_sizes,
    default=",".join(str(s) for s in DEFAULT_STEP_SIZES),
    show_default=True,
    help="The baseline's step-size grid.",
)
def maml_sinusoid(
    bench: Bench,
    steps: int,
    minutes: float | None,
    pretrain_steps: int | None,
    train_shots: int,
    tasks: int,
    val_tasks: int,
    step_sizes: tuple[float, ...],
) -> BenchResult:
    """The paper's sinusoid regression: MAML against the pretrained baseline, MSE after 1, 5 and 10 steps.

    MAML meta-trains with PAPER_SETTINGS["sinusoid"] (K = 10 support and 10 query points,
    alpha = 0.01, one inner step, 25 tasks per meta-batch, Adam 1e-3) on the 1-40-40-1 MLP. The
    baseline is the same MLP trained by regression on the same distribution, fine-tuned at test
    time with the step size that did best on separate validation tasks. --seed seeds the models
    and every task draw. One thread (--threads 1) is fastest for this tiny network: extra threads
    only synchronise; the thread policy's default may choose more (the MSEs stay the same).
    """
    import torch

    from fewgen_maml.backbones import sinusoid_mlp
    from fewgen_maml.maml import MAML, PAPER_SETTINGS
    from fewgen_maml.tasks import SinusoidTasks
    from fewgen_maml.training import meta_train

    seed = bench.seed
    config = PAPER_SETTINGS["sinusoid"]
    distribution = SinusoidTasks(shots=train_shots, queries=train_shots)
    # MAML
    torch.manual_seed(seed)
    maml = MAML(sinusoid_mlp(), config)
    generator = torch.Generator().manual_seed(seed)
    progress = _Progress("maml", steps, bench.say)
    recent = 0.0

    def report(step: int, metrics: dict[str, float]) -> None:
        nonlocal recent
        recent = 0.99 * recent + 0.01 * metrics["query_loss"] if step > 1 else metrics["query_loss"]
        progress.update(step, recent)

    _, fitted = meta_train(
        maml,
        lambda g: distribution.sample(config.meta_batch_size, g),
        steps,
        generator,
        on_step=report,
        minutes=minutes,
    )
    maml_seconds = fitted.seconds
    progress.update(maml.meta_steps, recent, force=True)
    stopped_by = "steps" if maml.meta_steps >= steps else "minutes"

    # The pretrained baseline: every point of a meta-batch's tasks, regressed on its own task's target.
    pretrain_steps = pretrain_steps or maml.meta_steps
    torch.manual_seed(seed + 1)
    pretrained = sinusoid_mlp()
    optimizer = torch.optim.Adam(pretrained.parameters(), lr=config.meta_lr)
    generator = torch.Generator().manual_seed(seed + 1)
    progress = _Progress("pretrained", pretrain_steps, bench.say)
    started = time.perf_counter()
    for update in range(1, pretrain_steps + 1):
        batch = distribution.sample(config.meta_batch_size, generator)
        x = torch.cat([batch.support_x, batch.query_x], 1).reshape(-1, 1)
        y = torch.cat([batch.support_y, batch.query_y], 1).reshape(-1, 1)
        loss = torch.nn.functional.mse_loss(pretrained(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        recent = 0.99 * recent + 0.01 * loss.item() if update > 1 else loss.item()
        progress.update(update, recent)
    pretrain_seconds = time.perf_counter() - started
    progress.update(pretrain_steps, recent, force=True)

    # Evaluation: the same test tasks (functions, support points, query grid) for both models; the
    # K = 5 support set is the first five of the K = 10 one.
    started = time.perf_counter()
    most = max(STEP_COUNTS)
    validation = _eval_tasks(val_tasks, max(EVAL_SHOTS), torch.Generator().manual_seed(seed + 2))
    test = _eval_tasks(tasks, max(EVAL_SHOTS), torch.Generator().manual_seed(seed + 3))
    results: dict[str, Any] = {}
    for shots in EVAL_SHOTS:
        test_batch = _with_shots(test, shots)
        validation_batch = _with_shots(validation, shots)
        maml_losses = maml.evaluate(test_batch, steps=most)
        mean_validation = {
            size: _fine_tune_losses(pretrained, size, validation_batch, most).mean(0).tolist() for size in step_sizes
        }
        chosen = select_step_sizes(mean_validation, STEP_COUNTS)
        baseline: dict[str, Any] = {"step_size": {str(s): size for s, size in chosen.items()}}
        test_losses = {size: _fine_tune_losses(pretrained, size, test_batch, most) for size in set(chosen.values())}
        baseline["0"] = _per_step(next(iter(test_losses.values())))["0"]  # no step: the step size plays no part
        for s, size in chosen.items():
            baseline[str(s)] = _per_step(test_losses[size])[str(s)]
        baseline["validation_mse"] = {
            str(size): {str(s): round(loss[s], 4) for s in STEP_COUNTS}  # null: diverged
            for size, loss in mean_validation.items()
        }
        results[f"k{shots}"] = {"maml": _per_step(maml_losses["query_loss"]), "pretrained": baseline}
    evaluation_seconds = time.perf_counter() - started

    for shots in EVAL_SHOTS:
        row = results[f"k{shots}"]
        line = ", ".join(
            f"{s} steps {row['maml'][str(s)]['mean']:.3f} / {row['pretrained'][str(s)]['mean']:.3f}"
            for s in STEP_COUNTS
        )
        bench.say(f"K={shots} MSE, MAML / pretrained: {line}")
    figures = {
        "meta_updates": {"requested": steps, "done": maml.meta_steps, "stopped_by": stopped_by},
        "pretrain_updates": pretrain_steps,
        "seconds": {
            "maml_training": round(maml_seconds, 1),
            "pretrained_training": round(pretrain_seconds, 1),
            "evaluation": round(evaluation_seconds, 1),
        },
        "meta_updates_per_s": round(maml.meta_steps / max(maml_seconds, 1e-9), 1),
        "mse": results,
        "paper_k5": PAPER_K5,
    }
    one_step = results["k5"]["maml"]["1"]["mean"]
    return BenchResult(
        _json_safe(figures),
        target={"what": "MAML, K = 5, mean query MSE after 1 step", "mse_at_most": TARGET_K5_ONE_STEP},
        met=one_step <= TARGET_K5_ONE_STEP,
        settings={
            "pretrain_steps": pretrain_steps,
            "amplitude": list(distribution.amplitude),
            "phase": [0.0, round(math.pi, 6)],
            "x": list(distribution.x_range),
            "train_shots": distribution.shots,
            "train_queries": distribution.queries,
            "inner_lr": config.inner_lr,
            "inner_steps": config.inner_steps,
            "meta_batch": config.meta_batch_size,
            "meta_lr": config.meta_lr,
            "network": "1-40-40-1 ReLU MLP",
            "test_shots": list(EVAL_SHOTS),
            "query": f"{QUERY_POINTS} points evenly spaced in [-5, 5] (ends included), the same for every task",
            "support": "uniform in [-5, 5]; K = 5 uses the first 5 of each task's K = 10 points",
            "maml_test_step_size": config.inner_lr,
            "pretrained_batch": f"{config.meta_batch_size} tasks x {distribution.shots + distribution.queries} "
            "points, each point's own task's target",
        },
    )


# --- maml-speed ------------------------------------------------------------------------------------------------------

SPEED_TARGETS = {"sinusoid": {"ratio": 10.0, "meta_batch": 25}, "omniglot": {"ratio": 3.0, "meta_batch": 32}}
DEFAULT_ITERS = {"sinusoid": 300, "omniglot": 5}
PEER_LEFT_OUT = "left out: no --peer-python"


def _speed_batches(task: str, meta_batch: int, count: int, generator: Any) -> list[Any]:
    """``count`` meta-batches drawn up front, shaped as the peer's episodes."""
    import torch

    from fewgen_maml.tasks import SinusoidTasks, TaskBatch

    if task == "sinusoid":
        return [SinusoidTasks(shots=10, queries=10).sample(meta_batch, generator) for _ in range(count)]
    ways = 5  # 5-way 1-shot, one query per class, 28x28 random grey pixels
    labels = torch.arange(ways).expand(meta_batch, -1).contiguous()
    return [
        TaskBatch(
            torch.rand(meta_batch, ways, 1, 28, 28, generator=generator),
            labels,
            torch.rand(meta_batch, ways, 1, 28, 28, generator=generator),
            labels,
        )
        for _ in range(count)
    ]


def _fewgen_meta_iteration(
    task: str, meta_batch: int, iters: int, first_order: bool, seed: int, device: str = "cpu"
) -> dict[str, float]:
    """Seconds per meta-iteration of the batched MAML on ``device``, after one warm-up iteration (as the peer)."""
    import torch

    from fewgen.training import choose_device
    from fewgen_maml.backbones import omniglot_conv4, sinusoid_mlp
    from fewgen_maml.maml import MAML, MAMLConfig

    torch.manual_seed(seed)
    if task == "sinusoid":
        model = sinusoid_mlp()
        config = MAMLConfig(loss="mse", inner_lr=0.01, meta_batch_size=meta_batch, first_order=first_order)
    else:
        model = omniglot_conv4(5, head="flatten")  # Linear(64*2*2, 5), as the peer's network
        # The peer steps alpha = 0.4 on the mean cross-entropy; "mean" makes this the same update.
        config = MAMLConfig(
            inner_lr=0.4, cross_entropy_scale="mean", meta_batch_size=meta_batch, first_order=first_order
        )
    on = choose_device(device)
    maml = MAML(model.to(on), config)
    batches = [b.to(on) for b in _speed_batches(task, meta_batch, iters + 1, torch.Generator().manual_seed(seed))]
    maml.meta_step(batches[0])  # warm-up
    # A GPU runs asynchronously: time from an idle device to an idle device.
    synchronise = torch.cuda.synchronize if on.type == "cuda" else (lambda: None)
    synchronise()
    started = time.perf_counter()
    for batch in batches[1:]:
        maml.meta_step(batch)
    synchronise()
    seconds = (time.perf_counter() - started) / iters
    return {"seconds_per_meta_iter": seconds, "tasks_per_s": meta_batch / seconds}


def _side(values: list[dict[str, Any]], meta_batch: int) -> dict[str, Any]:
    seconds = [v["seconds_per_meta_iter"] for v in values]
    rates = [meta_batch / s for s in seconds]
    return {
        "tasks_per_s": {"median": round(statistics.median(rates), 2), "all": [round(r, 2) for r in rates]},
        "seconds_per_meta_iter": {
            "median": round(statistics.median(seconds), 6),
            "all": [round(s, 6) for s in seconds],
        },
    }


@bench_command("maml-speed", device=True, peer=True)
@click.option("--task", type=click.Choice(["sinusoid", "omniglot"]), required=True)
@click.option(
    "--meta-batch", type=click.IntRange(min=1), help="Tasks per meta-iteration (default: 25 sinusoid, 32 omniglot)."
)
@click.option(
    "--iters",
    type=click.IntRange(min=1),
    help="Timed meta-iterations per run, after one warm-up (default: 300 sinusoid, 5 omniglot).",
)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True, help="Alternating runs per side.")
@click.option("--first-order", is_flag=True, help="Also time fewgen's first-order MAML (reported apart).")
@click.option(
    "--peer-script",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The peer's timing script, shared/peers/higher_maml_step.py (run with --peer-python).",
)
def maml_speed(
    bench: Bench,
    task: str,
    meta_batch: int | None,
    iters: int | None,
    repeats: int,
    first_order: bool,
    peer_script: Path | None,
) -> BenchResult:
    """Tasks per second of a full second-order MAML meta-iteration, fewgen's batched one beside `higher`'s loop.

    The settings are the peer script's: omniglot is 5-way 1-shot with one query per class on
    28x28 random pixels, conv-4 (64 filters, stride 2, flattening head), one inner step of 0.4;
    sinusoid is K = 10 support and 10 query points, one inner step of 0.01, on the 1-40-40-1 MLP.
    A meta-iteration is the forward passes, the inner step, the query loss, the backward pass and
    Adam's step. fewgen and the peer run alternately, --repeats times each, both on --threads
    threads. The peer runs with --peer-python (the python of a venv with `higher`, e.g.
    $PEERS_DIR/higher-venv/bin/python from shared/peers/setup.sh) and --peer-script; without
    --peer-python it is left out and fewgen is timed alone.
    """
    meta_batch = meta_batch or SPEED_TARGETS[task]["meta_batch"]  # type: ignore[assignment]
    iters = iters or DEFAULT_ITERS[task]
    if bench.peer_python is not None and peer_script is None:
        raise click.UsageError("--peer-python needs --peer-script (shared/peers/higher_maml_step.py)")
    peer = peer_script if bench.peer_python is not None else None
    if peer is None:
        bench.say(f"higher: {PEER_LEFT_OUT}")
    fewgen_runs: list[dict[str, Any]] = []
    first_order_runs: list[dict[str, Any]] = []
    peer_runs: list[dict[str, Any]] = []
    for repeat in range(repeats):
        fewgen_runs.append(_fewgen_meta_iteration(task, meta_batch, iters, False, bench.seed + repeat, bench.device))
        bench.say(f"[{repeat + 1}/{repeats}] fewgen: {fewgen_runs[-1]['tasks_per_s']:.1f} tasks/s")
        if first_order:
            first_order_runs.append(
                _fewgen_meta_iteration(task, meta_batch, iters, True, bench.seed + repeat, bench.device)
            )
            bench.say(f"[{repeat + 1}/{repeats}] fewgen first order: {first_order_runs[-1]['tasks_per_s']:.1f} tasks/s")
        if peer is not None:
            peer_runs.append(bench.run_peer(peer, [task, str(meta_batch), str(iters)]))
            bench.say(f"[{repeat + 1}/{repeats}] higher: {peer_runs[-1]['tasks_per_s']:.1f} tasks/s")

    target = SPEED_TARGETS[task]
    figures: dict[str, Any] = {"fewgen": _side(fewgen_runs, meta_batch)}
    if first_order:
        figures["fewgen_first_order"] = _side(first_order_runs, meta_batch)
    # The target is for second order at its own meta-batch; at another one met stays null.
    applies = figures["target_applies"] = meta_batch == target["meta_batch"]
    met: bool | None = None
    if peer_runs:
        figures["higher"] = _side(peer_runs, meta_batch)
        ratio = figures["fewgen"]["tasks_per_s"]["median"] / figures["higher"]["tasks_per_s"]["median"]
        figures["ratio"] = round(ratio, 2)
        figures["ratios"] = [
            round(f["tasks_per_s"] / p["tasks_per_s"], 2) for f, p in zip(fewgen_runs, peer_runs, strict=True)
        ]
        met = ratio >= target["ratio"] if applies else None
    else:
        figures["higher"] = {"note": PEER_LEFT_OUT}
        figures["ratio"] = None
    summary = f"fewgen {figures['fewgen']['tasks_per_s']['median']:.1f} tasks/s"
    if figures["ratio"] is not None:
        summary += f", higher {figures['higher']['tasks_per_s']['median']:.1f} tasks/s, ratio {figures['ratio']}"
    bench.say(summary)
    return BenchResult(
        figures,
        target={"ratio_at_least": target["ratio"], "meta_batch": target["meta_batch"], "order": "second"},
        met=met,
        settings={
            "meta_batch": meta_batch,
            "iters": iters,
            "warmup_iters": 1,
            "setup": (
                "5-way 1-shot, 1 query per class, 28x28 random pixels, conv-4 64 filters stride 2, flatten head, "
                "1 inner step alpha 0.4 on the mean cross-entropy, second order, Adam 1e-3"
                if task == "omniglot"
                else "K=10 support, 10 query, 1-40-40-1 ReLU MLP, 1 inner step alpha 0.01 on the MSE, second order, "
                "Adam 1e-3"
            ),
            "data": "fewgen: every meta-batch drawn before timing; the peer script draws its random tensors per task "
            "inside its timed loop",
        },
    )
