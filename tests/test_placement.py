"""Box placement: the size-by-position model, and new boxes that never touch existing ones or leave the image."""

from __future__ import annotations

import numpy as np
import pytest

from fewgen.dataset import Box, Sample
from fewgen.placement import BoxPlacement, intersects


def perspective_samples(count: int = 40, seed: int = 0) -> list[Sample]:
    """Pedestrians whose height is 0.5 x their bottom's y (in image heights) plus noise, in 200x100 images."""
    rng = np.random.default_rng(seed)
    samples = []
    for index in range(count):
        bottom = rng.uniform(0.5, 1.0) * 100
        height = (0.5 * bottom / 100 + rng.normal(0, 0.02)) * 100
        x1 = rng.uniform(0, 180)
        box = Box(0, x1, bottom - height, x1 + height * 0.4, bottom)
        samples.append(Sample(f"p{index}", None, 200, 100, boxes=(box, Box(1, 0, 0, 5, 5))))  # type: ignore[arg-type]
    return samples


def test_fit_learns_height_as_a_line_of_the_bottom() -> None:
    placement = BoxPlacement.fit(perspective_samples(), 0)
    assert placement.slope == pytest.approx(0.5, abs=0.06)
    assert placement.intercept == pytest.approx(0.0, abs=0.05)
    assert placement.spread == pytest.approx(0.02, abs=0.01)
    assert set(np.round(placement.aspects, 6)) == {0.4}
    assert len(placement.bottoms) == 40  # the class's boxes only


def test_sampled_boxes_follow_the_learned_perspective() -> None:
    placement = BoxPlacement.fit(perspective_samples(), 0)
    rng = np.random.default_rng(1)
    boxes = [placement.candidate(200, 100, rng) for _ in range(300)]
    bottoms = np.array([b.y2 for b in boxes]) / 100
    heights = np.array([b.height for b in boxes]) / 100
    assert np.corrcoef(bottoms, heights)[0, 1] > 0.8
    assert bottoms.min() > 0.4  # feet where real feet are: never high up in the image
    assert all(b.cls == 0 for b in boxes)


@pytest.mark.parametrize("seed", range(40))
def test_placed_boxes_never_intersect_existing_ones_or_each_other(seed: int) -> None:
    rng = np.random.default_rng(seed)
    placement = BoxPlacement.fit(perspective_samples(seed=seed), 0)
    existing = []
    for _ in range(int(rng.integers(0, 8))):
        x, y = rng.uniform(0, 180), rng.uniform(0, 80)
        existing.append(Box(int(rng.integers(2)), x, y, x + rng.uniform(2, 40), y + rng.uniform(2, 40)))
    placed = placement.place(200, 100, existing, count=5, rng=rng, min_height=5)
    assert placed, "a 200x100 image with a few boxes has room for one more"
    for index, box in enumerate(placed):
        assert 0 <= box.x1 < box.x2 <= 200 and 0 <= box.y1 < box.y2 <= 100
        assert box.height >= 5
        assert not any(intersects(box, other) for other in existing)
        assert not any(intersects(box, other) for other in placed[index + 1 :])


def test_a_full_image_gets_no_box() -> None:
    placement = BoxPlacement.fit(perspective_samples(), 0)
    assert placement.place(200, 100, [Box(1, 0, 0, 200, 100)], 3, np.random.default_rng(0)) == []


def test_intersection_counts_any_shared_area_but_not_touching_edges() -> None:
    a = Box(0, 0, 0, 10, 10)
    assert intersects(a, Box(0, 9.9, 9.9, 20, 20))
    assert intersects(a, Box(0, 2, 2, 3, 3))  # inside
    assert not intersects(a, Box(0, 10, 0, 20, 10))  # shares an edge only
    assert not intersects(a, Box(0, 0, 11, 10, 20))


def test_few_boxes_give_a_flat_model_and_none_is_an_error() -> None:
    one = BoxPlacement.fit(perspective_samples(count=1), 0)
    assert (one.slope, one.spread) == (0.0, 0.0)
    with pytest.raises(ValueError, match="no boxes of class 3"):
        BoxPlacement.fit(perspective_samples(), 3)
