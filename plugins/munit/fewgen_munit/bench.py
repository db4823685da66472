"""MUNIT benchmarks: translation quality on two unpaired domain folders, and training speed.

``fewgen bench munit --data DIR``: train MUNIT on DIR/<domain-a> and DIR/<domain-b> for a
time budget, then translate held-out domain-a images with K styles each and measure what
:mod:`fewgen_munit.metrics` measures: the share a domain classifier (trained on the real
training images of both domains) calls domain b, style diversity and edge SSIM. The
`augment` plugin's albumentations look for the same domain (its ``night`` preset by default)
gets the same metrics on the same images, as the baseline to beat.

``fewgen bench munit-speed``: seconds per training iteration and per translated image.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from fewgen.bench import Bench, BenchResult, bench_command, precision_figures, precision_option

JUDGED_TARGET_SHARE = 0.8  # the MUNIT issue's targets
EDGE_SSIM_TARGET = 0.5


def split_files(files: list[Path], held_out: float, seed: int) -> tuple[list[Path], list[Path]]:
    """(train, held-out): a seeded shuffle, with round(held_out * n) files (at least one) held out."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(files))
    count = max(1, round(held_out * len(files)))
    held = sorted(files[i] for i in order[:count])
    return sorted(files[i] for i in order[count:]), held


def _summary(values: Any) -> dict[str, float]:
    """Mean and 95 % confidence half-width of per-image values (a tensor), rounded for the report."""
    from fewgen.verdicts import mean_ci

    result = mean_ci(values.double().cpu().numpy())
    low, high = result["ci"]
    return {"mean": round(result["mean"], 4), "ci95": round((high - low) / 2, 4), "n": result["n"]}


def translation_metrics(classifier: Any, sources: Any, outputs: Any, classifier_size: int) -> dict[str, Any]:
    """The metrics of K outputs (K, N, 3, H, W) of N sources (N, 3, H, W), all in [0, 1]."""
    from fewgen.measures import edge_ssim
    from fewgen_munit import metrics

    k, n = outputs.shape[:2]
    flat = outputs.reshape(k * n, *outputs.shape[2:])
    probability = metrics.target_probability(classifier, flat, classifier_size)
    edges = edge_ssim(sources.repeat(k, 1, 1, 1), flat)
    result: dict[str, Any] = {
        "judged_target_share": round(float((probability > 0.5).float().mean()), 4),
        "target_probability": _summary(probability),
        "edge_ssim": _summary(edges),
    }
    if k >= 2:
        result["diversity_l1"] = _summary(metrics.diversity(outputs))
    return result


def augment_outputs(sources: Any, preset: str, copies: int, seed: int) -> Any:
    """(copies, N, 3, H, W) in [0, 1]: the `augment` plugin's preset applied to each source ``copies`` times."""
    import numpy as np
    import torch

    try:
        from fewgen_augment.presets import PRESETS, build_pipeline
    except ImportError:
        raise click.ClickException(
            "the baseline needs the fewgen-augment plugin:"
            " pip install 'fewgen-munit[bench]' (or pip install -e plugins/augment)"
        ) from None
    if preset not in PRESETS:
        raise click.BadParameter(f"unknown augment preset {preset!r}", param_hint="--baseline")
    from fewgen_munit.data import to_uint8

    pipeline = build_pipeline(PRESETS[preset].steps, 0.0)
    out = torch.empty(copies, *sources.shape)
    for index, source in enumerate(sources):
        pixels = to_uint8(source)
        for copy in range(copies):
            pipeline.set_random_seed(int(np.random.default_rng([seed, index, copy]).integers(2**32)))
            result = pipeline(image=pixels, bboxes=np.zeros((0, 4)), box_index=[])["image"]
            out[copy, index] = torch.from_numpy(result).permute(2, 0, 1).float() / 255
    return out


def _save_grid(path: Path, sources: Any, translated: Any, baseline: Any, rows: int = 6) -> None:
    """A PNG: per row one source, its K translations, then the baseline's first copy."""
    import torch

    from fewgen.imageio import save_image
    from fewgen_munit.data import to_uint8

    rows = min(rows, sources.shape[0])
    lines = [torch.cat([sources[r], *translated[:, r], baseline[0, r]], dim=-1) for r in range(rows)]
    save_image(to_uint8(torch.cat(lines, dim=-2)), path)


@bench_command("munit")
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Folder with one subfolder of images per domain (e.g. ../shared/data/day_night).",
)
@click.option("--domain-a", default="day", show_default=True, help="Subfolder of the source domain.")
@click.option("--domain-b", default="night", show_default=True, help="Subfolder of the target domain.")
@click.option("--preset", type=click.Choice(["tiny", "small", "paper"]), default="tiny", show_default=True)
@click.option("--size", type=int, default=128, show_default=True, help="Short side images are resized to; crop side.")
@click.option("--minutes", type=float, default=5.0, show_default=True, help="Training wall-clock budget.")
@click.option("--iterations", type=int, default=1_000_000, show_default=True, help="Upper bound on iterations.")
@click.option("--batch", type=int, default=1, show_default=True, help="Images per domain per iteration.")
@click.option(
    "--cycle-weight",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Weight of the explicit cycle loss (the munit step's cycle_weight; 10 in the official scene configs).",
)
@click.option("--styles", type=int, default=4, show_default=True, help="Styles (outputs) per held-out image.")
@click.option("--held-out", type=float, default=0.2, show_default=True, help="Share of each domain held out.")
@click.option("--baseline", default="night", show_default=True, help="The augment preset measured beside MUNIT.")
@click.option("--classifier-steps", type=int, default=600, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the checkpoint (a rerun resumes it) and a PNG grid of translations here.",
)
def munit_bench(
    bench: Bench,
    data: Path,
    domain_a: str,
    domain_b: str,
    preset: str,
    size: int,
    minutes: float,
    iterations: int,
    batch: int,
    cycle_weight: float,
    styles: int,
    held_out: float,
    baseline: str,
    classifier_steps: int,
    out: Path | None,
) -> BenchResult:
    """MUNIT A->B on held-out images vs the augment preset: domain share, diversity, edge SSIM.

    --seed is the split, training, classifier and style seed.
    """
    import tempfile

    import torch

    from fewgen.imageio import CorruptImage, load_rgb
    from fewgen_munit.data import at_working_scale, centre_crop, image_files, random_crops, resize, restore_detail
    from fewgen_munit.metrics import ClassifierConfig, target_probability, train_domain_classifier
    from fewgen_munit.model import PRESETS, min_side
    from fewgen_munit.training import WEIGHTS, MunitTrainer

    seed = bench.seed
    if size % 4 or size < min_side(PRESETS[preset]):
        raise click.BadParameter(
            f"must be a multiple of 4 and at least {min_side(PRESETS[preset])} for {preset}", param_hint="--size"
        )
    folders = {name: data / name for name in (domain_a, domain_b)}
    files = {}
    for name, folder in folders.items():
        if not folder.is_dir():
            raise click.BadParameter(f"{folder} is not a folder", param_hint="--data")
        files[name] = image_files(folder)
        if len(files[name]) < 5:
            raise click.BadParameter(
                f"{folder} holds {len(files[name])} images; at least 5 needed", param_hint="--data"
            )
    splits = {name: split_files(found, held_out, seed) for name, found in files.items()}

    def load(paths: list[Path]) -> list[torch.Tensor]:
        loaded = []
        for path in paths:
            try:
                loaded.append(at_working_scale(load_rgb(path), size))
            except CorruptImage as exc:
                bench.say(f"skipped {path}: {exc}")
        return loaded

    train_a, train_b = load(splits[domain_a][0]), load(splits[domain_b][0])
    test_a, test_b = load(splits[domain_a][1]), load(splits[domain_b][1])
    bench.say(
        f"{domain_a}: {len(train_a)} train / {len(test_a)} held out; "
        f"{domain_b}: {len(train_b)} train / {len(test_b)} held out"
    )

    trainer = MunitTrainer(preset, seed=seed, weights=replace(WEIGHTS, recon_x_cyc=cycle_weight))
    workdir = out or Path(tempfile.mkdtemp(prefix="fewgen-munit-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # CPU time as well as wall time: on a shared machine the two differ, and targets speak of CPU-minutes.
    cpu_started = time.process_time()

    def report(done: int, losses: dict[str, float]) -> None:
        if done % 100 == 0:
            elapsed = time.perf_counter() - started
            bench.say(
                f"iteration {done}  {elapsed / 60:.1f} min  recon_x_a {losses.get('recon_x_a', 0):.3f}  "
                f"gen {losses.get('gen_total', 0):.3f}  dis {losses.get('dis_total', 0):.3f}"
            )

    fit = trainer.fit(
        lambda g: (random_crops(train_a, batch, g, size), random_crops(train_b, batch, g, size)),
        iterations=iterations,
        minutes=minutes,
        checkpoint=workdir / "munit.pt",
        checkpoint_every=500,
        on_step=report,
    )
    cpu_minutes = (time.process_time() - cpu_started) / 60
    bench.say(f"trained {fit.iterations - fit.resumed_from} iterations in {fit.seconds / 60:.1f} min")

    unit = lambda images: torch.stack([i.float() / 255 for i in images])  # noqa: E731
    classifier_config = ClassifierConfig(steps=classifier_steps)
    classifier = train_domain_classifier(
        [i.float() / 255 for i in train_a], [i.float() / 255 for i in train_b], seed, classifier_config
    )
    sources = unit([centre_crop(i, size) for i in test_a])
    real_b = unit([centre_crop(i, size) for i in test_b])
    p_real_a = target_probability(classifier, sources, classifier_config.size)
    p_real_b = target_probability(classifier, real_b, classifier_config.size)
    classifier_accuracy = float(torch.cat([p_real_a <= 0.5, p_real_b > 0.5]).float().mean())

    style_generator = torch.Generator().manual_seed(seed + 1)
    translated = (trainer.translate(sources * 2 - 1, "a2b", styles=styles, generator=style_generator) + 1) / 2
    augmented = augment_outputs(sources, baseline, styles, seed)
    munit_metrics = translation_metrics(classifier, sources, translated, classifier_config.size)
    baseline_metrics = translation_metrics(classifier, sources, augmented, classifier_config.size)
    # What the recipe step writes with keep_detail: held-out images at twice the training scale,
    # translated at the training scale, resized up, the source's fine detail added back.
    large = unit([centre_crop(at_working_scale(load_rgb(p), 2 * size), 2 * size) for p in splits[domain_a][1]])
    low = resize(large, (size, size))
    style_generator = torch.Generator().manual_seed(seed + 1)
    translated_low = (trainer.translate(low * 2 - 1, "a2b", styles=styles, generator=style_generator) + 1) / 2
    up = resize(translated_low.flatten(0, 1), (2 * size, 2 * size)).view(styles, len(large), 3, 2 * size, 2 * size)
    round_trip = resize(low, (2 * size, 2 * size))
    detailed = torch.stack(
        [restore_detail(up[:, i], large[i : i + 1], round_trip[i : i + 1]) for i in range(len(large))], 1
    )
    detail_metrics = translation_metrics(classifier, large, detailed, classifier_config.size)
    baseline_large = translation_metrics(
        classifier, large, augment_outputs(large, baseline, styles, seed), classifier_config.size
    )
    grid = workdir / "translations.png"
    _save_grid(grid, sources, translated, augmented)

    figures = {
        "train_images": {domain_a: len(train_a), domain_b: len(train_b)},
        "held_out_images": {domain_a: len(test_a), domain_b: len(test_b)},
        # fewgen.training's summary: iterations over every resume, this call's seconds and rate, ...
        "training": fit.to_dict(),
        "train_cpu_minutes": round(cpu_minutes, 2),
        "classifier": {
            "accuracy_held_out_real": round(classifier_accuracy, 4),
            f"real_{domain_a}_judged_{domain_b}": round(float((p_real_a > 0.5).float().mean()), 4),
            f"real_{domain_b}_judged_{domain_b}": round(float((p_real_b > 0.5).float().mean()), 4),
        },
        "munit": munit_metrics,
        f"augment_{baseline}": baseline_metrics,
        f"munit_keep_detail_{2 * size}px": detail_metrics,
        f"augment_{baseline}_{2 * size}px": baseline_large,
        "grid": str(grid),
    }
    checks = {
        "judged_target_share": munit_metrics["judged_target_share"] >= JUDGED_TARGET_SHARE,
        "above_baseline": munit_metrics["judged_target_share"] > baseline_metrics["judged_target_share"],
        "edge_ssim": munit_metrics["edge_ssim"]["mean"] >= EDGE_SSIM_TARGET,
    }
    figures["target_checks"] = checks
    target = {
        "judged_target_share_at_least": JUDGED_TARGET_SHARE,
        "judged_target_share_above": f"augment_{baseline}",
        "edge_ssim_at_least": EDGE_SSIM_TARGET,
    }
    return BenchResult(figures, target, all(checks.values()))


@bench_command("munit-speed", device=True)
@click.option("--preset", type=click.Choice(["tiny", "small", "paper"]), default="paper", show_default=True)
@click.option("--size", type=int, default=256, show_default=True, help="Training crop side.")
@click.option("--batch", type=int, default=1, show_default=True)
@click.option("--iterations", type=int, default=3, show_default=True, help="Timed iterations (after one warm-up).")
@precision_option("the forward passes and losses")
def munit_speed(
    bench: Bench, preset: str, size: int, batch: int, iterations: int, precisions: tuple[str, ...]
) -> BenchResult:
    """Seconds per MUNIT training iteration (dis + gen update) and per translated image."""
    device = bench.resolved_device()
    by_precision = {}
    for precision in dict.fromkeys(precisions):
        bench.say(f"timing {iterations} {preset} iterations at {size} px on {device}, {precision}")
        by_precision[precision] = _iteration_seconds(preset, size, batch, iterations, device, bench.seed, precision)
    figures = {**next(iter(by_precision.values())), **precision_figures(by_precision, "seconds_per_iteration")}
    return BenchResult(figures, settings={"device": device})


def _iteration_seconds(
    preset: str, size: int, batch: int, iterations: int, device: str, seed: int, precision: str
) -> dict[str, float]:
    import torch

    from fewgen_munit.training import MunitTrainer

    trainer = MunitTrainer(preset, device=device, seed=seed, precision=precision)  # type: ignore[arg-type]
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(2, batch, 3, size, size, generator=generator) * 2 - 1

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    trainer.step(images[0], images[1])  # warm-up: allocations, kernel choice
    sync()
    started = time.perf_counter()
    for _ in range(iterations):
        trainer.step(images[0], images[1])
    sync()
    per_iteration = (time.perf_counter() - started) / iterations
    trainer.translate(images[0][:1], "a2b", styles=1, generator=generator)
    sync()
    started = time.perf_counter()
    trainer.translate(images[0], "a2b", styles=1, generator=generator)
    sync()
    per_image = (time.perf_counter() - started) / batch
    return {"seconds_per_iteration": round(per_iteration, 4), "translate_seconds_per_image": round(per_image, 4)}
