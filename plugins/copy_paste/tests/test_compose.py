"""The pure arithmetic of a paste: clipping, occlusion of earlier boxes, feathering and Poisson blending."""

from __future__ import annotations

import numpy as np
import pytest
from fewgen_copy_paste.compose import (
    Layout,
    Patch,
    blend_into,
    feather_weights,
    fit_patch,
    pixel_rect,
    poisson_clone,
    random_corner,
)

from fewgen.dataset import Box

WIDTH, HEIGHT = 64, 48


def solid(cls: int, x: int, y: int, width: int, height: int, value: int = 200) -> Patch:
    """A box-only patch: every pixel of its rectangle is the object."""
    return Patch(cls, x, y, np.full((height, width, 3), value, np.uint8), np.ones((height, width), bool))


def paste(layout: Layout, patch: Patch) -> bool:
    tracked = layout.admit(patch)
    if tracked is None:
        return False
    layout.add(tracked, patch)
    return True


def test_a_box_half_covered_shrinks_to_what_is_left_and_one_covered_more_goes() -> None:
    layout = Layout([Box(0, 10.0, 10.0, 30.0, 30.0), Box(1, 40.0, 10.0, 50.0, 20.0)], WIDTH, HEIGHT, 0.5)
    assert paste(layout, solid(2, 20, 5, 20, 30))  # covers x 20..40 of both boxes' rows: half of the first
    boxes, removed, shrunk = layout.result()
    assert boxes == [Box(0, 10.0, 10.0, 20.0, 30.0), Box(1, 40.0, 10.0, 50.0, 20.0), Box(2, 20.0, 5.0, 40.0, 35.0)]
    assert (removed, shrunk) == (0, 1)
    stricter = Layout([Box(0, 10.0, 10.0, 30.0, 30.0)], WIDTH, HEIGHT, 0.6)
    paste(stricter, solid(2, 20, 5, 20, 30))
    assert stricter.result() == ([Box(2, 20.0, 5.0, 40.0, 35.0)], 1, 0)


def test_a_fully_covered_box_is_removed_and_a_later_paste_hides_an_earlier_one() -> None:
    layout = Layout([Box(0, 12.0, 12.0, 20.0, 20.0)], WIDTH, HEIGHT, 0.5)
    paste(layout, solid(1, 10, 10, 20, 20))  # covers the real box entirely
    paste(layout, solid(2, 10, 0, 20, 25))  # covers the first paste's rows 10..25 (15 of its 20)
    boxes, removed, _ = layout.result()
    assert boxes == [Box(2, 10.0, 0.0, 30.0, 25.0)]
    assert removed == 2


def test_fractional_boxes_keep_their_edges_where_nothing_covers_them() -> None:
    layout = Layout([Box(0, 10.4, 10.2, 20.6, 20.7)], WIDTH, HEIGHT, 0.3)
    paste(layout, solid(1, 0, 0, 15, 40))  # hides whole columns 10..14 of the box's pixels 10..20
    (box, _), _, _ = layout.result()
    assert box == Box(0, 15.0, 10.2, 20.6, 20.7)


def test_a_hole_in_the_middle_leaves_the_box_as_it_was() -> None:
    layout = Layout([Box(0, 10.0, 10.0, 30.0, 30.0)], WIDTH, HEIGHT, 0.5)
    paste(layout, solid(1, 15, 15, 4, 4))
    assert layout.result() == ([Box(0, 10.0, 10.0, 30.0, 30.0), Box(1, 15.0, 15.0, 19.0, 19.0)], 0, 0)


def test_only_the_shape_of_a_cut_out_hides_what_lies_behind() -> None:
    shape = np.zeros((20, 20), bool)
    shape[:, :5] = True  # the object is the left quarter of its box
    layout = Layout([Box(0, 10.0, 10.0, 30.0, 30.0)], WIDTH, HEIGHT, 0.5)
    paste(layout, Patch(1, 20, 10, np.zeros((20, 20, 3), np.uint8), shape))
    boxes, _, _ = layout.result()
    # Columns 20..25 of the real box are hidden, 25..30 still seen: its bounding box does not change.
    assert boxes == [Box(0, 10.0, 10.0, 30.0, 30.0), Box(1, 20.0, 10.0, 40.0, 30.0)]


def test_pastes_are_clipped_at_the_border_and_dropped_when_mostly_outside() -> None:
    layout = Layout([], WIDTH, HEIGHT, 0.5)
    assert paste(layout, solid(0, -5, 40, 20, 10))  # 15 of 20 columns and 8 of 10 rows inside
    assert not paste(layout, solid(0, 50, -15, 20, 20))  # 14 x 5 of 20 x 20 inside: 17.5 %
    assert layout.result() == ([Box(0, 0.0, 40.0, 15.0, 48.0)], 0, 0)
    lenient = Layout([], WIDTH, HEIGHT, 0.0)
    assert not paste(lenient, solid(0, WIDTH - 1, 0, 10, 10))  # one pixel wide in view: under 2 px


def test_cut_out_labels_are_the_box_of_their_pixels_in_view() -> None:
    shape = np.zeros((10, 10), bool)
    shape[2:8, 3:9] = True
    layout = Layout([], WIDTH, HEIGHT, 0.5)
    assert paste(layout, Patch(0, -4, 0, np.zeros((10, 10, 3), np.uint8), shape))
    assert layout.result()[0] == [Box(0, 0.0, 2.0, 5.0, 8.0)]  # shape columns 4..9 are image columns 0..5


def test_pixel_rect_rounds_inwards_and_refuses_slivers() -> None:
    assert pixel_rect(Box(0, 3.2, 4.0, 10.9, 9.5)) == (4, 4, 6, 5)
    assert pixel_rect(Box(0, 3.2, 4.0, 5.1, 9.5)) is None


def test_random_corners_put_the_centre_anywhere_in_the_image() -> None:
    rng = np.random.default_rng(0)
    corners = np.array([random_corner(10, 6, WIDTH, HEIGHT, rng) for _ in range(2000)])
    assert corners[:, 0].min() == -5 and corners[:, 0].max() == WIDTH - 1 - 5
    assert corners[:, 1].min() == -3 and corners[:, 1].max() == HEIGHT - 1 - 3


def test_fit_patch_resizes_and_flips_pixels_and_shape_together() -> None:
    pixels = np.zeros((4, 6, 3), np.uint8)
    pixels[:, :3] = 255
    alpha = np.zeros((4, 6), bool)
    alpha[:, :2] = True
    same = fit_patch(pixels, alpha, 0, 0, 0, 6, 4, flip=False)
    assert np.array_equal(same.pixels, pixels) and np.array_equal(same.shape, alpha)
    flipped = fit_patch(pixels, alpha, 0, 0, 0, 12, 8, flip=True)
    assert flipped.pixels.shape == (8, 12, 3)
    assert flipped.shape[:, -3:].all() and not flipped.shape[:, :8].any()
    assert (flipped.pixels[:, -5:] == 255).all() and (flipped.pixels[:, :5] == 0).all()


def test_feathering_ramps_from_the_outline_inwards() -> None:
    shape = np.ones((9, 9), bool)
    weights = feather_weights(shape, 2.0)
    assert weights[0, 4] == pytest.approx(0.5) and weights[4, 4] == 1.0
    assert np.array_equal(feather_weights(shape, 0.0), np.ones((9, 9), np.float32))


def noise_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(60, 120, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def test_poisson_blending_changes_only_the_object_and_meets_the_image_at_its_outline() -> None:
    image = noise_image()
    before = image.copy()
    shape = np.zeros((12, 14), bool)
    shape[2:10, 1:13] = True
    pixels = np.random.default_rng(1).integers(0, 255, (12, 14, 3), dtype=np.uint8)
    assert poisson_clone(image, Patch(0, 20, 15, pixels, shape)) is None
    changed = (image != before).any(axis=2)
    inside = np.zeros_like(changed)
    inside[15:27, 20:34] = shape
    assert changed[inside].mean() > 0.9 and not (changed & ~inside).any()  # the outline too: the mask is grown


def test_poisson_keeps_the_objects_detail_and_takes_the_images_level() -> None:
    image = np.full((HEIGHT, WIDTH, 3), 80, np.uint8)
    pixels = np.full((16, 16, 3), 220, np.uint8)
    pixels[6:10, 6:10] = 250  # detail 30 levels above the rest of the object
    assert poisson_clone(image, Patch(0, 20, 10, pixels, np.ones((16, 16), bool))) is None
    outline = np.ones((16, 16), bool)
    outline[1:-1, 1:-1] = False
    region = image[10:26, 20:36].astype(int)
    # The object's own outline is the guidance across its edge, so it meets the image without a seam.
    assert np.abs(region[outline] - 80).max() <= 3
    assert region[6:10, 6:10].mean() - region[outline].mean() > 20


def test_poisson_falls_back_to_feather_near_the_border_and_says_why() -> None:
    image = noise_image()
    used, note = blend_into(image, solid(0, 0, 10, 8, 8), "poisson", 2.0)
    assert used == "feather" and "border" in (note or "")
    assert blend_into(noise_image(), solid(0, 20, 10, 8, 8), "poisson", 2.0) == ("poisson", None)


def test_hard_paste_copies_the_pixels_under_the_shape_only() -> None:
    image = noise_image()
    before = image.copy()
    shape = np.zeros((6, 6), bool)
    shape[1:5, 1:5] = True
    patch = Patch(0, 60, 44, np.full((6, 6, 3), 250, np.uint8), shape)  # clipped by the right and bottom edges
    assert blend_into(image, patch, "none", 2.0) == ("none", None)
    assert (image[45:48, 61:64] == 250).all()
    untouched = np.ones((HEIGHT, WIDTH), bool)
    untouched[45:48, 61:64] = False
    assert np.array_equal(image[untouched], before[untouched])
