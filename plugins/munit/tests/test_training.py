"""The MUNIT trainer on the tiny preset at 32 px: one iteration, translation, exact resume, budget."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from fewgen_munit.training import MunitTrainer, load_domain_images, random_batch

from fewgen.training import CheckpointMismatch, load_checkpoint

SIZE = 32  # the smallest side the tiny preset takes (two discriminator scales of four stride-2 convs)


def domains(count: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    data = torch.Generator().manual_seed(123)
    dark = torch.randint(0, 128, (count, 3, SIZE, SIZE), dtype=torch.uint8, generator=data)
    light = torch.randint(128, 256, (count, 3, SIZE, SIZE), dtype=torch.uint8, generator=data)
    return dark, light


def sampler(images_a: torch.Tensor, images_b: torch.Tensor, batch: int = 1):
    def sample(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return random_batch(images_a, batch, generator), random_batch(images_b, batch, generator)

    return sample


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    return {name for name, p in module.named_parameters() if not torch.equal(before[name], p.detach())}


def test_one_step_changes_every_network_and_returns_finite_losses() -> None:
    trainer = MunitTrainer("tiny", seed=0)
    model = trainer.model
    parts = {
        "gen_a": model.gen_a,
        "gen_b": model.gen_b,
        "dis_a": model.dis_a,
        "dis_b": model.dis_b,
    }
    parts |= {f"gen_a.{name}": getattr(model.gen_a, name) for name in ("enc_style", "enc_content", "dec", "mlp")}
    before = {name: snapshot(part) for name, part in parts.items()}
    x_a, x_b = sampler(*domains(), batch=2)(trainer.generator)
    result = trainer.step(x_a, x_b)
    for name, part in parts.items():
        assert changed(before[name], part), f"{name} did not change"
    # Nearly every parameter tensor moves; conv biases right before an instance norm get only
    # round-off gradients, so the test does not demand all of them.
    moved = changed(before["gen_b"], model.gen_b)
    assert len(moved) > 0.8 * len(list(model.gen_b.parameters()))
    expected = {"dis_a", "dis_b", "dis_total", "gen_total", "lr"}
    expected |= {f"{term}_{domain}" for term in ("gan", "recon_x", "recon_s", "recon_c") for domain in "ab"}
    assert set(result) == expected
    assert all(math.isfinite(value) for value in result.values())
    assert result["dis_total"] == pytest.approx(result["dis_a"] + result["dis_b"], rel=1e-5)
    assert trainer.gen_scheduler.last_epoch == trainer.dis_scheduler.last_epoch == 1


def test_discriminator_update_leaves_generator_weights_alone() -> None:
    trainer = MunitTrainer("tiny", seed=1)
    model = trainer.model
    gens = snapshot(model.gen_a), snapshot(model.gen_b)
    dis = snapshot(model.dis_a), snapshot(model.dis_b)
    x_a, x_b = sampler(*domains())(trainer.generator)
    trainer.dis_update(x_a, x_b)
    assert not changed(gens[0], model.gen_a) and not changed(gens[1], model.gen_b)
    assert changed(dis[0], model.dis_a) and changed(dis[1], model.dis_b)
    assert all(p.grad is None for p in model.generator_parameters())


def test_cycle_term_is_reported_when_weighted() -> None:
    from fewgen_munit.losses import LossWeights

    trainer = MunitTrainer("tiny", seed=2, weights=LossWeights(recon_x_cyc=10.0))
    result = trainer.step(*sampler(*domains())(trainer.generator))
    assert math.isfinite(result["recon_x_cyc_a"]) and math.isfinite(result["recon_x_cyc_b"])


def test_translate_shapes_range_and_style_diversity() -> None:
    trainer = MunitTrainer("tiny", seed=3)
    images_a, images_b = domains()
    inputs = random_batch(images_a, 2, torch.Generator().manual_seed(0), flip=False)
    outputs = trainer.translate(inputs, "a2b", styles=3, generator=torch.Generator().manual_seed(0))
    assert outputs.shape == (3, 2, 3, SIZE, SIZE)
    assert outputs.min() >= -1 and outputs.max() <= 1
    assert not torch.allclose(outputs[0], outputs[1])
    assert trainer.model.training  # restored after eval-mode translation
    references = random_batch(images_b, 2, torch.Generator().manual_seed(1), flip=False)
    guided = trainer.translate(inputs, "b2a", styles=references)
    assert guided.shape == (2, 2, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match="direction"):
        trainer.translate(inputs, "a2c")


def test_resumed_fit_matches_uninterrupted_fit(tmp_path: Path) -> None:
    sample = sampler(*domains())
    straight = MunitTrainer("tiny", seed=4)
    straight.fit(sample, iterations=3)

    checkpoint = tmp_path / "munit.pt"
    first = MunitTrainer("tiny", seed=4)
    first.fit(sample, iterations=2, checkpoint=checkpoint)
    resumed = MunitTrainer("tiny", seed=4)
    summary = resumed.fit(sample, iterations=3, checkpoint=checkpoint)

    assert (summary.resumed_from, summary.iterations, summary.stopped_by) == (2, 3, "iterations")
    expected, actual = straight.model.state_dict(), resumed.model.state_dict()
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert torch.equal(straight.generator.get_state(), resumed.generator.get_state())
    assert straight.gen_scheduler.state_dict() == resumed.gen_scheduler.state_dict()
    with pytest.raises(CheckpointMismatch, match="seed: 4 saved, 5 now"):
        MunitTrainer("tiny", seed=5).fit(sample, iterations=4, checkpoint=checkpoint)


def test_checkpoints_of_the_plugin_s_own_earlier_formats_are_refused_in_one_line(tmp_path: Path) -> None:
    # Formats 1 and 2 were the plugin's own files (format 1 with instance-norm running statistics).
    sample = sampler(*domains())
    checkpoint = tmp_path / "munit.pt"
    trainer = MunitTrainer("tiny", seed=6)
    identity = json.dumps({key: value for key, value in trainer.identity().items() if key != "format"})
    for old_format in (1, 2):
        torch.save({"format": old_format, "identity": identity, "model": trainer.model.state_dict()}, checkpoint)
        with pytest.raises(CheckpointMismatch, match="delete it to train afresh") as refused:
            MunitTrainer("tiny", seed=6).fit(sample, iterations=2, checkpoint=checkpoint)
        assert "\n" not in str(refused.value)


def test_a_minutes_budget_counts_over_resumes(tmp_path: Path) -> None:
    sample = sampler(*domains())
    checkpoint = tmp_path / "munit.pt"
    MunitTrainer("tiny", seed=7).fit(sample, iterations=1, minutes=0.5, checkpoint=checkpoint)
    trained = load_checkpoint(checkpoint, MunitTrainer("tiny", seed=7).identity())["seconds"]
    assert 0 < trained < 30
    # A second call with a budget the first call's training already spent trains no more.
    summary = MunitTrainer("tiny", seed=7).fit(sample, iterations=100, minutes=trained / 60, checkpoint=checkpoint)
    assert (summary.iterations, summary.resumed_from, summary.stopped_by) == (1, 1, "minutes")


def test_budget_stops_fit_early() -> None:
    trainer = MunitTrainer("tiny", seed=5)
    seen: list[int] = []
    summary = trainer.fit(sampler(*domains()), iterations=1000, minutes=1e-6, on_step=lambda i, _: seen.append(i))
    assert summary.stopped_by == "minutes"
    assert summary.iterations == 1 and seen == [1]


def test_random_batch_and_load_domain_images(tmp_path: Path) -> None:
    from PIL import Image

    images = torch.zeros(1, 3, 4, 6, dtype=torch.uint8)
    images[..., :3] = 255  # left half white
    flips = [random_batch(images, 1, torch.Generator().manual_seed(seed))[0, 0, 0, 0] for seed in range(16)]
    assert {float(value) for value in flips} == {-1.0, 1.0}
    cropped = random_batch(images, 2, torch.Generator().manual_seed(0), flip=False, crop=4)
    assert cropped.shape == (2, 3, 4, 4)

    path = tmp_path / "wide.png"
    Image.new("RGB", (80, 40), (10, 20, 30)).save(path)
    loaded = load_domain_images([path], 32)
    assert loaded.shape == (1, 3, 32, 32) and loaded.dtype == torch.uint8
    assert loaded[0, :, 16, 16].tolist() == [10, 20, 30]


def test_bf16_trains_every_network_in_fp32_weights_and_is_part_of_the_identity(tmp_path: Path) -> None:
    fp32, bf16 = MunitTrainer("tiny", seed=0), MunitTrainer("tiny", seed=0, precision="bf16")
    for trainer in (fp32, bf16):
        result = trainer.step(*sampler(*domains(), batch=2)(trainer.generator))
        assert all(math.isfinite(value) for value in result.values())
    pairs = list(zip(fp32.model.parameters(), bf16.model.parameters(), strict=True))
    assert all(b.dtype == torch.float32 for _, b in pairs)  # autocast changes the arithmetic, not the weights
    assert any(not torch.equal(a, b) for a, b in pairs)
    assert fp32.identity()["precision"] == "fp32" and bf16.identity()["precision"] == "bf16"
    with pytest.raises(ValueError, match="precision must be fp32 or bf16"):
        MunitTrainer("tiny", precision="fp16")  # type: ignore[arg-type]
