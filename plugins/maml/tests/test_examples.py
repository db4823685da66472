"""Few-shot examples from a fewgen dataset: whole images, box crops, mask crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fewgen_maml.examples import dataset_examples, load_examples, matching, split_classes, square_region

from fewgen.dataset import Box, Dataset, Sample
from fewgen.imageio import save_image


def test_square_region_is_centred_square_and_inside_the_image() -> None:
    assert square_region(40, 40, 60, 50, 100, 100, margin=0.0) == (40, 35, 60, 55)
    assert square_region(40, 40, 60, 50, 100, 100, margin=0.5) == (30, 25, 70, 65)
    # At the border the square moves inside rather than being cut.
    assert square_region(0, 0, 10, 10, 100, 100, margin=0.5) == (0, 0, 20, 20)
    assert square_region(95, 90, 100, 100, 100, 100, margin=0.0) == (90, 90, 100, 100)
    # Wider than the image: clipped.
    left, top, right, bottom = square_region(0, 0, 100, 20, 100, 60, margin=0.2)
    assert (left, right) == (0, 100) and 0 <= top < bottom <= 60


def make_dataset(folder: Path) -> Dataset:
    """Two images: one with two boxes (a bright and a dark square), one with a mask."""
    image = np.full((40, 60, 3), 128, np.uint8)
    image[5:15, 5:15] = 255
    image[20:30, 40:50] = 0
    first = save_image(image, folder / "a.png")
    mask = np.zeros((40, 60), np.uint8)
    mask[10:20, 30:34] = 255
    second = save_image(image, folder / "b.png")
    mask_path = save_image(mask, folder / "b_mask.png")
    samples = [
        Sample("a", first, 60, 40, boxes=(Box(0, 5, 5, 15, 15), Box(1, 40, 20, 50, 30)), label="scratch"),
        Sample("b", second, 60, 40, split="test", mask=mask_path, label="dent"),
        Sample("c", second, 60, 40, split="test"),  # unlabelled, no mask
    ]
    return Dataset(samples, ["bright", "dark"], "tiny")


def test_each_source_gives_its_examples_and_classes(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    images = dataset_examples(dataset, "images")
    assert [(e.sample_id, e.class_name, e.region) for e in images] == [
        ("a", "scratch", None),
        ("b", "dent", None),
        ("c", None, None),
    ]
    boxes = dataset_examples(dataset, "boxes", margin=0.0)
    assert [(e.sample_id, e.class_name, e.box_index, e.region) for e in boxes] == [
        ("a", "bright", 0, (5, 5, 15, 15)),
        ("a", "dark", 1, (40, 20, 50, 30)),
    ]
    masks = dataset_examples(dataset, "masks", margin=0.0)
    assert [(e.sample_id, e.class_name, e.region) for e in masks] == [("b", "dent", (27, 10, 37, 20))]
    pixels, kept = load_examples(boxes, size=8)
    assert kept == [0, 1] and pixels.shape == (2, 1, 8, 8)
    assert pixels[0].float().mean() > 250 and pixels[1].float().mean() < 5  # the crops hold the squares


def test_a_corrupt_image_costs_its_examples_only(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    (tmp_path / "a.png").write_bytes(b"not a png")
    skipped = []
    examples = dataset_examples(dataset, "images")
    pixels, kept = load_examples(examples, 8, on_error=lambda path, reason: skipped.append(path.name))
    assert kept == [1, 2] and pixels.shape[0] == 2 and skipped == ["a.png"]
    with pytest.raises(ValueError, match="cannot decode image"):
        load_examples(examples, 8)


def test_patterns_pick_novel_classes_and_the_rest_are_base(tmp_path: Path) -> None:
    assert matching(["dent/1", "dent/2", "crack/1"], ["dent/*"]) == ["dent/1", "dent/2"]
    dataset = make_dataset(tmp_path)
    split = split_classes(dataset, "boxes", ["dark"], ["*"], size=8, channels=1)
    assert split.novel == ["dark"] and split.base == ["bright"]
    assert set(split.images_of(["bright", "dark"])) == {"bright", "dark"}
    with pytest.raises(ValueError, match="match none of the 2 classes"):
        split_classes(dataset, "boxes", ["person"], ["*"], size=8, channels=1)
