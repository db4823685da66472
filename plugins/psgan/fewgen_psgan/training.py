"""Training and inference of :class:`fewgen_psgan.model.Psgan`: pix2pix's iteration with PS-GAN's person term.

One iteration on a batch of (input, target, box) windows, each sample with its own box:

1. **Forward.** fake = G(input).
2. **Discriminator update.** The image discriminator scores (input, target) as real and
   (input, fake) as fake; the fake pair first goes through the image pool, which with
   probability 1/2 swaps it for a pair from an earlier iteration once the pool holds 50
   (pix2pix's ``ImagePool``). The person discriminator scores each sample's own box crop of
   the target as real and of the fake as fake. The image discriminator's loss is binary
   cross-entropy (or least squares, ``gan_loss="lsgan"``), the person discriminator's least
   squares, each halved (:mod:`fewgen_psgan.losses`); one Adam step for each discriminator.
3. **Generator update.** ``GAN_image + 100·L1 + GAN_person`` (:mod:`fewgen_psgan.losses`)
   through both discriminators (their weights frozen for it); one Adam step.
4. **Learning rate.** Adam 2e-4, betas (0.5, 0.999) for all three networks, constant for
   the first half of training and then linearly down to zero (pix2pix's ``niter`` +
   ``niter_decay``), where training is a number of iterations, a number of minutes, or both
   (whichever ends first), counted over every resume.

:class:`PsganTrainer` is a :class:`fewgen.training.Trainable`: :func:`fewgen.training.fit` runs
the loop, the budget, the atomic checkpoints and their identity check. All randomness that is
not the networks' initial weights (batches, input noise, flips, the image pool's draws) comes
from one ``torch.Generator`` held by the trainer; dropout uses torch's global generator (the
GPU's, on a GPU). The trainer's state holds the weights and buffers, the three optimisers, the
pool and every generator's state, so an interrupted run resumes exactly where it stopped. This
module knows nothing of fewgen's datasets: it takes tensors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from fewgen.training import Budget, FitSummary, fit, global_rng_state, save_atomically, set_global_rng_state
from fewgen_psgan import losses
from fewgen_psgan.losses import IMAGE_GAN_LOSS, GanLoss, LossWeights
from fewgen_psgan.model import Psgan, PsganConfig, UnetGenerator, count_parameters, crop_boxes, preset

# Part of the identity. 2: the official person discriminator (SPP_NET) and the image
# discriminator's BCE. 3: the state inside fewgen.training's checkpoint; the plugin's own
# format-1 and format-2 files are refused in one line.
CHECKPOINT_FORMAT = 3
# The generator file holds the generator alone, whose network did not change with format 2.
GENERATOR_FORMAT = 1

# Draws one batch (inputs, targets, boxes) from the trainer's generator: (B, 3, S, S) floats in
# [-1, 1] twice and (B, 4) integer boxes x1, y1, x2, y2 in window pixels (end exclusive).
BatchSampler = Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
# Called after every iteration with (iterations done in all, the iteration's losses).
StepCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    # Share of training at the constant rate; pix2pix's default 100 + 100 epochs is 0.5.
    decay_start: float = 0.5
    pool_size: int = 50


OPTIM = OptimConfig()  # the paper's optimiser and schedule
WEIGHTS = LossWeights()  # the paper's loss weights


class ImagePool:
    """pix2pix's history of generated images: once full, each new image is swapped for a stored one half the time.

    The draws come from the caller's generator (not Python's ``random``) so a resumed run draws the same.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand(1, generator=generator)) > 0.5:
                index = int(torch.randint(self.size, (1,), generator=generator))
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state(self) -> torch.Tensor | None:
        return torch.stack(self.images) if self.images else None

    def load(self, state: torch.Tensor | None) -> None:
        self.images = list(state.unbind(0)) if state is not None else []


class PsganTrainer:
    """The three PS-GAN networks, their optimisers, the image pool and one random generator (a
    :class:`fewgen.training.Trainable` once :meth:`fit` gives it its batches)."""

    def __init__(
        self,
        config: PsganConfig | str = "tiny",
        device: str | torch.device = "cpu",
        seed: int = 0,
        weights: LossWeights = WEIGHTS,
        optim: OptimConfig = OPTIM,
        gan_loss: GanLoss = IMAGE_GAN_LOSS,
    ) -> None:
        losses.check_gan_loss(gan_loss)
        self.config = preset(config) if isinstance(config, str) else config
        self.gan_loss = gan_loss
        self.device = torch.device(device)
        self.seed = seed
        self.weights = weights
        self.optim = optim
        torch.manual_seed(seed)  # the initial weights
        self.model = Psgan(self.config).to(self.device)
        model = self.model

        def adam(module: torch.nn.Module) -> torch.optim.Adam:
            return torch.optim.Adam(module.parameters(), lr=optim.lr, betas=optim.betas)

        self.gen_opt = adam(model.generator)
        self.image_opt = adam(model.image_discriminator)
        self.person_opt = adam(model.person_discriminator)
        self.pool = ImagePool(optim.pool_size)
        self.generator = torch.Generator().manual_seed(seed)
        self.sample_batch: BatchSampler | None = None  # set by fit

    @property
    def optimizers(self) -> tuple[torch.optim.Adam, ...]:
        return (self.gen_opt, self.image_opt, self.person_opt)

    # --- one iteration -----------------------------------------------------------------

    def step(self, inputs: torch.Tensor, targets: torch.Tensor, boxes: torch.Tensor) -> dict[str, float]:
        """One iteration on windows (B, 3, S, S) in [-1, 1] with their own boxes (B, 4)."""
        model = self.model
        model.train()
        inputs, targets = inputs.to(self.device), targets.to(self.device)
        fake = model.generator(inputs)

        # Discriminators, against the fake detached.
        pooled = self.pool.query(torch.cat([inputs, fake], dim=1), self.generator)
        condition, pooled_fake = pooled[:, :3], pooled[:, 3:]
        self.image_opt.zero_grad(set_to_none=True)
        image_d = losses.discriminator_loss(
            model.image_discriminator(inputs, targets),
            model.image_discriminator(condition, pooled_fake),
            self.gan_loss,
        )
        image_d.backward()
        self.image_opt.step()
        self.person_opt.zero_grad(set_to_none=True)
        person_d = losses.discriminator_loss(
            model.person_discriminator(crop_boxes(targets, boxes)),
            model.person_discriminator(crop_boxes(fake.detach(), boxes)),
            losses.PERSON_GAN_LOSS,
        )
        person_d.backward()
        self.person_opt.step()

        # Generator, through both discriminators.
        discriminators = [*model.image_discriminator.parameters(), *model.person_discriminator.parameters()]
        for parameter in discriminators:
            parameter.requires_grad_(False)
        try:
            self.gen_opt.zero_grad(set_to_none=True)
            terms = losses.generator_terms(
                model.image_discriminator(inputs, fake),
                model.person_discriminator(crop_boxes(fake, boxes)),
                fake,
                targets,
                self.gan_loss,
            )
            total = losses.generator_objective(terms, self.weights)
            total.backward()
            self.gen_opt.step()
        finally:
            for parameter in discriminators:
                parameter.requires_grad_(True)
        result = {name: float(value.detach()) for name, value in terms.items()}
        result |= {
            "gen_total": float(total.detach()),
            "dis_image": float(image_d.detach()),
            "dis_person": float(person_d.detach()),
        }
        result["lr"] = self.gen_opt.param_groups[0]["lr"]
        return result

    def set_lr(self, done: float) -> None:
        """Constant until ``decay_start`` of training is done, then linear to zero at the end."""
        start = self.optim.decay_start
        factor = 1.0 if done <= start else max(0.0, (1.0 - done) / (1.0 - start))
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self.optim.lr * factor

    def train_step(self) -> dict[str, float]:
        """One iteration on a batch drawn from the trainer's generator by the sampler :meth:`fit` was given."""
        if self.sample_batch is None:
            raise RuntimeError("psgan: train_step() draws its batches through fit(sample_batch, ...)")
        return self.step(*self.sample_batch(self.generator))

    # --- training loop -----------------------------------------------------------------

    def fit(
        self,
        sample_batch: BatchSampler,
        iterations: int | None = None,
        minutes: float | None = None,
        checkpoint: Path | None = None,
        checkpoint_every: int = 200,
        on_step: StepCallback | None = None,
    ) -> FitSummary:
        """Train until ``iterations`` are done or ``minutes`` of training have passed, both counted over resumes.

        ``sample_batch(generator)`` draws a batch from the trainer's generator (see
        :func:`fewgen_psgan.pairs.WindowPairs.batch`), so a resumed run draws the same batches.
        With ``checkpoint`` the state is loaded from there if the file exists, saved every
        ``checkpoint_every`` iterations, and saved when the call ends
        (:func:`fewgen.training.fit`). The learning-rate schedule follows the share of the
        budget spent: training by iterations alone repeats bit for bit; a minutes budget makes
        the schedule follow the clock.
        """
        if iterations is None and minutes is None:
            raise ValueError("give iterations, minutes or both: training needs an end")
        self.sample_batch = sample_batch
        budget = Budget(iterations=iterations, minutes=minutes)
        return fit(self, budget, checkpoint, checkpoint_every, on_step, self.device, before_iteration=self.set_lr)

    # --- inference ---------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, inputs: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
        """G(inputs) for windows (N, 3, S, S) in [-1, 1], in evaluation mode (batch-norm running statistics,
        no dropout), batch by batch, on the CPU."""
        return generate(self.model, inputs, self.device, batch_size)

    def parameters(self) -> dict[str, int]:
        model = self.model
        return {
            "generator": count_parameters(model.generator),
            "image_discriminator": count_parameters(model.image_discriminator),
            "person_discriminator": count_parameters(model.person_discriminator),
        }

    # --- checkpoints (fewgen.training.Trainable) ---------------------------------------

    def identity(self) -> dict[str, object]:
        """What must match for a checkpoint to be resumed."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": asdict(self.config),
            "weights": asdict(self.weights),
            "optim": asdict(self.optim),
            "gan_loss": self.gan_loss,
            "seed": self.seed,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "gen_opt": self.gen_opt.state_dict(),
            "image_opt": self.image_opt.state_dict(),
            "person_opt": self.person_opt.state_dict(),
            "pool": self.pool.state(),
            "generator": self.generator.get_state(),
            "global_rng": global_rng_state(self.device),  # dropout
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.gen_opt.load_state_dict(state["gen_opt"])
        self.image_opt.load_state_dict(state["image_opt"])
        self.person_opt.load_state_dict(state["person_opt"])
        pool = state["pool"]
        self.pool.load(pool.to(self.device) if pool is not None else None)
        self.generator.set_state(state["generator"].cpu())
        set_global_rng_state(state["global_rng"], self.device)


@torch.no_grad()
def generate(model: Psgan, inputs: torch.Tensor, device: torch.device, batch_size: int = 16) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return torch.cat(
            [
                model.generator(inputs[start : start + batch_size].to(device)).float().cpu()
                for start in range(0, len(inputs), batch_size)
            ]
        )
    finally:
        model.train(was_training)


def save_generator(trainer: PsganTrainer, path: Path) -> None:
    """The trained generator alone (what insertion needs), with its preset's settings."""
    payload = {
        "format": GENERATOR_FORMAT,
        "config": json.dumps(asdict(trainer.config)),
        "generator": trainer.model.generator.state_dict(),
    }
    save_atomically(payload, path)


def load_generator(path: Path, device: str | torch.device = "cpu") -> tuple[UnetGenerator, PsganConfig]:
    """The generator :func:`save_generator` wrote, in evaluation mode, and its preset's settings."""
    payload = torch.load(path, map_location=device, weights_only=True)
    if payload.get("format") != GENERATOR_FORMAT:
        raise ValueError(f"{path}: format {payload.get('format')} is not {GENERATOR_FORMAT}")
    values = json.loads(payload["config"])
    values.pop("person_layers", None)  # a setting of the earlier person discriminator, written by older files
    config = PsganConfig(**values)
    generator = UnetGenerator(3, 3, config.depth, config.ngf, config.dropout)
    generator.load_state_dict(payload["generator"])
    return generator.to(device).eval(), config
