"""The training loop: image pool, schedule, stopping rules, safe checkpoints and exact resumption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fewgen_psgan.losses import LossWeights
from fewgen_psgan.training import ImagePool, OptimConfig, PsganTrainer, load_generator, save_generator

from fewgen.training import CheckpointMismatch, save_checkpoint

SIZE = 64


def sampler(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two windows with boxes of different sizes, drawn from the trainer's generator."""
    targets = torch.rand(2, 3, SIZE, SIZE, generator=generator) * 2 - 1
    boxes = torch.tensor([[10, 5, 30, 50], [40, 20, 56, 44]])
    inputs = targets.clone()
    for image, (x1, y1, x2, y2) in zip(inputs, boxes.tolist(), strict=True):
        image[:, y1:y2, x1:x2] = torch.rand(3, y2 - y1, x2 - x1, generator=generator) * 2 - 1
    return inputs, targets, boxes


def test_pool_stores_until_full_then_swaps_half_the_time() -> None:
    pool = ImagePool(3)
    generator = torch.Generator().manual_seed(0)
    first = torch.arange(3.0)[:, None]
    assert torch.equal(pool.query(first, generator), first)  # filling: every image comes straight back
    returned = torch.cat([pool.query(torch.tensor([[10.0 + i]]), generator) for i in range(200)])[:, 0]
    new = 10 + torch.arange(200.0)
    assert bool((returned <= new).all())  # each image comes back itself or as an older one
    assert 70 < int((returned == new).sum()) < 130  # itself about half the time
    assert len(pool.images) == 3
    assert torch.equal(ImagePool(0).query(first, generator), first)


def test_pool_swap_returns_an_old_image_and_keeps_the_new_one() -> None:
    pool = ImagePool(1)
    generator = torch.Generator().manual_seed(1)
    pool.query(torch.tensor([[1.0]]), generator)
    outputs = [float(pool.query(torch.tensor([[2.0 + i]]), generator)) for i in range(20)]
    stored = [1.0]
    for i, out in enumerate(outputs):
        new = 2.0 + i
        if out != new:  # a swap: the stored image comes back and the new one takes its place
            assert out == stored[0]
            stored[0] = new
    assert float(pool.images[0][0]) == stored[0]


def test_learning_rate_is_constant_then_decays_linearly_to_zero() -> None:
    trainer = PsganTrainer("tiny", seed=0, optim=OptimConfig(decay_start=0.5))
    rates = []
    for done in (0.0, 0.25, 0.5, 0.75, 1.0):
        trainer.set_lr(done)
        rates.append([g["lr"] for opt in trainer.optimizers for g in opt.param_groups])
    assert rates == [[pytest.approx(r)] * 3 for r in (2e-4, 2e-4, 2e-4, 1e-4, 0.0)]
    assert trainer.gen_opt.defaults["betas"] == (0.5, 0.999)


def test_fit_runs_iterations_and_reports() -> None:
    summary = PsganTrainer("tiny", seed=0).fit(sampler, iterations=2)
    assert (summary.iterations, summary.resumed_from, summary.stopped_by) == (2, 0, "iterations")
    assert {"gan_image", "l1", "gan_person", "gen_total", "dis_image", "dis_person", "lr"} <= set(summary.final)
    terms = summary.final  # the means over the last iterations: the objective is linear in the terms
    assert terms["gen_total"] == pytest.approx(terms["gan_image"] + 100 * terms["l1"] + terms["gan_person"], rel=1e-4)


def generator_moves(weights: LossWeights) -> list[bool]:
    """Which generator parameter tensors one iteration with these loss weights changes."""
    trainer = PsganTrainer("tiny", seed=0, weights=weights)
    before = [p.detach().clone() for p in trainer.model.generator.parameters()]
    trainer.step(*sampler(trainer.generator))
    return [not torch.equal(b, p) for b, p in zip(before, trainer.model.generator.parameters(), strict=True)]


def test_the_person_discriminator_term_alone_trains_the_generator() -> None:
    # With the image and L1 weights at 0 only the person discriminator's term can move the generator:
    # this fails if its gradient is cut anywhere on the way (a detached fake crop, a no_grad score).
    moved = generator_moves(LossWeights(image=0.0, l1=0.0, person=1.0))
    assert all(moved), f"{moved.count(False)} of {len(moved)} generator tensors got no gradient"
    assert not any(generator_moves(LossWeights(image=0.0, l1=0.0, person=0.0)))  # nothing else moves it


def test_the_image_discriminator_loss_is_bce_by_default_and_part_of_the_identity(tmp_path: Path) -> None:
    assert PsganTrainer("tiny").identity()["gan_loss"] == "bce"
    checkpoint = tmp_path / "psgan.pt"
    PsganTrainer("tiny", seed=0, gan_loss="lsgan").fit(sampler, iterations=1, checkpoint=checkpoint)
    with pytest.raises(CheckpointMismatch, match="other settings"):
        PsganTrainer("tiny", seed=0).fit(sampler, iterations=2, checkpoint=checkpoint)
    with pytest.raises(ValueError, match="unknown GAN loss 'wgan'"):
        PsganTrainer("tiny", gan_loss="wgan")  # type: ignore[arg-type]


def test_a_checkpoint_of_the_plugin_s_own_earlier_formats_is_refused_in_one_line(tmp_path: Path) -> None:
    checkpoint = tmp_path / "psgan.pt"
    trainer = PsganTrainer("tiny", seed=0)
    identity = json.dumps({key: value for key, value in trainer.identity().items() if key != "format"})
    for old_format in (1, 2):  # what the plugin's own loop wrote: its weights and state beside the identity
        torch.save({"format": old_format, "identity": identity, "model": trainer.model.state_dict()}, checkpoint)
        with pytest.raises(CheckpointMismatch, match="delete it to train afresh") as refused:
            PsganTrainer("tiny", seed=0).fit(sampler, iterations=2, checkpoint=checkpoint)
        assert "\n" not in str(refused.value)


def test_a_minutes_budget_stops_training() -> None:
    summary = PsganTrainer("tiny", seed=0).fit(sampler, minutes=1e-6)
    assert summary.stopped_by == "minutes" and summary.iterations <= 1


def test_two_then_one_resumed_iteration_equals_three(tmp_path: Path) -> None:
    straight = PsganTrainer("tiny", seed=3)
    straight.fit(sampler, iterations=3)

    checkpoint = tmp_path / "psgan.pt"
    PsganTrainer("tiny", seed=3).fit(sampler, iterations=2, checkpoint=checkpoint)
    torch.rand(5)  # whatever runs between sessions must not matter: the checkpoint restores the global generator
    resumed = PsganTrainer("tiny", seed=3)
    summary = resumed.fit(sampler, iterations=3, checkpoint=checkpoint)
    assert (summary.resumed_from, summary.iterations) == (2, 3)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for a, b in zip(straight.pool.images, resumed.pool.images, strict=True):
        assert torch.equal(a, b)
    assert (
        straight.optimizers[0].state_dict()["state"][0]["step"]
        == resumed.optimizers[0].state_dict()["state"][0]["step"]
    )


def test_checkpoints_are_atomic_weights_only_and_tied_to_their_settings(tmp_path: Path) -> None:
    checkpoint = tmp_path / "psgan.pt"
    PsganTrainer("tiny", seed=0).fit(sampler, iterations=1, checkpoint=checkpoint)
    payload = torch.load(checkpoint, weights_only=True)  # raises if anything but tensors and plain data is inside
    assert payload["iteration"] == 1 and len(payload["state"]["pool"]) == 2
    assert not list(tmp_path.glob(".*partial"))
    with pytest.raises(CheckpointMismatch, match="other settings"):
        PsganTrainer("tiny", seed=1).fit(sampler, iterations=2, checkpoint=checkpoint)


def test_fit_needs_an_end() -> None:
    with pytest.raises(ValueError, match="needs an end"):
        PsganTrainer("tiny").fit(sampler)


class Enough(Exception):
    pass


def test_a_minutes_budget_makes_the_schedule_follow_the_clock(tmp_path: Path) -> None:
    # A checkpoint that has trained 45 of 60 seconds: the rate is halfway down (it decays from 30 s on).
    checkpoint = tmp_path / "psgan.pt"
    trainer = PsganTrainer("tiny", seed=0)
    save_checkpoint(checkpoint, trainer.identity(), trainer.state_dict(), iteration=10, seconds=45.0)
    rates: list[float] = []

    def one_iteration(iteration: int, figures: dict[str, float]) -> None:
        rates.append(figures["lr"])
        raise Enough  # do not train out the remaining 15 s

    with pytest.raises(Enough):
        trainer.fit(sampler, iterations=1000, minutes=1, checkpoint=checkpoint, on_step=one_iteration)
    assert rates == [pytest.approx(1e-4, rel=0.01)]


def test_a_generator_file_written_before_the_official_person_discriminator_still_loads(tmp_path: Path) -> None:
    trainer = PsganTrainer("tiny", seed=0)
    save_generator(trainer, tmp_path / "g.pt")
    payload = torch.load(tmp_path / "g.pt", weights_only=True)
    config = json.loads(payload["config"])
    torch.save({**payload, "config": json.dumps({**config, "person_layers": 3})}, tmp_path / "g.pt")
    generator, loaded = load_generator(tmp_path / "g.pt")
    assert loaded == trainer.config
    inputs, _, _ = sampler(torch.Generator().manual_seed(9))
    with torch.no_grad():
        assert torch.equal(generator(inputs), trainer.generate(inputs))


def test_the_saved_generator_paints_what_the_trainer_paints(tmp_path: Path) -> None:
    trainer = PsganTrainer("tiny", seed=0)
    trainer.fit(sampler, iterations=1)
    save_generator(trainer, tmp_path / "g.pt")
    generator, config = load_generator(tmp_path / "g.pt")
    inputs, _, _ = sampler(torch.Generator().manual_seed(9))
    assert config == trainer.config and not generator.training
    with torch.no_grad():
        assert torch.equal(generator(inputs), trainer.generate(inputs))
