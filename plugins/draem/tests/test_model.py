"""The networks' shapes and the paper's inference rules: softmax anomaly channel, pooled image score."""

from __future__ import annotations

import pytest
import torch
from fewgen_draem.model import PRESETS, DiscriminativeSubNetwork, Draem, ReconstructiveSubNetwork, image_score


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_widths_give_the_reference_parameter_counts() -> None:
    # Counted by hand from the reference architecture: conv weights + biases + batch-norm scales and shifts.
    def conv(i: int, o: int) -> int:
        return 9 * i * o + o + 2 * o  # 3x3 conv with bias, then batch norm

    w = 128
    encoder = sum(
        conv(i, o)
        for i, o in [
            (3, w),
            (w, w),
            (w, 2 * w),
            (2 * w, 2 * w),
            (2 * w, 4 * w),
            (4 * w, 4 * w),
            (4 * w, 8 * w),
            (8 * w, 8 * w),
            (8 * w, 8 * w),
            (8 * w, 8 * w),
        ]
    )
    decoder = sum(
        conv(i, o)
        for i, o in [
            (8 * w, 8 * w),
            (8 * w, 8 * w),
            (8 * w, 4 * w),
            (4 * w, 4 * w),
            (4 * w, 4 * w),
            (4 * w, 2 * w),
            (2 * w, 2 * w),
            (2 * w, 2 * w),
            (2 * w, w),
            (w, w),
            (w, w),
            (w, w),
        ]
    )
    decoder += 9 * w * 3 + 3
    assert parameter_count(ReconstructiveSubNetwork(base_width=w)) == encoder + decoder
    assert parameter_count(Draem.from_preset("paper")) == 97_422_725


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_shapes(preset: str) -> None:
    model = Draem.from_preset(preset)
    reconstruction, logits = model(torch.rand(2, 3, 64, 96))
    assert reconstruction.shape == (2, 3, 64, 96)
    assert logits.shape == (2, 2, 64, 96)


def test_discriminator_joins_a_skip_at_every_scale() -> None:
    network = DiscriminativeSubNetwork(base_width=4)
    assert len(network.down) == 6 and len(network.up) == 5
    # Each merge block takes the upsampled features plus the encoder features of that scale.
    assert [block[0].in_channels for block in network.merge] == [64, 16 + 32, 8 + 16, 4 + 8, 4 + 4]


def test_sides_must_be_multiples_of_32() -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        Draem(PRESETS["tiny"])(torch.rand(1, 3, 48, 64))


def test_predict_returns_the_softmax_anomaly_channel_and_a_score_per_image() -> None:
    torch.manual_seed(0)
    model = Draem(PRESETS["tiny"]).eval()
    image = torch.rand(3, 3, 64, 64)
    maps, scores = model.predict(image)
    _, logits = model(image)
    assert torch.allclose(maps, torch.softmax(logits, 1)[:, 1])
    assert maps.shape == (3, 64, 64) and scores.shape == (3,)
    assert torch.allclose(scores, image_score(maps))


def test_image_score_is_the_max_of_the_21x21_mean() -> None:
    single = torch.zeros(1, 64, 64)
    single[0, 30, 30] = 1.0
    assert image_score(single).item() == pytest.approx(1 / 441)
    block = torch.zeros(1, 64, 64)
    block[0, 10:31, 20:41] = 1.0  # exactly one 21x21 window is all ones
    assert image_score(block).item() == pytest.approx(1.0)
    # Zero padding counts at the border: a full-image map of ones scores 1, its corner window 11x11/441.
    corner = torch.zeros(1, 64, 64)
    corner[0, :11, :11] = 1.0
    assert image_score(corner).item() == pytest.approx(121 / 441)
    # A coherent region beats a brighter isolated pixel.
    region = torch.zeros(2, 64, 64)
    region[0, 20:30, 20:30] = 0.5
    region[1, 40, 40] = 1.0
    scores = image_score(region)
    assert scores[0] > scores[1]
