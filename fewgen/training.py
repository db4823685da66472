"""One training loop for every learned plugin: a budget, atomic checkpoints, exact resume, one summary.

A plugin's trainer implements :class:`Trainable` (one iteration, its state, its identity) and
calls :func:`fit`::

    summary = fit(trainer, Budget(iterations=2000, minutes=None), checkpoint=scratch / "ckpt.pt",
                  checkpoint_every=250, progress=ctx.progress_bar("psgan", 2000))

* **Budget.** ``iterations`` and/or ``minutes``, whichever ends first, both counted over the
  whole training: a run resumed from a checkpoint continues the count (iterations done and
  seconds trained are saved in it), so "2000 iterations" or "10 minutes" mean the same whether
  or not the run was interrupted.
* **Checkpoints** every ``checkpoint_every`` iterations and at the end, written atomically (a
  temporary file renamed over the old one, so a kill never leaves a truncated checkpoint) and
  loaded with ``weights_only=True`` (no code runs from a checkpoint file). Each records the
  trainer's :meth:`~Trainable.identity`: every setting that changes what is learned, so a
  checkpoint made with other settings is refused in one line instead of resumed. The trainer's
  state must hold its random generators, so resumed training makes exactly the iterations an
  uninterrupted one makes.
* **Schedules that follow the budget.** ``before_iteration(share)`` is called before each
  iteration with the share of the budget spent (:meth:`Budget.share`), e.g. for a learning rate
  that decays over the second half of training, whether training is counted in iterations or
  minutes.
* **One summary shape** (:class:`FitSummary`), whatever the method.
* :func:`choose_device` (``auto`` picks CUDA when present) and :func:`autocast` (bf16 on CPUs
  with native bf16 arithmetic, fp16 or bf16 on CUDA) are the device and precision choices
  every plugin makes the same way.

torch is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from fewgen.errors import UsageError

CHECKPOINT_FORMAT = 1  # the envelope below; a trainer versions its own state in its identity

Precision = Literal["fp32", "bf16", "fp16", "auto"]


class CheckpointMismatch(UsageError):
    """A checkpoint that cannot be resumed by this trainer: other settings, another format."""


class Trainable(Protocol):
    """What :func:`fit` needs of a trainer."""

    def train_step(self) -> dict[str, float]:
        """One iteration (one update of every network); its losses and other figures."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything to resume exactly: networks, optimisers, schedulers, random generators (tensors
        and plain values only: the checkpoint is loaded with ``weights_only=True``)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def identity(self) -> dict[str, Any]:
        """Every setting that changes what is learned (JSON values): a checkpoint resumes only when equal."""
        ...


@dataclass(frozen=True)
class Budget:
    """How long to train, over the whole training (resumes included): whichever limit comes first."""

    iterations: int | None = None
    minutes: float | None = None

    def __post_init__(self) -> None:
        if self.iterations is None and self.minutes is None:
            raise ValueError("a training budget needs iterations, minutes or both")
        if self.iterations is not None and self.iterations < 0:
            raise ValueError(f"iterations must be at least 0, got {self.iterations}")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes must be positive, got {self.minutes}")

    def spent(self, iterations: int, seconds: float) -> Literal["iterations", "minutes"] | None:
        """Which limit the training has reached, if any."""
        if self.iterations is not None and iterations >= self.iterations:
            return "iterations"
        if self.minutes is not None and seconds >= 60 * self.minutes:
            return "minutes"
        return None

    def share(self, iterations: int, seconds: float) -> float:
        """How much of the budget is spent, from 0 to 1 (at least 1 once :meth:`spent`): the larger share of
        the two limits."""
        shares = []
        if self.iterations is not None:
            shares.append(iterations / self.iterations if self.iterations else 1.0)
        if self.minutes is not None:
            shares.append(seconds / (60 * self.minutes))
        return max(shares)


@dataclass
class FitSummary:
    """What a training did: the same keys for every learned plugin."""

    iterations: int  # done in all, over every resume
    resumed_from: int  # iterations the checkpoint held when this call started (0: from scratch)
    seconds: float  # this call's training time
    # over every resume (named so the engine's timing rule keeps it out of metrics.json, as `seconds`)
    total_seconds: float
    iterations_per_second: float  # this call's
    stopped_by: Literal["iterations", "minutes"]
    final: dict[str, float] = field(default_factory=dict)  # the mean of the last iterations' figures

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def save_checkpoint(path: Path, identity: dict[str, Any], state: dict[str, Any], **extra: Any) -> None:
    """Write ``state`` with its ``identity`` (and ``extra`` plain values) to ``path`` atomically."""
    payload = {"format": CHECKPOINT_FORMAT, "identity": json.dumps(identity, sort_keys=True), "state": state, **extra}
    save_atomically(payload, path)


def save_atomically(payload: dict[str, Any], path: Path) -> None:
    """``torch.save`` through a temporary file renamed over ``path``: a crash never leaves a truncated file."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(handle)
    try:
        torch.save(payload, partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def load_checkpoint(path: Path, identity: dict[str, Any], device: Any = "cpu") -> dict[str, Any]:
    """The payload of a checkpoint :func:`save_checkpoint` wrote with this ``identity``; else CheckpointMismatch."""
    import pickle

    import torch

    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointMismatch(f"{path}: not a readable checkpoint ({exc}); delete it to train afresh") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointMismatch(
            f"{path}: checkpoint format {found!r}, not {CHECKPOINT_FORMAT}; delete it to train afresh"
        )
    saved = json.loads(payload["identity"])
    wanted = json.loads(json.dumps(identity, sort_keys=True))
    if saved != wanted:
        differing = sorted(key for key in set(saved) | set(wanted) if saved.get(key) != wanted.get(key))
        details = "; ".join(f"{key}: {saved.get(key)!r} saved, {wanted.get(key)!r} now" for key in differing)
        raise CheckpointMismatch(f"{path}: made with other settings ({details}); delete it to train afresh")
    return payload


Progress = Callable[[int, dict[str, float]], None]  # (iterations done in all, this iteration's figures)
Schedule = Callable[[float], None]  # (the share of the budget spent, 0 to 1)


def fit(
    trainer: Trainable,
    budget: Budget,
    checkpoint: Path | None = None,
    checkpoint_every: int = 500,
    on_iteration: Progress | None = None,
    device: Any = "cpu",
    final_window: int = 50,
    before_iteration: Schedule | None = None,
) -> FitSummary:
    """Train ``trainer`` until ``budget`` is spent, resuming from and saving to ``checkpoint``.

    ``before_iteration(share)`` runs before each iteration with the share of the budget spent so
    far (over every resume), for schedules that follow the budget.
    """
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be at least 1, got {checkpoint_every}")
    iteration, trained_before = 0, 0.0
    if checkpoint is not None and checkpoint.exists():
        payload = load_checkpoint(checkpoint, trainer.identity(), device)
        trainer.load_state_dict(payload["state"])
        iteration, trained_before = int(payload["iteration"]), float(payload["seconds"])
    resumed_from = iteration
    recent: list[dict[str, float]] = []
    started = time.perf_counter()

    def save() -> None:
        if checkpoint is not None:
            seconds = trained_before + time.perf_counter() - started
            save_checkpoint(checkpoint, trainer.identity(), trainer.state_dict(), iteration=iteration, seconds=seconds)

    while True:
        trained = trained_before + time.perf_counter() - started
        if (stopped_by := budget.spent(iteration, trained)) is not None:
            break
        if before_iteration is not None:
            before_iteration(budget.share(iteration, trained))
        figures = trainer.train_step()
        iteration += 1
        recent = [*recent[-(final_window - 1) :], figures] if final_window > 1 else [figures]
        if on_iteration is not None:
            on_iteration(iteration, figures)
        if iteration % checkpoint_every == 0:
            save()
    if iteration > resumed_from or (checkpoint is not None and not checkpoint.exists()):
        save()
    seconds = time.perf_counter() - started
    done = iteration - resumed_from
    return FitSummary(
        iterations=iteration,
        resumed_from=resumed_from,
        seconds=round(seconds, 3),
        total_seconds=round(trained_before + seconds, 3),
        iterations_per_second=round(done / seconds, 3) if done and seconds > 0 else 0.0,
        stopped_by=stopped_by,
        final={key: round(sum(f[key] for f in recent) / len(recent), 6) for key in (recent[-1] if recent else {})},
    )


def global_rng_state(device: Any) -> dict[str, Any]:
    """torch's global generators (the CPU's, and the GPU's on a GPU, where dropout draws), for a trainer's
    :meth:`~Trainable.state_dict` when its networks draw from them."""
    import torch

    on_gpu = torch.device(device).type == "cuda"
    return {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if on_gpu else None}


def set_global_rng_state(state: dict[str, Any], device: Any) -> None:
    """Restore what :func:`global_rng_state` saved (the GPU's only when training on a GPU again)."""
    import torch

    torch.set_rng_state(state["cpu"].cpu())
    if state["cuda"] is not None and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def choose_device(requested: str = "auto") -> Any:
    """A torch.device: ``auto`` is CUDA when present, else the CPU; ``cuda`` without a GPU is one line."""
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise UsageError(f"unknown device {requested!r} (auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {requested!r} asked for, but torch finds no CUDA GPU here (use auto or cpu)")
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX-512 BF16 or AMX), so bf16 autocast can pay off."""
    try:
        flags = next(
            (line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), ""
        ).split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: Precision, device: Any) -> Literal["fp32", "bf16", "fp16"]:
    """``auto``: bf16 on CUDA GPUs that support it (fp16 on older ones), fp32 on CPUs; the others as given."""
    import torch

    if precision != "auto":
        if precision == "fp16" and torch.device(device).type == "cpu":
            raise UsageError("precision fp16 needs a CUDA device; on a CPU use bf16 or fp32")
        return precision
    if torch.device(device).type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    # On CPUs bf16 is a choice, not a default: it changes results, and pays off only with native support.
    return "fp32"


@contextlib.contextmanager
def autocast(precision: Literal["fp32", "bf16", "fp16"], device: Any) -> Iterator[None]:
    """Mixed precision for the forward passes inside: a no-op for fp32."""
    import torch

    if precision == "fp32":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device_type=torch.device(device).type, dtype=dtype):
        yield
