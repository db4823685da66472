"""Training and translation with :class:`fewgen_munit.model.Munit`: the official iteration.

One iteration (``train.py`` / ``trainer.py`` of github.com/NVlabs/MUNIT):

1. **Discriminator update.** Draw fresh prior styles s_a, s_b ~ N(0, I). Encode both
   batches, translate x_ba = gen_a.decode(c_b, s_a) and x_ab = gen_b.decode(c_a, s_b),
   and train dis_a on (x_a real, x_ba fake) and dis_b on (x_b real, x_ab fake) with the
   LSGAN loss, the translations detached. One Adam step on both discriminators.
2. **Generator update.** Draw new prior styles and compute every term of
   :func:`fewgen_munit.losses.generator_terms` (within-domain reconstruction, cross-domain
   translation, re-encoding for the style and content reconstruction, the optional cycle,
   the LSGAN generator loss), weight them with :class:`~fewgen_munit.losses.LossWeights`,
   and take one Adam step on both generators.
3. **Learning rate.** Step both step-decay schedulers (halve every 100k iterations).

:class:`MunitTrainer` is a :class:`fewgen.training.Trainable`: :func:`fewgen.training.fit` runs
the loop, the budget (iterations and/or minutes, counted over every resume), the atomic
checkpoints and their identity check. Randomness (the batches and the prior styles) comes from
one ``torch.Generator`` held by the trainer; the trainer's state holds the weights, both
optimisers, both schedulers and that generator's state, so an interrupted run resumes exactly
where it stopped. This module knows nothing of fewgen's datasets: it takes tensors, or image
paths.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from fewgen.training import Budget, FitSummary, autocast, fit
from fewgen_munit import losses
from fewgen_munit.losses import LossWeights
from fewgen_munit.model import OPTIM, PRESETS, Munit, MunitConfig, OptimConfig, adam, check_image, step_decay

# Part of the identity. 3: the state inside fewgen.training's checkpoint; the plugin's own
# format-1 and format-2 files are refused in one line.
CHECKPOINT_FORMAT = 3
DIRECTIONS = ("a2b", "b2a")
WEIGHTS = LossWeights()  # the official loss weights

# Draws one training batch (x_a, x_b), each (B, 3, H, W) in [-1, 1], from the trainer's generator.
BatchSampler = Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]
# Called after every iteration with (iterations done in all, the iteration's losses).
StepCallback = Callable[[int, dict[str, float]], None]


class MunitTrainer:
    """Both MUNIT domains' networks, their optimisers and schedulers, and one random generator (a
    :class:`fewgen.training.Trainable` once :meth:`fit` gives it its batches)."""

    def __init__(
        self,
        config: MunitConfig | str = "tiny",
        device: str | torch.device = "cpu",
        seed: int = 0,
        weights: LossWeights = WEIGHTS,
        optim: OptimConfig = OPTIM,
        init: str = "kaiming",
        perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        precision: Literal["fp32", "bf16"] = "fp32",
    ) -> None:
        if isinstance(config, str):
            if config not in PRESETS:
                raise ValueError(f"unknown MUNIT preset {config!r}; choose one of {', '.join(PRESETS)}")
            config = PRESETS[config]
        if weights.vgg and perceptual is None:
            raise ValueError("the perceptual term has a nonzero weight but no perceptual loss was given")
        self.config = config
        self.device = torch.device(device)
        self.seed = seed
        self.weights = weights
        self.optim = optim
        self.init = init
        self.perceptual = perceptual
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
        # bf16: the forward passes and losses under autocast, the backward passes and weights fp32.
        self.precision = precision
        torch.manual_seed(seed)  # the initial weights
        self.model = Munit(config, init).to(self.device)
        self.dis_opt = adam(self.model.discriminator_parameters(), optim)
        self.gen_opt = adam(self.model.generator_parameters(), optim)
        self.dis_scheduler = step_decay(self.dis_opt, optim)
        self.gen_scheduler = step_decay(self.gen_opt, optim)
        self.generator = torch.Generator().manual_seed(seed)  # batches and prior styles
        self.sample_batch: BatchSampler | None = None  # set by fit

    # --- one iteration -----------------------------------------------------------------

    def _prepare(self, x_a: torch.Tensor, x_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for images in (x_a, x_b):
            if not images.is_floating_point():
                raise TypeError(f"training images must be float in [-1, 1], got {images.dtype}")
            check_image(images, self.config)
        return x_a.to(self.device), x_b.to(self.device)

    def dis_update(self, x_a: torch.Tensor, x_b: torch.Tensor) -> dict[str, float]:
        """The official ``dis_update``: LSGAN on both domains against detached translations, one Adam step."""
        x_a, x_b = self._prepare(x_a, x_b)
        model = self.model
        model.train()
        s_a = model.gen_a.random_style(x_a.shape[0], self.generator)
        s_b = model.gen_b.random_style(x_b.shape[0], self.generator)
        self.dis_opt.zero_grad(set_to_none=True)
        with autocast(self.precision, self.device):
            # The official code builds this graph and detaches the outputs; no_grad gives the same
            # values without the graph.
            with torch.no_grad():
                c_a, _ = model.gen_a.encode(x_a)
                c_b, _ = model.gen_b.encode(x_b)
                x_ba = model.gen_a.decode(c_b, s_a)
                x_ab = model.gen_b.decode(c_a, s_b)
            loss_a = model.dis_a.dis_loss(x_ba, x_a)
            loss_b = model.dis_b.dis_loss(x_ab, x_b)
            total = losses.discriminator_objective([loss_a, loss_b], self.weights)
        total.float().backward()
        self.dis_opt.step()
        return {"dis_a": float(loss_a.detach()), "dis_b": float(loss_b.detach()), "dis_total": float(total.detach())}

    def gen_update(self, x_a: torch.Tensor, x_b: torch.Tensor) -> dict[str, float]:
        """The official ``gen_update``: every generator term, weighted, one Adam step on both generators."""
        x_a, x_b = self._prepare(x_a, x_b)
        model = self.model
        model.train()
        s_a = model.gen_a.random_style(x_a.shape[0], self.generator)
        s_b = model.gen_b.random_style(x_b.shape[0], self.generator)
        discriminators = model.discriminator_parameters()
        # The discriminators only pass gradients through here; their own gradients would be discarded.
        for parameter in discriminators:
            parameter.requires_grad_(False)
        try:
            self.gen_opt.zero_grad(set_to_none=True)
            with autocast(self.precision, self.device):
                terms = losses.generator_terms(
                    model.gen_a,
                    model.gen_b,
                    model.dis_a,
                    model.dis_b,
                    x_a,
                    x_b,
                    s_a,
                    s_b,
                    self.weights,
                    self.perceptual,
                )
                total = losses.generator_objective(terms, self.weights)
            total.float().backward()
            self.gen_opt.step()
        finally:
            for parameter in discriminators:
                parameter.requires_grad_(True)
        out = {
            f"{name}_{domain}": float(value.detach())
            for name, values in terms.items()
            for domain, value in zip("ab", values, strict=True)
        }
        out["gen_total"] = float(total.detach())
        return out

    def step(self, x_a: torch.Tensor, x_b: torch.Tensor) -> dict[str, float]:
        """One official iteration: discriminator update, generator update, learning-rate schedule."""
        result = self.dis_update(x_a, x_b)
        result |= self.gen_update(x_a, x_b)
        result["lr"] = self.gen_opt.param_groups[0]["lr"]
        self.dis_scheduler.step()
        self.gen_scheduler.step()
        return result

    def train_step(self) -> dict[str, float]:
        """One iteration on a batch drawn from the trainer's generator by the sampler :meth:`fit` was given."""
        if self.sample_batch is None:
            raise RuntimeError("munit: train_step() draws its batches through fit(sample_batch, ...)")
        return self.step(*self.sample_batch(self.generator))

    # --- training loop -----------------------------------------------------------------

    def fit(
        self,
        sample_batch: BatchSampler,
        iterations: int,
        minutes: float | None = None,
        checkpoint: Path | None = None,
        checkpoint_every: int = 1000,
        on_step: StepCallback | None = None,
    ) -> FitSummary:
        """Train until ``iterations`` are done or ``minutes`` of training have passed, both counted over resumes.

        ``sample_batch(generator)`` draws (x_a, x_b) from the trainer's generator (see
        :func:`random_batch`), so a resumed run draws the same batches. With ``checkpoint`` the
        state is loaded from there if the file exists, saved every ``checkpoint_every``
        iterations, and saved when the call ends (:func:`fewgen.training.fit`).
        """
        self.sample_batch = sample_batch
        budget = Budget(iterations=iterations, minutes=minutes)
        return fit(self, budget, checkpoint, checkpoint_every, on_step, self.device)

    # --- translation -------------------------------------------------------------------

    @torch.no_grad()
    def translate(
        self,
        images: torch.Tensor,
        direction: str = "a2b",
        styles: int | torch.Tensor = 1,
        generator: torch.Generator | None = None,
        batch_size: int = 16,
    ) -> torch.Tensor:
        """(K, N, 3, H, W) translations in [-1, 1] of ``images`` (N, 3, H, W) in [-1, 1].

        ``styles`` is K, the number of prior styles drawn from N(0, I) (from ``generator``,
        or torch's global generator; never the training generator), or (K, 3, h, w) images
        of the target domain whose encoded styles are used. As the official test script
        does, the networks run in eval mode, which changes nothing in them: every instance norm
        uses the image's own statistics and nothing else depends on the mode.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
        check_image(images, self.config)
        model = self.model
        source, target = (model.gen_a, model.gen_b) if direction == "a2b" else (model.gen_b, model.gen_a)
        was_training = model.training
        model.eval()
        try:
            if isinstance(styles, int):
                if styles < 1:
                    raise ValueError(f"styles must be >= 1, got {styles}")
                codes = target.random_style(styles, generator)
            else:
                check_image(styles, self.config)
                codes = torch.cat(
                    [
                        target.enc_style(styles[i : i + batch_size].float().to(self.device))
                        for i in range(0, len(styles), batch_size)
                    ]
                )
            outputs = torch.empty(len(codes), *images.shape, dtype=torch.float32)
            for start in range(0, len(images), batch_size):
                content = source.enc_content(images[start : start + batch_size].float().to(self.device))
                for k, code in enumerate(codes):
                    style = code.expand(content.shape[0], *code.shape)
                    outputs[k, start : start + content.shape[0]] = target.decode(content, style).float().cpu()
            return outputs
        finally:
            model.train(was_training)

    # --- checkpoints (fewgen.training.Trainable) ---------------------------------------

    def identity(self) -> dict[str, object]:
        """What must match for a checkpoint to be resumed."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": asdict(self.config),
            "weights": asdict(self.weights),
            "optim": asdict(self.optim),
            "init": self.init,
            "seed": self.seed,
            "precision": self.precision,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "dis_opt": self.dis_opt.state_dict(),
            "gen_opt": self.gen_opt.state_dict(),
            "dis_scheduler": self.dis_scheduler.state_dict(),
            "gen_scheduler": self.gen_scheduler.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.dis_opt.load_state_dict(state["dis_opt"])
        self.gen_opt.load_state_dict(state["gen_opt"])
        self.dis_scheduler.load_state_dict(state["dis_scheduler"])
        self.gen_scheduler.load_state_dict(state["gen_scheduler"])
        self.generator.set_state(state["generator"].cpu())


# ---------------------------------------------------------------------------------------------
# Data


def load_domain_images(paths: Sequence[str | Path], size: int) -> torch.Tensor:
    """(N, 3, size, size) uint8: each image's short side resized to ``size`` (bilinear,
    antialiased), then the centre ``size`` x ``size`` crop. The official loader resizes the
    short side too and then crops at random; use :func:`random_batch` on larger images for that."""
    import numpy as np

    from fewgen.imageio import open_image

    out = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)
    for index, path in enumerate(paths):
        with open_image(path) as image:  # over fewgen's pixel limit: a CorruptImage naming the file
            pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)[None].float()
        height, width = pixels.shape[-2:]
        scale = size / min(height, width)
        new = (max(size, round(height * scale)), max(size, round(width * scale)))
        if new != (height, width):
            pixels = F.interpolate(pixels, size=new, mode="bilinear", antialias=True, align_corners=False)
        top, left = (new[0] - size) // 2, (new[1] - size) // 2
        out[index] = pixels[0, :, top : top + size, left : left + size].round().clamp(0, 255).to(torch.uint8)
    return out


def random_batch(
    images: torch.Tensor, batch: int, generator: torch.Generator, flip: bool = True, crop: int | None = None
) -> torch.Tensor:
    """``batch`` images drawn at random (with replacement) from ``images`` (N, 3, H, W), as float in [-1, 1].

    uint8 input is scaled from [0, 255], float input is taken to be in [0, 1]. With ``crop``
    each image is cut to a random ``crop`` x ``crop`` window; with ``flip`` each is mirrored
    left-right with probability 1/2 (the official loader's augmentations).
    """
    picks = torch.randint(len(images), (batch,), generator=generator)
    chosen = images[picks]
    out = chosen.float() / 255 if chosen.dtype == torch.uint8 else chosen.float()
    if crop is not None:
        height, width = out.shape[-2:]
        if crop > min(height, width):
            raise ValueError(f"crop {crop} is larger than the images ({height}x{width})")
        tops = torch.randint(height - crop + 1, (batch,), generator=generator)
        lefts = torch.randint(width - crop + 1, (batch,), generator=generator)
        out = torch.stack(
            [image[:, top : top + crop, left : left + crop] for image, top, left in zip(out, tops, lefts, strict=True)]
        )
    if flip:
        mirrored = torch.rand(batch, generator=generator) < 0.5
        out = torch.where(mirrored[:, None, None, None], out.flip(-1), out)
    return out * 2 - 1
