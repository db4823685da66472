"""DRAEM benchmarks: synthesis throughput, training-step speed and anomaly-detection quality, beside anomalib.

``fewgen bench draem-synth``: DRAEM anomaly synthesis throughput, beside anomalib's in the same run.
Both sides get the same job as the peer script ``shared/peers/anomalib_perlin.py``: N random
images of SIZE x SIZE, every image given an anomaly (probability 1), Perlin noise (or a texture
folder) as the source; timed after a warm-up call, synthesis only.

``fewgen bench draem-train``: seconds per training step at a preset's width, beside anomalib's
full-width step (``shared/peers/anomalib_draem_step.py``) and the machine's conv ceiling
(``shared/peers/cpu_peak.py``).

``fewgen bench draem-anomaly``: train within a time budget and report every anomaly metric,
beside anomalib's DRAEM trained at the same time (``benchmarks/anomalib_draem_train.py``).

The anomalib side runs in anomalib's own virtual environment: ``--peer-python`` names its
interpreter (``shared/peers/setup.sh`` builds it) and ``--peer-script`` the peer's script.
Without both, the peer is left out and the figures say so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from fewgen.bench import Bench, BenchResult, bench_command, precision_option

SYNTH_SPEEDUP_TARGET = 3.0  # fewgen's images/s over anomalib's (the DRAEM issue)
STEP_RATIO_TARGET = 1.0  # anomalib's seconds per step over fewgen's, at the paper's width
AUROC_TARGET = 0.90  # image and pixel AUROC (the DRAEM issue)


def peer_script_option(script: str, what: str) -> Any:
    """``--peer-script``: the anomalib side's script, run with --peer-python."""
    return click.option(
        "--peer-script",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help=f"{script}: {what} (run with --peer-python; without both, anomalib is left out).",
    )


def _peer_skipped(bench: Bench, script: Path | None) -> str | None:
    """Why the anomalib side is left out, or None when it runs."""
    missing = [name for name, given in (("--peer-python", bench.peer_python), ("--peer-script", script)) if not given]
    return "no " + " and no ".join(missing) if missing else None


def _fewgen_images_per_second(
    n: int, size: int, batch: int, device: str, textures: Path | None, seed: int
) -> dict[str, float]:
    import torch

    from fewgen.imageio import IMAGE_SUFFIXES, load_rgb
    from fewgen_draem.synthesis import AnomalySynthesizer

    synthesizer = AnomalySynthesizer(normal_share=0.0)
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, size, size, generator=generator).to(device)
    sources = None
    if textures is not None:
        files = sorted(p for p in textures.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise click.BadParameter(f"no images in {textures}", param_hint="--textures")
        loaded = [torch.from_numpy(load_rgb(p).copy()).permute(2, 0, 1).float() / 255 for p in files]
        sources = [loaded[i % len(loaded)].to(device) for i in range(n)]
    synthesizer(images[:2], generator, sources[:2] if sources else None)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    masked = 0.0
    for start in range(0, n, batch):
        part = synthesizer(
            images[start : start + batch], generator, sources[start : start + batch] if sources else None
        )
        masked += float(part.masks.sum())
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"images_per_s": n / seconds, "seconds": seconds, "mask_fraction": masked / (n * size * size)}


@bench_command("draem-synth", device=True, peer=True)
@click.option("--size", type=int, default=256, show_default=True, help="Image side in pixels.")
@click.option("--n", type=int, default=64, show_default=True, help="Images synthesised (timed).")
@click.option("--batch", type=int, default=16, show_default=True, help="Images per synthesis call.")
@click.option("--textures", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Anomaly sources.")
@peer_script_option("shared/peers/anomalib_perlin.py", "anomalib's PerlinAnomalyGenerator on the same job")
def draem_synth(
    bench: Bench, size: int, n: int, batch: int, textures: Path | None, peer_script: Path | None
) -> BenchResult:
    """Images per second of DRAEM anomaly synthesis, and of anomalib's beside it."""
    device = bench.resolved_device()
    bench.say(f"synthesising {n} images of {size} px on {device}")
    ours = _fewgen_images_per_second(n, size, batch, device, textures, bench.seed)
    bench.say(f"fewgen: {ours['images_per_s']:.1f} images/s")
    figures: dict[str, Any] = {"fewgen": ours}
    target = {"speedup_at_least": SYNTH_SPEEDUP_TARGET}
    skipped = _peer_skipped(bench, peer_script)
    if skipped:
        figures["anomalib"] = {"skipped": skipped}
        return BenchResult(figures, target, None, settings={"device": device})
    assert peer_script is not None
    theirs = bench.run_peer(peer_script, [str(n), str(size)] + ([str(textures)] if textures else []))
    figures["anomalib"] = theirs
    figures["speedup"] = round(ours["images_per_s"] / theirs["images_per_s"], 2)
    return BenchResult(figures, target, figures["speedup"] >= SYNTH_SPEEDUP_TARGET, settings={"device": device})


# --- draem-train ------------------------------------------------------------------------------------------------------


def _training_step_seconds(
    preset: str, size: int, batch: int, steps: int, device: str, seed: int, precision: str = "fp32"
) -> dict[str, float]:
    """Seconds per DRAEM training step (forward, L2 + SSIM + focal loss, backward, Adam), and FLOPs per step.

    The inputs are fixed random tensors, as in the peer script, so only the networks and the loss are timed;
    ``precision`` bf16 runs the forward passes under autocast, as the trainer does.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fewgen.training import autocast
    from fewgen_draem.training import DraemTrainer, TrainingConfig

    config = TrainingConfig(preset=preset, size=size, batch_size=batch, epochs=1, precision=precision)
    trainer = DraemTrainer(config, device, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    good = torch.rand(batch, 3, size, size, generator=generator).to(device)
    augmented = torch.rand(batch, 3, size, size, generator=generator).to(device)
    mask = (torch.rand(batch, 1, size, size, generator=generator) > 0.9).float().to(device)
    if trainer.config.channels_last:
        augmented = augmented.contiguous(memory_format=torch.channels_last)
    model, loss, optimizer = trainer.model, trainer.loss, trainer.optimizer
    model.train()

    def step() -> None:
        with autocast(config.precision, trainer.device):
            reconstruction, logits = model(augmented)
        total = loss(good, reconstruction.float(), mask, logits.float())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()

    with FlopCounterMode(display=False) as counter:
        step()  # also the warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / steps
    flops = counter.get_total_flops()
    return {
        "seconds_per_step": seconds,
        "images_per_s": batch / seconds,
        "gflop_per_step": flops / 1e9,
        "gflops": flops / 1e9 / seconds,
        "params": sum(p.numel() for p in model.parameters()),
    }


@bench_command("draem-train", device=True, peer=True)
@click.option("--size", type=int, default=256, show_default=True, help="Image side (a multiple of 32).")
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--preset", type=click.Choice(["paper", "medium", "small", "tiny"]), default="paper", show_default=True)
@click.option("--steps", type=int, default=3, show_default=True, help="Timed steps (after one warm-up step).")
@precision_option("the forward passes")
@peer_script_option("shared/peers/anomalib_draem_step.py", "anomalib's full-width DraemModel step")
@click.option(
    "--ceiling-script",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="shared/peers/cpu_peak.py: the machine's conv ceiling, run with fewgen's Python (CPU only).",
)
def draem_train(
    bench: Bench,
    size: int,
    batch: int,
    preset: str,
    steps: int,
    precisions: tuple[str, ...],
    peer_script: Path | None,
    ceiling_script: Path | None,
) -> BenchResult:
    """Seconds per DRAEM training step and achieved GFLOP/s, beside anomalib's full-width step."""
    if size % 32:
        raise click.BadParameter("must be a multiple of 32", param_hint="--size")
    device = bench.resolved_device()
    by_precision: dict[str, dict[str, float]] = {}
    for precision in dict.fromkeys(precisions):
        bench.say(f"timing {steps} {preset} steps of batch {batch} at {size} px on {device}, {precision}")
        by_precision[precision] = _training_step_seconds(preset, size, batch, steps, device, bench.seed, precision)
        bench.say(f"fewgen {precision}: {by_precision[precision]['seconds_per_step']:.3f} s/step")
    ours = next(iter(by_precision.values()))
    figures: dict[str, Any] = {"fewgen": ours}
    if len(by_precision) > 1:
        figures["by_precision"] = by_precision
        # Above 1: bf16 is faster than fp32 on this machine, in this run.
        figures["bf16_speedup"] = round(
            by_precision["fp32"]["seconds_per_step"] / by_precision["bf16"]["seconds_per_step"], 3
        )
    if ceiling_script is None or device != "cpu":
        figures["ceiling"] = {"skipped": "no --ceiling-script" if ceiling_script is None else f"device {device}"}
    else:
        ceiling = dataclasses.replace(bench, peer_python=Path(sys.executable)).run_peer(ceiling_script, [])
        figures["ceiling"] = ceiling
        figures["share_of_conv_ceiling"] = round(ours["gflops"] / ceiling["conv3x3_gflops"], 3)
    target = {"ratio_at_least": STEP_RATIO_TARGET, "at": "the paper's width (--preset paper)"}
    skipped = _peer_skipped(bench, peer_script)
    if skipped:
        figures["anomalib"] = {"skipped": skipped}
        return BenchResult(figures, target, None, settings={"device": device})
    assert peer_script is not None
    theirs = bench.run_peer(peer_script, [str(size), str(batch), str(steps)])
    figures["anomalib"] = theirs
    # Above 1: fewgen's step is faster. Only like for like when preset is "paper" (anomalib has no other width).
    figures["ratio"] = round(theirs["seconds_per_step"] / ours["seconds_per_step"], 3)
    figures["same_architecture"] = preset == "paper" and theirs.get("params") == ours["params"]
    met = figures["ratio"] >= STEP_RATIO_TARGET if figures["same_architecture"] else None
    return BenchResult(figures, target, met, settings={"device": device})


# --- draem-anomaly ----------------------------------------------------------------------------------------------------

SUMMARY_KEYS = (
    "image_auroc", "image_ap", "image_f1", "pixel_auroc", "pixel_ap", "pixel_f1", "aupro", "images", "anomalous",
)  # fmt: skip


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        **{key: metrics.get(key) for key in SUMMARY_KEYS},
        "per_type": {
            name: {key: values.get(key) for key in SUMMARY_KEYS} for name, values in metrics.get("per_type", {}).items()
        },
    }


@bench_command("draem-anomaly", peer=True)
@click.option("--data", "root", required=True, type=click.Path(exists=True, file_okay=False), help="Dataset folder.")
@click.option(
    "--card", required=True, help="Dataset card of its layout (e.g. magnetic_tile, mvtec_ad, surface_sample)."
)
@click.option("--preset", type=click.Choice(["paper", "medium", "small", "tiny"]), default="small", show_default=True)
@click.option("--minutes", type=float, required=True, help="Wall-clock training budget of each detector.")
@click.option("--size", type=int, default=256, show_default=True, help="Square image side (a multiple of 32).")
@click.option("--batch", type=int, default=8, show_default=True)
@click.option(
    "--lr",
    type=float,
    default=1e-4,
    show_default=True,
    help="fewgen's Adam rate (the paper's 1e-4; small presets on short budgets learn faster at 1e-3). "
    "The anomalib peer keeps its own 1e-4.",
)
@click.option("--textures", type=click.Path(exists=True, file_okay=False), help="Anomaly source images (both sides).")
@peer_script_option("benchmarks/anomalib_draem_train.py", "anomalib's DRAEM trained at the same time, same budget")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Run folder (default: a temporary one).")
def draem_anomaly(
    bench: Bench,
    root: str,
    card: str,
    preset: str,
    minutes: float,
    size: int,
    batch: int,
    lr: float,
    textures: str | None,
    peer_script: Path | None,
    out_dir: str | None,
) -> BenchResult:
    """Train DRAEM within a time budget on good images and report every anomaly metric, beside anomalib's.

    --seed is the split and training seed. With the peer both detectors train at the same time
    on --threads threads each (default: half the thread policy's count each): the same machine,
    data split, image size and budget, and the same noise from other work.
    """
    import tempfile

    import yaml

    from fewgen.cache import StepCache
    from fewgen.engine import Engine
    from fewgen.plugins import get_registry
    from fewgen.recipe import load_recipe
    from fewgen.testing import make_context
    from fewgen.threads import THREADS_ENV
    from fewgen_draem.evaluator import AnomalyEvaluator, load_masks

    if size % 32:
        raise click.BadParameter("must be a multiple of 32", param_hint="--size")
    skipped = _peer_skipped(bench, peer_script)
    threads = bench.threads
    given = click.get_current_context().get_parameter_source("threads") != click.core.ParameterSource.DEFAULT
    if not skipped and not given and not os.environ.get(THREADS_ENV, "").strip().isdigit():
        threads = max(1, threads // 2)  # the policy's share is for the two detectors together
    params: dict[str, Any] = {
        "preset": preset, "size": size, "epochs": None, "minutes": minutes, "batch_size": batch, "lr": lr,
        "report_images": 16,
    }  # fmt: skip
    if textures:
        params["textures"] = str(Path(textures).resolve())
    recipe = {
        "name": "bench-draem-anomaly",
        "seed": bench.seed,
        "threads": threads,
        "dataset": {"card": card, "root": str(Path(root).resolve())},
        "steps": [{"name": "detect", "evaluator": "anomaly", "params": params}],
        "output": {"format": "fewgen"},
    }
    target = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="fewgen-bench-draem-")) / "run"
    target.parent.mkdir(parents=True, exist_ok=True)
    recipe_path = target.parent / f"{target.name}.recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    registry = get_registry()
    loaded = load_recipe(recipe_path, registry)
    # A private cache: a time-budgeted result must be measured, never restored from an earlier run.
    engine = Engine(registry, StepCache(target.parent / f"{target.name}.cache"), echo=bench.say)

    peer_process = None
    if not skipped:
        assert bench.peer_python is not None and peer_script is not None
        dataset, _, _ = engine.load_source(loaded)
        evaluator = AnomalyEvaluator(AnomalyEvaluator.Params.model_validate(params))
        train, test = evaluator.select(dataset)
        job = {
            "train": [str(s.image) for s in train],
            "test": [str(s.image) for s in test],
            "size": size, "batch": batch, "minutes": minutes, "threads": threads,
            "score_threads": os.cpu_count() or 1, "seed": bench.seed,
            "textures": params.get("textures"),
        }  # fmt: skip
        job_path = target.parent / f"{target.name}.anomalib-job.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        peer_out = target.parent / f"{target.name}.anomalib.npz"
        peer_log = open(target.parent / f"{target.name}.anomalib.log", "w", encoding="utf-8")  # noqa: SIM115
        # Not bench.run_peer: the peer trains while fewgen does, so it is started, then waited for.
        command = [str(bench.peer_python), str(peer_script), str(job_path), str(peer_out)]
        peer_process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=peer_log, text=True)
        bench.say(f"anomalib's DRAEM is training alongside ({threads} threads, log {peer_log.name})")

    started = time.perf_counter()
    run = engine.run(loaded, target, overwrite=True)
    metrics = run.metrics["detect"]
    ours = {**_summary(metrics), "training": metrics["training"]}
    figures: dict[str, Any] = {
        "train_images": metrics["train_images"],
        "test_images": metrics["test_images"],
        "fewgen": ours,
        "run_dir": str(run.out_dir),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    if peer_process is None:
        figures["anomalib"] = {"skipped": skipped}
    else:
        output, _ = peer_process.communicate()
        if peer_process.returncode != 0:
            raise click.ClickException(f"anomalib peer failed (exit {peer_process.returncode}); see {peer_log.name}")
        peer_training = json.loads(output.strip().splitlines()[-1])
        import numpy as np

        arrays = np.load(peer_out)
        ctx = make_context(Path(tempfile.mkdtemp(prefix="fewgen-bench-draem-masks-")), step="peer")
        masks, has_truth = load_masks(test, size, "good", ctx)
        labels = [s.label or "good" for s in test]
        # Same metric code and ground truth for both detectors; the peer's maps are its own (anomalib's image
        # score is the map's maximum, fewgen's the maximum of the 21x21-averaged map, as the paper has it).
        peer_metrics = evaluator.measure(arrays["scores"], arrays["maps"].astype(np.float32), masks, has_truth, labels)
        figures["anomalib"] = {**_summary(peer_metrics), "training": peer_training}
    bench.say(f"report: {run.out_dir / 'reports' / 'detect' / 'report.html'}")
    aurocs = (ours["image_auroc"], ours["pixel_auroc"])
    met = None if None in aurocs else min(aurocs) >= AUROC_TARGET
    target_figures = {"image_auroc_at_least": AUROC_TARGET, "pixel_auroc_at_least": AUROC_TARGET}
    return BenchResult(figures, target_figures, met, settings={"threads_each": threads})
