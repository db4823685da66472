"""Training and inference of :class:`fewgen_draem.model.Draem` on good images: the paper's recipe.

Every batch of good images gets fresh simulated anomalies (half of them, by default, stay
normal); the reconstructive network learns to undo them (L2 + SSIM against the good image)
and the discriminative network to find them (focal loss against the synthetic mask).
Adam at 1e-4 for both networks; the learning rate drops to 0.2x at 80 % and again at 90 %
of training, as the reference ``MultiStepLR`` does over its epochs. Training length is a
number of epochs, a wall-clock budget, or both (whichever ends first); with a budget the
schedule follows the share of the budget spent, so the rate still drops near the end.

The loop, the budget (counted over every resume), atomic checkpoints every
``checkpoint_every`` steps with their identity check, ``weights_only`` loads and the summary
are :mod:`fewgen.training`'s; the trainer's state (weights, optimiser, where in which epoch,
the random generator) makes an interrupted run continue exactly where it stopped.
This module knows nothing of fewgen's datasets: it takes tensors.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from fewgen.training import Budget, FitSummary, autocast, fit, save_atomically
from fewgen_draem.augmentations import rotate
from fewgen_draem.losses import DraemLoss
from fewgen_draem.model import PRESETS, Draem, init_weights
from fewgen_draem.synthesis import AnomalySynthesizer

# 2: written by fewgen.training (format 1 files, the plugin's own, are refused in one line).
CHECKPOINT_FORMAT = 2


@dataclass(frozen=True)
class TrainingConfig:
    preset: str = "small"
    size: int = 256
    batch_size: int = 8
    epochs: int | None = 20
    minutes: float | None = None
    lr: float = 1e-4
    milestones: tuple[float, ...] = (0.8, 0.9)
    lr_decay: float = 0.2
    normal_share: float = 0.5
    beta_max: float = 0.8
    rotate_normal: float = 0.3  # the official MVTec loader turns a good image with probability 0.3
    # oneDNN's convolutions are markedly faster on channels-last tensors on x86 CPUs.
    channels_last: bool = True
    checkpoint_every: int = 100  # training steps between checkpoints
    # bf16 autocast of the networks' forward passes (the losses stay fp32): faster on CPUs with
    # native bf16 arithmetic and on GPUs; it changes results, so it is part of the identity.
    precision: Literal["fp32", "bf16"] = "fp32"

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.epochs is None and self.minutes is None:
            raise ValueError("give epochs, minutes or both: training needs an end")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {self.precision!r}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1, got {self.checkpoint_every}")

    def identity(self) -> dict[str, object]:
        """What must match for a checkpoint to be resumed (a changed budget may resume; a changed model may not)."""
        keep = (
            "preset",
            "size",
            "batch_size",
            "lr",
            "milestones",
            "lr_decay",
            "normal_share",
            "beta_max",
            "rotate_normal",
            "precision",
        )
        return {key: getattr(self, key) for key in keep} | {"milestones": list(self.milestones)}


@dataclass
class TrainingState:
    step: int = 0
    epoch: int = 0
    position: int = 0  # batches of the current epoch already done
    order: torch.Tensor | None = None  # the current epoch's permutation
    history: list[list[float]] = field(default_factory=list)  # [step, l2, ssim, focal] every log_every steps


@dataclass
class DraemFitSummary(FitSummary):
    """:class:`fewgen.training.FitSummary` and what only DRAEM has: epochs done and the network's size."""

    epochs_completed: float = 0.0
    parameters: int = 0


# Called after every step with (steps done, share of training done in [0, 1], loss terms).
StepCallback = Callable[[int, float, dict[str, float]], None]


class DraemTrainer:
    """Fits a DRAEM detector on a tensor of good images and predicts anomaly maps."""

    def __init__(self, config: TrainingConfig, device: str | torch.device = "cpu", seed: int = 0) -> None:
        self.config = config
        self.device = torch.device(device)
        self.seed = seed
        torch.manual_seed(seed)
        self.model = Draem.from_preset(config.preset)
        self.model.apply(init_weights)
        self.model.to(self.device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.loss = DraemLoss().to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        # The good image is turned here, not inside the synthesiser, because it is also the reconstruction target.
        self.synthesizer = AnomalySynthesizer(beta_max=config.beta_max, normal_share=config.normal_share)
        self.generator = torch.Generator().manual_seed(seed)
        self.state = TrainingState()
        self._done = 0.0  # the share of the budget spent, as of the current step

    # --- training ----------------------------------------------------------------------

    def fit(
        self,
        images: torch.Tensor,
        textures: torch.Tensor | None = None,
        checkpoint: Path | None = None,
        on_step: StepCallback | None = None,
        log_every: int = 10,
    ) -> DraemFitSummary:
        """Train on ``images`` (N, 3, S, S) uint8 (or float in [0, 1]) at the config's size.

        ``textures`` (T, 3, S, S), same dtype rules, are the anomaly sources; None means Perlin-noise colours.
        With ``checkpoint`` the state is saved there every ``checkpoint_every`` steps and at the end, and
        training resumes from it if it exists and was made with the same settings, seed and textures
        (:func:`texture_fingerprint`). The learning-rate schedule follows the share of the budget spent.
        """
        config = self.config
        count = images.shape[0]
        if count < 2:
            raise ValueError(f"DRAEM needs at least 2 training images (batch norm), got {count}")
        if tuple(images.shape[1:]) != (3, config.size, config.size):
            raise ValueError(f"training images must be (N, 3, {config.size}, {config.size}), got {tuple(images.shape)}")
        self._images, self._textures, self._log_every = images, textures, log_every
        self._sources = texture_fingerprint(textures)
        self._batches_per_epoch = math.ceil(count / config.batch_size)
        total_steps = config.epochs * self._batches_per_epoch if config.epochs is not None else None
        budget = Budget(iterations=total_steps, minutes=config.minutes)
        self.model.train()

        def schedule(done: float) -> None:
            self._done = done
            self._set_lr(done)

        def report(step: int, losses: dict[str, float]) -> None:
            if on_step is not None:
                # The share at the start of the step, or what the steps alone say once they are the limit.
                done = step / total_steps if total_steps is not None else self._done
                on_step(step, min(max(done, self._done), 1.0), losses)

        # final_window 1: the summary's final losses are the last step's.
        summary = fit(self, budget, checkpoint, config.checkpoint_every, report, self.device, 1, schedule)
        state = self.state
        return DraemFitSummary(
            **summary.to_dict(),
            epochs_completed=round(state.epoch + state.position / self._batches_per_epoch, 3),
            parameters=sum(p.numel() for p in self.model.parameters()),
        )

    def train_step(self) -> dict[str, float]:
        """One batch of the current epoch (a new epoch's order drawn when one ends)."""
        state, batch_size = self.state, self.config.batch_size
        if state.order is None or state.position >= self._batches_per_epoch:
            if state.order is not None:
                state.epoch += 1
            state.order = torch.randperm(len(self._images), generator=self.generator)
            state.position = 0
        rows = state.order[state.position * batch_size : (state.position + 1) * batch_size]
        if len(rows) == 1:
            # Batch norm cannot train on one image (its deepest maps can be 1x1): borrow the epoch's first.
            rows = torch.cat((rows, state.order[:1]))
        losses = self._step(self._images[rows], self._textures)
        state.step += 1
        state.position += 1
        if state.step % self._log_every == 0:
            state.history.append([state.step, losses["l2"], losses["ssim"], losses["focal"]])
        return losses

    def state_dict(self) -> dict[str, Any]:
        state = self.state
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "step": state.step,
            "epoch": state.epoch,
            "position": state.position,
            "order": state.order,
            "history": state.history,
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.generator.set_state(saved["generator"].cpu())
        order = saved["order"]
        self.state = TrainingState(
            step=saved["step"],
            epoch=saved["epoch"],
            position=saved["position"],
            order=order.cpu() if order is not None else None,
            history=[list(row) for row in saved["history"]],
        )

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must share to be resumed: settings, seed and anomaly sources (a changed budget may)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.identity(),
            "seed": self.seed,
            "textures": self._sources,
        }

    def _set_lr(self, done: float) -> None:
        drops = sum(done >= milestone for milestone in self.config.milestones)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * self.config.lr_decay**drops

    def _step(self, batch: torch.Tensor, textures: torch.Tensor | None) -> dict[str, float]:
        good = as_float(batch).to(self.device)
        sources = None
        if textures is not None:
            picks = torch.randint(len(textures), (len(good),), generator=self.generator)
            sources = as_float(textures[picks]).to(self.device)
        if self.config.rotate_normal > 0:
            # The reference loader turns the good image by -90..90 degrees before adding an anomaly.
            turned = (torch.rand(len(good), generator=self.generator) < self.config.rotate_normal).nonzero().squeeze(1)
            angles = -90 + 180 * torch.rand(len(turned), generator=self.generator)
            if len(turned):
                good = good.clone()
                good[turned.to(self.device)] = rotate(good[turned.to(self.device)], angles)
        synthesis = self.synthesizer(good, self.generator, sources)
        augmented = synthesis.images
        if self.config.channels_last:
            augmented = augmented.contiguous(memory_format=torch.channels_last)
        with autocast(self.config.precision, self.device):
            reconstruction, logits = self.model(augmented)
        terms = self.loss.terms(good, reconstruction.float(), synthesis.masks, logits.float())
        total = terms["l2"] + terms["ssim"] + terms["focal"]
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return {key: float(value.detach()) for key, value in terms.items()}

    # --- inference ---------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
        """(anomaly maps (N, S, S) float32 in [0, 1], image scores (N,)) of images (N, 3, S, S)."""
        return predict(self.model, images, self.device, batch_size, self.config.channels_last)


def predict(
    model: Draem, images: torch.Tensor, device: torch.device, batch_size: int = 16, channels_last: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Anomaly maps and image scores of ``images`` (N, 3, S, S) in evaluation mode, batch by batch."""
    model.eval()
    maps, scores = [], []
    for start in range(0, images.shape[0], batch_size):
        batch = as_float(images[start : start + batch_size]).to(device)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        anomaly_map, score = model.predict(batch)
        maps.append(anomaly_map.float().cpu())
        scores.append(score.float().cpu())
    return torch.cat(maps), torch.cat(scores)


def save_model(model: Draem, path: Path, config: TrainingConfig) -> None:
    """The trained detector alone (no optimiser): what a user keeps and loads with :func:`load_model`."""
    save_atomically(
        {"format": CHECKPOINT_FORMAT, "config": json.dumps(asdict(config)), "model": model.state_dict()}, path
    )


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[Draem, TrainingConfig]:
    payload = torch.load(path, map_location=device, weights_only=True)
    values = json.loads(payload["config"])
    values["milestones"] = tuple(values["milestones"])
    values.pop("checkpoint_minutes", None)  # files saved before training checkpointed by steps
    config = TrainingConfig(**values)
    model = Draem.from_preset(config.preset)
    model.load_state_dict(payload["model"])
    return model.to(device), config


def texture_fingerprint(textures: torch.Tensor | None) -> str | None:
    """SHA-256 of the anomaly sources as trained with (shape, dtype, order and pixels); None without textures.

    Hashing the loaded tensor covers what a file list would (which files, in which order, their
    contents) and also the resize, at the cost of one pass over memory already read.
    """
    if textures is None:
        return None
    digest = hashlib.sha256(f"{tuple(textures.shape)} {textures.dtype}".encode())
    digest.update(textures.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def as_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels to float in [0, 1]; float input is taken to be in [0, 1] already."""
    return images.float() / 255 if images.dtype == torch.uint8 else images.float()


def stack_images(arrays: Sequence[object], size: int) -> torch.Tensor:
    """(N, 3, size, size) uint8 from HxWx3 uint8 arrays of any size (bilinear, antialiased resize)."""
    import numpy as np
    import torch.nn.functional as F

    out = torch.empty(len(arrays), 3, size, size, dtype=torch.uint8)
    for index, array in enumerate(arrays):
        # np.array copies: arrays decoded by Pillow are read-only, which torch warns about.
        pixels = torch.from_numpy(np.array(array)).permute(2, 0, 1)[None].float()
        if tuple(pixels.shape[-2:]) != (size, size):
            pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[index] = pixels[0].round().clamp(0, 255).to(torch.uint8)
    return out
