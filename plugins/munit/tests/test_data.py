"""Working scale, crops and file listing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fewgen_munit.data import at_working_scale, centre_crop, image_files, random_crops, working_size


@pytest.mark.parametrize(
    ("height", "width", "short", "expected"),
    [(240, 320, 128, (128, 172)), (700, 1280, 128, (128, 236)), (128, 128, 128, (128, 128)), (469, 640, 64, (64, 88))],
)
def test_working_size_keeps_the_aspect_in_multiples_of_four(
    height: int, width: int, short: int, expected: tuple
) -> None:
    size = working_size(height, width, short)
    assert size == expected
    assert size[0] % 4 == 0 and size[1] % 4 == 0


def test_at_working_scale_is_uint8_with_the_short_side_given() -> None:
    image = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    scaled = at_working_scale(image, 64)
    assert scaled.dtype == torch.uint8 and tuple(scaled.shape) == (3, 64, 84)
    flat = np.full((240, 320, 3), 77, np.uint8)
    assert bool((at_working_scale(flat, 64) == 77).all())  # resizing keeps a flat colour exactly


def test_random_crops_come_from_the_images_in_minus_one_to_one() -> None:
    images = [torch.full((3, 40, 60), 0, dtype=torch.uint8), torch.full((3, 50, 36), 255, dtype=torch.uint8)]
    crops = random_crops(images, 16, torch.Generator().manual_seed(0), 32)
    assert tuple(crops.shape) == (16, 3, 32, 32)
    values = set(crops.unique().tolist())
    assert values <= {-1.0, 1.0} and len(values) == 2  # both images drawn, scaled to the ends of the range
    again = random_crops(images, 16, torch.Generator().manual_seed(0), 32)
    assert torch.equal(crops, again)
    with pytest.raises(ValueError, match="larger"):
        random_crops(images, 1, torch.Generator(), 48)


def test_random_crops_flip_and_cut_the_right_window() -> None:
    ramp = torch.arange(8, dtype=torch.uint8).repeat(3, 8, 1)  # value = column
    crops = random_crops([ramp], 64, torch.Generator().manual_seed(1), 4, flip=True)
    rows = ((crops[:, 0, 0] + 1) * 127.5).round().long()
    ascending = (rows[:, 1:] - rows[:, :-1] == 1).all(1)
    descending = (rows[:, 1:] - rows[:, :-1] == -1).all(1)
    assert bool((ascending | descending).all()) and ascending.any() and descending.any()


def test_centre_crop() -> None:
    pixels = torch.arange(6 * 8).view(1, 6, 8)
    assert centre_crop(pixels, 4).tolist() == [[[10, 11, 12, 13], [18, 19, 20, 21], [26, 27, 28, 29], [34, 35, 36, 37]]]


def test_image_files_are_sorted_by_relative_path(tmp_path: Path) -> None:
    for name in ("b/2.png", "a/9.JPG", "a/10.jpg", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in image_files(tmp_path)] == ["a/10.jpg", "a/9.JPG", "b/2.png"]


def test_restore_detail_gives_back_the_source_for_an_identity_translation() -> None:
    from fewgen_munit.data import resize, restore_detail

    source = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(0))
    low = resize(resize(source, (24, 32)), (48, 64))
    assert torch.allclose(restore_detail(low, source, low), source, atol=1e-6)
    # A translation that darkens everything to 30 % gets the detail back at about 30 % strength.
    dark = restore_detail(low * 0.3, source, low)
    assert float((dark - source * 0.3).abs().mean()) < 0.02 < float((low * 0.3 - source * 0.3).abs().mean())
