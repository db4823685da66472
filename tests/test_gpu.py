"""CUDA paths: run where torch finds a GPU (``pytest -m gpu``, benchmarks/gpu_check.sh), skipped elsewhere."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from fewgen.training import Budget, autocast, choose_device, fit, resolve_precision  # noqa: E402

pytestmark = pytest.mark.gpu


class TinyRegression:
    """A two-layer network fitted by Adam on points drawn from its own generator, on ``device``."""

    def __init__(self, device: Any):
        torch.manual_seed(0)
        self.device = device
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)).to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=1e-2)
        self.generator = torch.Generator().manual_seed(1)

    def train_step(self) -> dict[str, float]:
        x = torch.randn(32, 4, generator=self.generator).to(self.device)
        loss = ((self.net(x).squeeze(1) - x.sum(1)) ** 2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item()}

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "opt": self.optimizer.state_dict(), "gen": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["opt"])
        self.generator.set_state(state["gen"].cpu())

    def identity(self) -> dict[str, Any]:
        return {"net": "tiny"}


def test_auto_picks_the_gpu_and_a_gpu_precision() -> None:
    device = choose_device("auto")
    assert device.type == "cuda"
    assert resolve_precision("auto", device) in ("bf16", "fp16")


def test_fit_on_the_gpu_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    device = choose_device("cuda")
    whole = TinyRegression(device)
    fit(whole, Budget(iterations=20), device=device)
    first = TinyRegression(device)
    fit(first, Budget(iterations=8), checkpoint=tmp_path / "ckpt.pt", checkpoint_every=4, device=device)
    resumed = TinyRegression(device)
    summary = fit(resumed, Budget(iterations=20), checkpoint=tmp_path / "ckpt.pt", checkpoint_every=4, device=device)
    assert summary.resumed_from == 8 and summary.final["loss"] < 5
    for name, value in whole.net.state_dict().items():
        torch.testing.assert_close(resumed.net.state_dict()[name], value, rtol=1e-5, atol=1e-6)


def test_mixed_precision_on_the_gpu() -> None:
    device = choose_device("cuda")
    a, b = torch.randn(16, 16, device=device), torch.randn(16, 16, device=device)
    with autocast("fp16", device):
        assert (a @ b).dtype == torch.float16
    with autocast(resolve_precision("auto", device), device):
        assert (a @ b).dtype in (torch.float16, torch.bfloat16)


def test_a_maml_meta_step_on_the_gpu_matches_the_cpu() -> None:
    maml_module = pytest.importorskip("fewgen_maml.maml")
    from fewgen_maml.backbones import ConvNet
    from fewgen_maml.episodes import EpisodeSampler

    generator = torch.Generator().manual_seed(0)
    images = {c: torch.rand(4, 1, 8, 8, generator=generator) for c in range(5)}
    sample = partial(EpisodeSampler(images, ways=3, shots=1, queries=2).sample, 2)
    batch = sample(torch.Generator().manual_seed(3))
    results = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = ConvNet(1, 3, image_size=8, channels=4, blocks=2)
        maml = maml_module.MAML(model.to(device), maml_module.MAMLConfig(inner_lr=0.1, meta_batch_size=2))
        results[device] = maml.meta_step(batch)["query_loss"]
    assert results["cuda"] == pytest.approx(results["cpu"], rel=1e-4)
