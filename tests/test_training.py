"""fewgen.training: the budgeted loop, atomic checkpoints with identities, exact resume, devices and precision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from fewgen.errors import UsageError  # noqa: E402
from fewgen.training import (  # noqa: E402
    Budget,
    CheckpointMismatch,
    autocast,
    choose_device,
    fit,
    global_rng_state,
    load_checkpoint,
    resolve_precision,
    save_checkpoint,
    set_global_rng_state,
)


class LineFitter:
    """A least-squares line fitted by SGD on noisy points drawn from its own generator."""

    def __init__(self, lr: float = 0.05, seed: int = 0):
        self.lr = lr
        self.generator = torch.Generator().manual_seed(seed)
        self.weights = torch.zeros(2, requires_grad=True)
        self.optimizer = torch.optim.SGD([self.weights], lr=lr, momentum=0.9)

    def train_step(self) -> dict[str, float]:
        x = torch.rand(16, generator=self.generator)
        y = 3 * x - 1 + 0.1 * torch.randn(16, generator=self.generator)
        loss = ((self.weights[0] * x + self.weights[1] - y) ** 2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "weights": self.weights.detach().clone(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.weights.copy_(state["weights"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])

    def identity(self) -> dict[str, Any]:
        return {"lr": self.lr, "method": "line"}


class Interrupted(Exception):
    pass


def test_an_interrupted_training_resumes_to_exactly_the_uninterrupted_result(tmp_path: Path) -> None:
    whole = LineFitter()
    summary = fit(whole, Budget(iterations=25))
    assert (summary.iterations, summary.resumed_from, summary.stopped_by) == (25, 0, "iterations")

    first = LineFitter()

    def killed_after_11(iteration: int, figures: dict[str, float]) -> None:
        if iteration == 11:
            raise Interrupted

    with pytest.raises(Interrupted):
        fit(
            first,
            Budget(iterations=25),
            checkpoint=tmp_path / "ckpt.pt",
            checkpoint_every=4,
            on_iteration=killed_after_11,
        )
    resumed = LineFitter()
    summary = fit(resumed, Budget(iterations=25), checkpoint=tmp_path / "ckpt.pt", checkpoint_every=4)
    assert summary.resumed_from == 8  # the last checkpoint before the kill
    assert summary.iterations == 25
    assert torch.equal(resumed.weights, whole.weights)
    assert not list(tmp_path.glob(".*partial"))  # no temporary file left


def test_the_budget_counts_over_resumes(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt.pt"
    fit(LineFitter(), Budget(iterations=5), checkpoint=checkpoint)
    again = fit(LineFitter(), Budget(iterations=5), checkpoint=checkpoint)
    assert (again.iterations, again.resumed_from, again.seconds) == (5, 5, again.seconds)
    assert again.iterations_per_second == 0.0 and again.final == {}
    # Ten trained minutes recorded: a 5-minute budget is spent before any new iteration.
    payload = load_checkpoint(checkpoint, LineFitter().identity())
    save_checkpoint(checkpoint, LineFitter().identity(), payload["state"], iteration=5, seconds=600.0)
    capped = fit(LineFitter(), Budget(iterations=100, minutes=5), checkpoint=checkpoint)
    assert (capped.iterations, capped.stopped_by, capped.total_seconds >= 600) == (5, "minutes", True)


def test_the_summary_has_one_shape(tmp_path: Path) -> None:
    summary = fit(LineFitter(), Budget(iterations=60), final_window=10).to_dict()
    assert set(summary) == {
        "iterations",
        "resumed_from",
        "seconds",
        "total_seconds",
        "iterations_per_second",
        "stopped_by",
        "final",
    }
    assert summary["final"]["loss"] < 0.1  # the mean of the last 10 losses: the line is learnt


def test_a_checkpoint_with_other_settings_is_refused_in_one_line(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt.pt"
    fit(LineFitter(lr=0.05), Budget(iterations=3), checkpoint=checkpoint)
    with pytest.raises(CheckpointMismatch) as refused:
        fit(LineFitter(lr=0.1), Budget(iterations=6), checkpoint=checkpoint)
    message = str(refused.value)
    assert "lr: 0.05 saved, 0.1 now" in message and "delete it to train afresh" in message and "\n" not in message
    assert isinstance(refused.value, UsageError)


def test_a_damaged_or_foreign_checkpoint_is_refused(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt.pt"
    fit(LineFitter(), Budget(iterations=3), checkpoint=checkpoint)
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    with pytest.raises(CheckpointMismatch, match="not a readable checkpoint"):
        fit(LineFitter(), Budget(iterations=6), checkpoint=checkpoint)
    torch.save({"weights": torch.zeros(2)}, checkpoint)  # some other program's file
    with pytest.raises(CheckpointMismatch, match="checkpoint format None"):
        fit(LineFitter(), Budget(iterations=6), checkpoint=checkpoint)


def test_loading_runs_no_code_from_the_file(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt.pt"
    torch.save({"format": 1, "identity": "{}", "state": Interrupted("pickled object")}, checkpoint)
    with pytest.raises(CheckpointMismatch, match="not a readable checkpoint"):
        load_checkpoint(checkpoint, {})


def test_a_schedule_sees_the_share_of_the_budget_spent_over_resumes(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt.pt"
    shares: list[float] = []
    fit(LineFitter(), Budget(iterations=4), checkpoint=checkpoint, before_iteration=shares.append)
    assert shares == [0.0, 0.25, 0.5, 0.75]
    shares.clear()
    fit(LineFitter(), Budget(iterations=8), checkpoint=checkpoint, before_iteration=shares.append)
    assert shares == [0.5, 0.625, 0.75, 0.875]  # the share counts the iterations of the earlier call
    assert Budget(iterations=0).share(0, 0.0) == 1.0
    assert Budget(iterations=100, minutes=1).share(10, 30.0) == 0.5  # the larger of the two shares
    assert Budget(minutes=2).share(1000, 30.0) == 0.25


def test_global_generators_are_saved_and_restored() -> None:
    cpu = torch.device("cpu")
    state = global_rng_state(cpu)
    assert state["cuda"] is None  # the GPU's generator only when training there
    drawn = torch.rand(3)
    set_global_rng_state(state, cpu)
    assert torch.equal(torch.rand(3), drawn)


@pytest.mark.parametrize(
    ("budget", "message"),
    [({}, "needs iterations, minutes or both"), ({"iterations": -1}, "at least 0"), ({"minutes": 0}, "positive")],
)
def test_budgets_are_checked(budget: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Budget(**budget)


def test_auto_device_and_missing_cuda() -> None:
    if torch.cuda.is_available():
        assert choose_device("auto").type == "cuda"
    else:
        assert choose_device("auto").type == "cpu"
        with pytest.raises(UsageError, match="finds no CUDA GPU"):
            choose_device("cuda")
    with pytest.raises(UsageError, match="unknown device 'gpu0'"):
        choose_device("gpu0")


def test_precision_choices_on_a_cpu() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"  # bf16 changes results: never chosen silently on a CPU
    assert resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(UsageError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", cpu)
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    with autocast("bf16", cpu):
        assert (a @ b).dtype == torch.bfloat16
    with autocast("fp32", cpu):
        assert (a @ b).dtype == torch.float32
