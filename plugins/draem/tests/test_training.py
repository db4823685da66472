"""The training loop: schedule, stopping rules, safe checkpoints and exact resumption."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from fewgen_draem.training import (
    DraemTrainer,
    TrainingConfig,
    load_model,
    save_model,
    stack_images,
    texture_fingerprint,
)

from fewgen.training import CheckpointMismatch

CONFIG = TrainingConfig(preset="tiny", size=32, batch_size=2, epochs=2, checkpoint_every=1)


def good_images(count: int = 4) -> torch.Tensor:
    generator = torch.Generator().manual_seed(5)
    return (torch.rand(count, 3, 32, 32, generator=generator) * 255).to(torch.uint8)


def test_fit_runs_the_planned_steps_and_reports() -> None:
    summary = DraemTrainer(CONFIG, seed=0).fit(good_images())
    assert summary.iterations == 4  # 2 epochs x 2 batches
    assert summary.epochs_completed == 2.0
    assert summary.stopped_by == "iterations"
    assert set(summary.final) == {"l2", "ssim", "focal"}


def test_learning_rate_drops_at_80_and_90_percent() -> None:
    trainer = DraemTrainer(replace(CONFIG, epochs=5), seed=0)  # 10 steps
    rates = []
    trainer.fit(good_images(), on_step=lambda step, done, losses: rates.append(trainer.optimizer.param_groups[0]["lr"]))
    assert rates[:8] == [pytest.approx(1e-4)] * 8
    assert rates[8] == pytest.approx(2e-5)  # step 9 ran at 80 % done
    assert rates[9] == pytest.approx(4e-6)  # step 10 ran at 90 % done


def test_a_budget_stops_training() -> None:
    summary = DraemTrainer(replace(CONFIG, epochs=None, minutes=1e-6), seed=0).fit(good_images())
    assert summary.stopped_by == "minutes"
    assert summary.iterations <= 1


def test_resumed_training_equals_uninterrupted_training(tmp_path: Path) -> None:
    images = good_images()
    straight = DraemTrainer(CONFIG, seed=3)
    straight.fit(images)

    checkpoint = tmp_path / "draem.pt"
    first = DraemTrainer(replace(CONFIG, epochs=1), seed=3)
    first.fit(images, checkpoint=checkpoint)  # stops half way, as an interrupted run would
    resumed = DraemTrainer(CONFIG, seed=3)
    summary = resumed.fit(images, checkpoint=checkpoint)
    assert summary.resumed_from == 2 and summary.iterations == 4
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_checkpoint_of_other_settings_is_refused(tmp_path: Path) -> None:
    checkpoint = tmp_path / "draem.pt"
    DraemTrainer(replace(CONFIG, epochs=1), seed=0).fit(good_images(), checkpoint=checkpoint)
    with pytest.raises(CheckpointMismatch, match="other settings"):
        DraemTrainer(replace(CONFIG, preset="small"), seed=0).fit(good_images(), checkpoint=checkpoint)


def test_rotate_normal_is_the_official_0_3_and_part_of_the_checkpoint_identity(tmp_path: Path) -> None:
    assert TrainingConfig().rotate_normal == 0.3  # the official loader: torch.rand(1) > 0.7
    checkpoint = tmp_path / "draem.pt"
    DraemTrainer(replace(CONFIG, epochs=1), seed=0).fit(good_images(), checkpoint=checkpoint)
    with pytest.raises(CheckpointMismatch, match="other settings"):
        DraemTrainer(replace(CONFIG, rotate_normal=0.0), seed=0).fit(good_images(), checkpoint=checkpoint)


def test_a_checkpoint_resumes_only_with_the_textures_it_was_trained_with(tmp_path: Path) -> None:
    textures = good_images(3)
    other = textures.clone()
    other[1, 0, 0, 0] ^= 1  # one pixel of one texture
    assert texture_fingerprint(None) is None
    assert texture_fingerprint(textures) == texture_fingerprint(textures.clone())
    assert len({texture_fingerprint(t) for t in (textures, other, textures[[1, 0, 2]], textures[:2])}) == 4
    checkpoint = tmp_path / "draem.pt"
    DraemTrainer(replace(CONFIG, epochs=1), seed=0).fit(good_images(), textures, checkpoint=checkpoint)
    for changed in (other, None):
        with pytest.raises(CheckpointMismatch, match=r"other settings.*textures"):
            DraemTrainer(CONFIG, seed=0).fit(good_images(), changed, checkpoint=checkpoint)
    summary = DraemTrainer(CONFIG, seed=0).fit(good_images(), textures.clone(), checkpoint=checkpoint)
    assert summary.resumed_from == 2 and summary.iterations == 4


def test_checkpoints_load_with_weights_only(tmp_path: Path) -> None:
    checkpoint = tmp_path / "draem.pt"
    DraemTrainer(replace(CONFIG, epochs=1), seed=0).fit(good_images(), checkpoint=checkpoint)
    payload = torch.load(checkpoint, weights_only=True)  # raises if anything but tensors and plain data is inside
    assert payload["iteration"] == payload["state"]["step"] == 2
    assert not list(tmp_path.glob(".*partial"))


def test_saved_model_predicts_the_same(tmp_path: Path) -> None:
    trainer = DraemTrainer(replace(CONFIG, epochs=1), seed=0)
    trainer.fit(good_images())
    save_model(trainer.model, tmp_path / "model.pt", trainer.config)
    model, config = load_model(tmp_path / "model.pt")
    assert config == trainer.config
    maps, scores = trainer.predict(good_images())
    model.eval()
    again, again_scores = model.predict(good_images().float() / 255)
    assert torch.allclose(maps, again, atol=1e-6) and torch.allclose(scores, again_scores, atol=1e-6)
    assert maps.shape == (4, 32, 32) and ((maps >= 0) & (maps <= 1)).all()


def test_stack_images_resizes_any_size() -> None:
    import numpy as np

    arrays = [np.full((40, 50, 3), 200, np.uint8), np.zeros((32, 32, 3), np.uint8)]
    stacked = stack_images(arrays, 32)
    assert stacked.shape == (2, 3, 32, 32) and stacked.dtype == torch.uint8
    assert int(stacked[0].min()) == 200 and int(stacked[1].max()) == 0


def test_wrong_image_size_is_an_error() -> None:
    with pytest.raises(ValueError, match="must be"):
        DraemTrainer(CONFIG, seed=0).fit(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))


def test_bf16_trains_under_autocast_and_is_part_of_the_identity(tmp_path: Path) -> None:
    fp32 = DraemTrainer(replace(CONFIG, epochs=1), seed=0)
    fp32.fit(good_images())
    bf16 = DraemTrainer(replace(CONFIG, epochs=1, precision="bf16"), seed=0)
    summary = bf16.fit(good_images(), checkpoint=tmp_path / "draem.pt")
    assert summary.iterations == 2 and all(torch.isfinite(torch.tensor(list(summary.final.values()))))
    weights = [(a, b) for a, b in zip(fp32.model.state_dict().values(), bf16.model.state_dict().values(), strict=True)]
    assert all(b.dtype == a.dtype for a, b in weights)  # the weights stay fp32; only the forward passes are bf16
    assert any(not torch.equal(a, b) for a, b in weights if a.is_floating_point())
    with pytest.raises(CheckpointMismatch, match="precision"):
        DraemTrainer(CONFIG, seed=0).fit(good_images(), checkpoint=tmp_path / "draem.pt")
    with pytest.raises(ValueError, match="precision must be fp32 or bf16"):
        TrainingConfig(precision="fp16")  # type: ignore[arg-type]
