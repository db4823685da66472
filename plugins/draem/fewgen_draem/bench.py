"""DRAEM benchmarks: synthesis throughput, training-step speed and anomaly-detection quality, beside anomalib.

``fewgen bench draem-synth``: DRAEM anomaly synthesis throughput, beside anomalib's in the same run.

Both sides get the same job as the peer script in ``shared/peers/anomalib_perlin.py``:
N random images of SIZE x SIZE, every image given an anomaly (probability 1), Perlin
noise (or a texture folder) as the source; timed after a warm-up call, synthesis only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

DEFAULT_PEER_PYTHON = Path(os.environ.get("PEERS_DIR", "/tmp/fewgen-peers")) / "anomalib-venv" / "bin" / "python"


def _fewgen_images_per_second(n: int, size: int, batch: int, device: str, textures: Path | None) -> dict[str, float]:
    import torch

    from fewgen.imageio import IMAGE_SUFFIXES, load_rgb
    from fewgen_draem.synthesis import AnomalySynthesizer

    synthesizer = AnomalySynthesizer(normal_share=0.0)
    generator = torch.Generator().manual_seed(0)
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


@click.command("draem-synth")
@click.option("--size", type=int, default=256, show_default=True, help="Image side in pixels.")
@click.option("--n", type=int, default=64, show_default=True, help="Images synthesised (timed).")
@click.option("--batch", type=int, default=16, show_default=True, help="Images per synthesis call.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--textures", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Anomaly sources.")
@click.option("--peer", type=click.Choice(["anomalib"]), help="Also time anomalib's PerlinAnomalyGenerator.")
@click.option(
    "--peer-python",
    type=click.Path(path_type=Path),
    default=DEFAULT_PEER_PYTHON,
    show_default=True,
    help="Python of the venv with anomalib (built by shared/peers/setup.sh).",
)
@click.option(
    "--peer-script",
    type=click.Path(path_type=Path),
    default=Path(__file__).resolve().parents[3] / ".." / "shared" / "peers" / "anomalib_perlin.py",
    help="The peer's timing script.",
)
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON result.")
def draem_synth(
    size: int,
    n: int,
    batch: int,
    device: str,
    textures: Path | None,
    peer: str | None,
    peer_python: Path,
    peer_script: Path,
    as_json: bool,
) -> None:
    """Images per second of DRAEM anomaly synthesis (and of anomalib's, with --peer anomalib)."""
    import torch

    result: dict[str, object] = {
        "benchmark": "draem-synth",
        "size": size,
        "n": n,
        "batch": batch,
        "device": device,
        "textures": bool(textures),
        "torch_threads": torch.get_num_threads(),
        "fewgen": _fewgen_images_per_second(n, size, batch, device, textures),
    }
    if peer == "anomalib":
        if not peer_python.is_file() or not peer_script.is_file():
            raise click.UsageError(
                f"peer not available: need {peer_python} (run shared/peers/setup.sh) and {peer_script}"
            )
        command = [str(peer_python), str(peer_script), str(n), str(size)] + ([str(textures)] if textures else [])
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        peer_result = json.loads(output.strip().splitlines()[-1])
        result["anomalib"] = peer_result
        result["speedup"] = round(result["fewgen"]["images_per_s"] / peer_result["images_per_s"], 2)  # type: ignore[index]
    if not as_json:
        print(f"fewgen: {result['fewgen']['images_per_s']:.1f} images/s", file=sys.stderr)  # type: ignore[index]
    click.echo(json.dumps(result))


# --- draem-train ------------------------------------------------------------------------------------------------------

CPU_PEAK_SCRIPT = Path(__file__).resolve().parents[3] / ".." / "shared" / "peers" / "cpu_peak.py"
ANOMALIB_STEP_SCRIPT = Path(__file__).resolve().parents[3] / ".." / "shared" / "peers" / "anomalib_draem_step.py"


def _training_step_seconds(preset: str, size: int, batch: int, steps: int, device: str) -> dict[str, float]:
    """Seconds per DRAEM training step (forward, L2 + SSIM + focal loss, backward, Adam), and FLOPs per step.

    The inputs are fixed random tensors, as in the peer script, so only the networks and the loss are timed.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from fewgen_draem.training import DraemTrainer, TrainingConfig

    trainer = DraemTrainer(TrainingConfig(preset=preset, size=size, batch_size=batch, epochs=1), device, seed=0)
    generator = torch.Generator().manual_seed(0)
    good = torch.rand(batch, 3, size, size, generator=generator).to(device)
    augmented = torch.rand(batch, 3, size, size, generator=generator).to(device)
    mask = (torch.rand(batch, 1, size, size, generator=generator) > 0.9).float().to(device)
    if trainer.config.channels_last:
        augmented = augmented.contiguous(memory_format=torch.channels_last)
    model, loss, optimizer = trainer.model, trainer.loss, trainer.optimizer
    model.train()

    def step() -> None:
        reconstruction, logits = model(augmented)
        total = loss(good, reconstruction, mask, logits)
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


def _peer_json(command: list[str]) -> dict[str, Any]:
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise click.ClickException(f"{' '.join(command)} failed: {completed.stderr.strip().splitlines()[-1:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


@click.command("draem-train")
@click.option("--size", type=int, default=256, show_default=True, help="Image side (a multiple of 32).")
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--preset", type=click.Choice(["paper", "medium", "small", "tiny"]), default="paper", show_default=True)
@click.option("--steps", type=int, default=3, show_default=True, help="Timed steps (after one warm-up step).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--peer", type=click.Choice(["anomalib"]), help="Also time anomalib's full-width DraemModel step.")
@click.option("--peer-python", type=click.Path(path_type=Path), default=DEFAULT_PEER_PYTHON, show_default=True)
@click.option("--no-ceiling", is_flag=True, help="Skip measuring the machine's conv ceiling (cpu_peak.py).")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON result.")
def draem_train(
    size: int,
    batch: int,
    preset: str,
    steps: int,
    device: str,
    peer: str | None,
    peer_python: Path,
    no_ceiling: bool,
    as_json: bool,
) -> None:
    """Seconds per DRAEM training step and achieved GFLOP/s; with --peer, anomalib's step in the same run."""
    import torch

    if size % 32:
        raise click.BadParameter("must be a multiple of 32", param_hint="--size")
    result: dict[str, Any] = {
        "benchmark": "draem-train",
        "preset": preset,
        "size": size,
        "batch": batch,
        "steps": steps,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "fewgen": _training_step_seconds(preset, size, batch, steps, device),
    }
    if not no_ceiling and device == "cpu" and CPU_PEAK_SCRIPT.is_file():
        ceiling = _peer_json([sys.executable, str(CPU_PEAK_SCRIPT)])
        result["ceiling"] = ceiling
        result["share_of_conv_ceiling"] = round(result["fewgen"]["gflops"] / ceiling["conv3x3_gflops"], 3)
    if peer == "anomalib":
        if not peer_python.is_file() or not ANOMALIB_STEP_SCRIPT.is_file():
            raise click.UsageError(
                f"peer not available: need {peer_python} (shared/peers/setup.sh) and {ANOMALIB_STEP_SCRIPT}"
            )
        peer_result = _peer_json([str(peer_python), str(ANOMALIB_STEP_SCRIPT), str(size), str(batch), str(steps)])
        result["anomalib"] = peer_result
        # Above 1: fewgen's step is faster. Only like for like when preset is "paper" (anomalib has no other width).
        result["ratio"] = round(peer_result["seconds_per_step"] / result["fewgen"]["seconds_per_step"], 3)
        result["same_architecture"] = preset == "paper" and peer_result.get("params") == result["fewgen"]["params"]
    if not as_json:
        print(f"fewgen: {result['fewgen']['seconds_per_step']:.3f} s/step", file=sys.stderr)
    click.echo(json.dumps(result))


# --- draem-anomaly ----------------------------------------------------------------------------------------------------

ANOMALIB_TRAIN_SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "anomalib_draem_train.py"
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


@click.command("draem-anomaly")
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
@click.option("--seed", type=int, default=0, show_default=True, help="Split and training seed.")
@click.option(
    "--threads",
    type=int,
    help="torch threads of each detector (default: all cores, or half each with --peer, as both train at once).",
)
@click.option("--peer", type=click.Choice(["anomalib"]), help="Train anomalib's DRAEM at the same time, same budget.")
@click.option("--peer-python", type=click.Path(path_type=Path), default=DEFAULT_PEER_PYTHON, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Run folder (default: a temporary one).")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON result on stdout.")
def draem_anomaly(
    root: str,
    card: str,
    preset: str,
    minutes: float,
    size: int,
    batch: int,
    lr: float,
    textures: str | None,
    seed: int,
    threads: int | None,
    peer: str | None,
    peer_python: Path,
    out_dir: str | None,
    as_json: bool,
) -> None:
    """Train DRAEM within a time budget on good images and report every anomaly metric (and anomalib's, with --peer).

    With --peer both detectors train at the same time on half the cores each: the same
    machine, data split, image size and budget, and the same noise from other work.
    """
    import tempfile

    import torch
    import yaml

    from fewgen.cache import StepCache
    from fewgen.engine import Engine
    from fewgen.plugins import get_registry
    from fewgen.recipe import load_recipe
    from fewgen.testing import make_context
    from fewgen_draem.evaluator import AnomalyEvaluator, load_masks

    if size % 32:
        raise click.BadParameter("must be a multiple of 32", param_hint="--size")
    threads = threads or max(1, (os.cpu_count() or 1) // (2 if peer else 1))
    torch.set_num_threads(threads)
    params: dict[str, Any] = {
        "preset": preset, "size": size, "epochs": None, "minutes": minutes, "batch_size": batch, "lr": lr,
        "report_images": 16,
    }  # fmt: skip
    if textures:
        params["textures"] = str(Path(textures).resolve())
    recipe = {
        "name": "bench-draem-anomaly",
        "seed": seed,
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
    engine = Engine(registry, StepCache(target.parent / f"{target.name}.cache"), echo=lambda m: click.echo(m, err=True))

    peer_process = None
    if peer == "anomalib":
        if not peer_python.is_file() or not ANOMALIB_TRAIN_SCRIPT.is_file():
            raise click.UsageError(
                f"peer not available: need {peer_python} (shared/peers/setup.sh) and {ANOMALIB_TRAIN_SCRIPT}"
            )
        dataset, _, _ = engine.load_source(loaded)
        evaluator = AnomalyEvaluator(AnomalyEvaluator.Params.model_validate(params))
        train, test = evaluator.select(dataset)
        job = {
            "train": [str(s.image) for s in train],
            "test": [str(s.image) for s in test],
            "size": size, "batch": batch, "minutes": minutes, "threads": threads,
            "score_threads": os.cpu_count() or 1, "seed": seed,
            "textures": params.get("textures"),
        }  # fmt: skip
        job_path = target.parent / f"{target.name}.anomalib-job.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        peer_out = target.parent / f"{target.name}.anomalib.npz"
        peer_log = open(target.parent / f"{target.name}.anomalib.log", "w", encoding="utf-8")  # noqa: SIM115
        command = [str(peer_python), str(ANOMALIB_TRAIN_SCRIPT), str(job_path), str(peer_out)]
        peer_process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=peer_log, text=True)
        click.echo(f"anomalib's DRAEM is training alongside ({threads} threads, log {peer_log.name})", err=True)

    started = time.perf_counter()
    run = engine.run(loaded, target, overwrite=True)
    metrics = run.metrics["detect"]
    result: dict[str, Any] = {
        "benchmark": "draem-anomaly",
        "data": str(Path(root).resolve()),
        "card": card,
        "preset": preset,
        "size": size,
        "batch": batch,
        "lr": lr,
        "minutes": minutes,
        "threads": threads,
        "seed": seed,
        "textures": bool(textures),
        "train_images": metrics["train_images"],
        "test_images": metrics["test_images"],
        "fewgen": {**_summary(metrics), "training": metrics["training"]},
        "run_dir": str(run.out_dir),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    if peer_process is not None:
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
        result["anomalib"] = {**_summary(peer_metrics), "training": peer_training}
    if not as_json:
        click.echo(f"report: {run.out_dir / 'reports' / 'detect' / 'report.html'}", err=True)
    click.echo(json.dumps(result))
