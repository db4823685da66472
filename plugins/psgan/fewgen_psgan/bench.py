"""``fewgen bench psgan``: train PS-GAN on a detection dataset's boxes of one class and measure its realism.

The dataset's images that hold a box of the class are split at random (by ``--seed``) into
training and held-out images. PS-GAN trains on windows around the training images' boxes
for ``--minutes`` (or ``--iterations``); then, on the held-out images only:

* **held_out**: L1 and SSIM between the generated and the real box regions of held-out
  windows whose boxes were filled with noise (:func:`fewgen_psgan.realism.box_fidelity`);
* **hog_in_place**: the HOG people detector's hit rate on the held-out boxes repainted by
  the generator in their own images, beside its hit rate on the same boxes unchanged:
  exactly the same sizes, places and surroundings;
* **hog_inserted**: new boxes placed by :class:`fewgen.placement.BoxPlacement`
  (learned from the training images) into ``--rounds`` copies of every held-out image and
  painted, beside the real boxes of the same heights: for each inserted box, the ``k`` usable real boxes of the
  whole dataset closest to it in height (:func:`fewgen_psgan.realism.hog_detected` on each),
  and, as a control, the same new boxes in the unpainted image (``background``): how often
  the detector fires there with no pedestrian at all.

The figures also hold the pair counts, the training summary (iterations per second) and
the networks' sizes. With ``--detect-epochs`` they add ``detection``: YOLO detectors trained
without synthetic data, with PS-GAN's and with copy_paste's objects, at equal steps over
several seeds (:mod:`fewgen_psgan.bench_detect`). The target is the PS-GAN issue's: inserted
boxes found by the detector at least half as often as real boxes of the same heights.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from fewgen.bench import Bench, BenchResult, bench_command

REAL_NEIGHBOURS = 5
INSERTED_RATIO_TARGET = 0.5


def read_dataset(data: Path, fmt: str, options: tuple[str, ...]) -> Any:
    from fewgen.plugins import load_registry

    registry = load_registry()
    format_class = registry.dataset_format(fmt)
    values = dict(option.split("=", 1) for option in options)
    result = format_class().read(data, format_class.Options(**values))
    return result.dataset


def rate(hits: list[bool]) -> float:
    return round(sum(hits) / len(hits), 4) if hits else 0.0


@bench_command("psgan", device=True)
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", default="yolo", show_default=True, help="fewgen dataset format of --data.")
@click.option("--option", "options", multiple=True, help="KEY=VALUE option of the format (repeatable).")
@click.option("--class", "class_id", type=int, default=0, show_default=True, help="Class id of the objects.")
@click.option("--preset", default="tiny", show_default=True, help="tiny, small or paper.")
@click.option("--minutes", type=float, default=None, help="Training budget in minutes.")
@click.option("--iterations", type=int, default=None, help="Training iterations (with or without --minutes).")
@click.option("--held-out", type=float, default=0.25, show_default=True, help="Share of the images held out.")
@click.option("--context", type=float, default=1.5, show_default=True, help="Window side / the box's longer side.")
@click.option("--min-height", type=float, default=24.0, show_default=True, help="Smallest box height used (px).")
@click.option("--per-image", type=int, default=2, show_default=True, help="Boxes inserted per held-out image.")
@click.option("--rounds", type=int, default=4, show_default=True, help="Painted copies of each held-out image.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), help="Resume from / save to here.")
@click.option(
    "--detect-epochs",
    type=int,
    default=None,
    help="Also compare detectors trained with PS-GAN, with copy_paste and without synthetic data, at equal steps "
    "(this many epochs of the largest training set); needs --iterations and a dataset card (--detect-card).",
)
@click.option("--detect-card", default="coco128", show_default=True, help="Dataset card of --data, for its splits.")
@click.option("--detect-class", default="person", show_default=True, help="Name of --class in the card's classes.")
@click.option("--detect-imgsz", type=int, default=320, show_default=True, help="Detector image size.")
@click.option("--detect-seeds", default="0,1,2", show_default=True, help="Comma-separated detector training seeds.")
@click.option("--detect-out", type=click.Path(file_okay=False, path_type=Path), help="Run folder of the comparison.")
def psgan_bench(
    bench: Bench,
    data: Path,
    fmt: str,
    options: tuple[str, ...],
    class_id: int,
    preset: str,
    minutes: float | None,
    iterations: int | None,
    held_out: float,
    context: float,
    min_height: float,
    per_image: int,
    rounds: int,
    checkpoint: Path | None,
    detect_epochs: int | None,
    detect_card: str,
    detect_class: str,
    detect_imgsz: int,
    detect_seeds: str,
    detect_out: Path | None,
) -> BenchResult:
    """Train PS-GAN for a budget and report HOG hit rates (synthetic vs real), held-out L1/SSIM and speed.

    --seed is the split, training and evaluation seed.
    """
    import numpy as np
    import torch

    from fewgen.imageio import load_rgb
    from fewgen.measures import people_detector
    from fewgen.placement import BoxPlacement
    from fewgen_psgan.insertion import Painter
    from fewgen_psgan.model import PRESETS
    from fewgen_psgan.pairs import PairRules, build_pairs, skip_reason
    from fewgen_psgan.realism import box_fidelity, hog_detected
    from fewgen_psgan.training import PsganTrainer

    if preset not in PRESETS:
        raise click.BadParameter(
            f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}", param_hint="--preset"
        )
    if minutes is None and iterations is None:
        raise click.UsageError("give --minutes, --iterations or both")
    if detect_epochs is not None and iterations is None:
        raise click.UsageError("--detect-epochs trains PS-GAN inside a recipe, which needs --iterations (not minutes)")
    seed, say = bench.seed, bench.say
    dataset = read_dataset(data, fmt, options)
    with_class = [s for s in dataset if any(b.cls == class_id for b in s.boxes)]
    if len(with_class) < 4:
        raise click.UsageError(f"only {len(with_class)} images of {data} hold a box of class {class_id}")
    order = np.random.default_rng(seed).permutation(len(with_class))
    cut = max(1, round(held_out * len(with_class)))
    held = [with_class[i] for i in sorted(order[:cut])]
    train = [with_class[i] for i in sorted(order[cut:])]
    config = PRESETS[preset]
    rules = PairRules(cls=class_id, size=config.size, context=context, min_height=min_height)
    pairs = build_pairs(train, rules)
    held_pairs = build_pairs(held, rules)
    if len(pairs) < 2 or len(held_pairs) < 1:
        raise click.UsageError(f"too few usable boxes: {len(pairs)} for training, {len(held_pairs)} held out")
    say(f"{len(pairs)} training windows from {len(train)} images, {len(held_pairs)} held out; training {preset}")

    device = bench.resolved_device()
    trainer = PsganTrainer(config, device=device, seed=seed)
    started = time.perf_counter()

    def report(iteration: int, losses: dict[str, float]) -> None:
        if iteration % 100 == 0:
            say(f"  {iteration} it, {time.perf_counter() - started:.0f} s, l1 {losses['l1']:.3f}")

    summary = trainer.fit(
        lambda generator: pairs.batch(generator, config.batch_size),
        iterations=iterations,
        minutes=minutes,
        checkpoint=checkpoint,
        on_step=report,
    )
    say(f"trained {summary.iterations} iterations; measuring")

    # A generator of its own for evaluation noise: the measurements do not depend on how long training ran.
    noise = torch.Generator().manual_seed(seed + 1)
    generated = trainer.generate(held_pairs.inputs(noise))
    fidelity = box_fidelity(generated, *held_pairs.centred())

    detector = people_detector()
    painter = Painter(trainer.model.generator, config.size, context, device=device)
    in_place_real: list[bool] = []
    in_place_fake: list[bool] = []
    by_sample: dict[str, list] = {}
    for sample_id, box in held_pairs.sources:
        by_sample.setdefault(sample_id, []).append(box)
    images = {s.id: load_rgb(s.image) for s in held}
    for sample_id, boxes in by_sample.items():
        image = images[sample_id]
        in_place_real += hog_detected(image, boxes, detector)
        in_place_fake += hog_detected(painter.paint(image, boxes, noise), boxes, detector)

    placement = BoxPlacement.fit(train, class_id)
    rng = np.random.default_rng(seed + 2)
    inserted_hits: list[bool] = []
    background_hits: list[bool] = []  # the control: the same boxes left unpainted
    inserted_heights: list[float] = []
    for sample in held:
        image = images[sample.id]
        height, width = image.shape[:2]
        for _ in range(rounds):  # each round paints a fresh copy of the real image
            boxes = placement.place(width, height, sample.boxes, per_image, rng, min_height=min_height)
            if boxes:
                inserted_hits += hog_detected(painter.paint(image, boxes, noise), boxes, detector)
                background_hits += hog_detected(image, boxes, detector)
                inserted_heights += [b.height for b in boxes]
    real_boxes = [
        (s, b)
        for s in dataset
        for b in s.boxes
        if b.cls == class_id and skip_reason(b, s.width, s.height, rules) is None
    ]
    real_heights = np.array([b.height for _, b in real_boxes])
    real_cache: dict[int, bool] = {}
    real_rates = []
    for wanted in inserted_heights:
        nearest = np.argsort(np.abs(real_heights - wanted), kind="stable")[:REAL_NEIGHBOURS]
        for index in nearest:
            if int(index) not in real_cache:
                sample, box = real_boxes[int(index)]
                real_cache[int(index)] = hog_detected(load_rgb(sample.image), [box], detector)[0]
        real_rates.append(float(np.mean([real_cache[int(i)] for i in nearest])))

    real_same_size = round(float(np.mean(real_rates)), 4) if real_rates else 0.0
    inserted_ratio = round(rate(inserted_hits) / real_same_size, 3) if real_same_size else None
    figures: dict[str, Any] = {
        "pairs": {
            "train_images": len(train),
            "held_out_images": len(held),
            "train": pairs.report.to_json(),
            "held_out": held_pairs.report.to_json(),
        },
        "parameters": trainer.parameters(),
        "training": summary.to_dict(),
        "held_out": fidelity,
        "hog_in_place": {
            "boxes": len(in_place_real),
            "synthetic": rate(in_place_fake),
            "real": rate(in_place_real),
            "ratio": round(rate(in_place_fake) / rate(in_place_real), 3) if rate(in_place_real) else None,
        },
        "hog_inserted": {
            "boxes": len(inserted_hits),
            "images": len(held),
            "rounds": rounds,
            "synthetic": rate(inserted_hits),
            "real_same_size": real_same_size,
            "background": rate(background_hits),
            "real_boxes_used": len(real_cache),
            "ratio": inserted_ratio,
        },
    }
    if detect_epochs is not None:
        from fewgen_psgan.bench_detect import detection_recipe, downstream_detection

        assert iterations is not None  # checked above
        recipe = detection_recipe(
            data,
            detect_card,
            class_id,
            detect_class,
            preset=preset,
            iterations=iterations,
            min_height=min_height,
            per_image=per_image,
            epochs=detect_epochs,
            imgsz=detect_imgsz,
            seeds=[int(value) for value in detect_seeds.split(",")],
            seed=seed,
            device=bench.device or "auto",
        )
        say("downstream detection: baseline, psgan and copy_paste variants")
        figures["detection"] = downstream_detection(recipe, detect_out, say)
    # No real box of those heights found: nothing to hold the painted ones against.
    met = inserted_ratio >= INSERTED_RATIO_TARGET if inserted_ratio is not None else None
    return BenchResult(figures, {"hog_inserted_ratio_at_least": INSERTED_RATIO_TARGET}, met)
