"""N-way K-shot episodes: class and shot counts, labels, rotated classes, loading images."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

import numpy as np
import pytest
import torch
from fewgen_maml.episodes import EpisodeSampler, load_class_images
from PIL import Image

CLASSES = 7
PER_CLASS = 6


def identifiable_images() -> dict[Hashable, torch.Tensor]:
    """uint8 images whose pixel (0, 0) is the class and (0, 1) the image number; the rest is random."""
    generator = torch.Generator().manual_seed(0)
    images = {}
    for c in range(CLASSES):
        block = torch.randint(0, 256, (PER_CLASS, 1, 5, 5), generator=generator, dtype=torch.uint8)
        block[:, 0, 0, 0] = c
        block[:, 0, 0, 1] = torch.arange(PER_CLASS, dtype=torch.uint8)
        images[f"class{c}"] = block
    return images


def identify(image: torch.Tensor) -> tuple[int, int]:
    values = (image[0] * 255).round().long()
    return int(values[0, 0]), int(values[0, 1])


def test_episodes_have_n_classes_k_shots_and_q_queries() -> None:
    ways, shots, queries, tasks = 4, 2, 3, 5
    sampler = EpisodeSampler(identifiable_images(), ways=ways, shots=shots, queries=queries)
    batch = sampler.sample(tasks, torch.Generator().manual_seed(0))
    assert batch.support_x.shape == (tasks, ways * shots, 1, 5, 5)
    assert batch.query_x.shape == (tasks, ways * queries, 1, 5, 5)
    assert batch.support_y.shape == (tasks, ways * shots) and batch.support_y.dtype == torch.long
    assert batch.support_x.dtype == torch.float32 and batch.support_x.min() >= 0 and batch.support_x.max() <= 1
    for t in range(tasks):
        assert sorted(batch.support_y[t].tolist()) == sorted(list(range(ways)) * shots)
        assert sorted(batch.query_y[t].tolist()) == sorted(list(range(ways)) * queries)
        class_of_label = {}
        seen = set()
        images = torch.cat([batch.support_x[t], batch.query_x[t]])
        labels = torch.cat([batch.support_y[t], batch.query_y[t]])
        for x, y in zip(images, labels, strict=True):
            image_class, number = identify(x)
            assert class_of_label.setdefault(int(y), image_class) == image_class  # one class per label
            assert (image_class, number) not in seen  # support and query images all differ
            seen.add((image_class, number))
        assert len(set(class_of_label.values())) == ways  # N distinct classes


def test_sample_with_classes_names_each_labels_class_and_draws_as_sample() -> None:
    images = identifiable_images()
    sampler = EpisodeSampler(images, ways=3, shots=2, queries=1)
    batch, classes = sampler.sample_with_classes(4, torch.Generator().manual_seed(5))
    assert classes.shape == (4, 3)
    for t in range(4):
        for x, y in zip(batch.support_x[t], classes[t].gather(0, batch.support_y[t]), strict=True):
            assert identify(x)[0] == int(y)  # class index i is "class{i}": the global label of the image
    same = sampler.sample(4, torch.Generator().manual_seed(5))
    assert torch.equal(same.support_x, batch.support_x) and torch.equal(same.query_y, batch.query_y)


def test_labels_are_shuffled_between_episodes() -> None:
    sampler = EpisodeSampler(identifiable_images(), ways=3, shots=1, queries=1)
    batch = sampler.sample(20, torch.Generator().manual_seed(0))
    first_class_per_episode = {identify(batch.support_x[t, 0])[0] for t in range(20)}
    assert len(first_class_per_episode) > 1


def test_same_seed_same_episodes_whatever_the_mapping_order() -> None:
    images = identifiable_images()
    reversed_images = dict(reversed(list(images.items())))
    a = EpisodeSampler(images, 3, 1, 2).sample(4, torch.Generator().manual_seed(3))
    b = EpisodeSampler(reversed_images, 3, 1, 2).sample(4, torch.Generator().manual_seed(3))
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)


def twin(generator: torch.Generator) -> torch.Generator:
    copy = torch.Generator()
    copy.set_state(generator.get_state())
    return copy


def test_rotated_classes_are_classes_of_their_own() -> None:
    images = identifiable_images()
    sampler = EpisodeSampler(images, ways=5, shots=2, queries=1, rotate_classes=True)
    assert sampler.classes == 4 * CLASSES
    generator = torch.Generator().manual_seed(4)
    classes = sampler.sample_classes(30, twin(generator))  # the classes sample() is about to draw
    batch = sampler.sample(30, generator)
    turns_seen = set()
    for t in range(30):
        for j in range(5):
            key, turns = sampler.class_of(int(classes[t, j]))
            turns_seen.add(turns)
            originals = images[key].float() / 255
            for x in batch.support_x[t][batch.support_y[t] == j]:
                unrotated = torch.rot90(x, -turns, dims=(-2, -1))
                assert any(torch.equal(unrotated, original) for original in originals)
    assert turns_seen == {0, 1, 2, 3}


@pytest.mark.parametrize("rotate", [False, True])
def test_random_images_are_labelled_by_their_class_and_turn(rotate: bool) -> None:
    sampler = EpisodeSampler(identifiable_images(), ways=3, shots=1, queries=1, rotate_classes=rotate)
    images, labels = sampler.sample_images(400, torch.Generator().manual_seed(0))
    assert images.shape == (400, 1, 5, 5) and images.dtype == torch.float32 and labels.shape == (400,)
    assert int(labels.min()) >= 0 and int(labels.max()) < sampler.classes
    for image, label in zip(images, labels, strict=True):
        key, turns = sampler.class_of(int(label))
        number = identify(torch.rot90(image, -turns, dims=(-2, -1)))  # undo the turn, read the marks
        assert f"class{number[0]}" == key and 0 <= number[1] < PER_CLASS
    assert len(set(labels.tolist())) == sampler.classes  # 400 draws reach every (rotated) class
    again, same = sampler.sample_images(400, torch.Generator().manual_seed(0))
    assert torch.equal(again, images) and torch.equal(same, labels)


def test_float_images_are_kept_as_they_are() -> None:
    images = {c: torch.full((3, 1, 2, 2), float(c)) for c in range(3)}
    batch = EpisodeSampler(images, ways=3, shots=1, queries=2).sample(2, torch.Generator().manual_seed(0))
    assert set(batch.support_x.unique().tolist()) == {0.0, 1.0, 2.0}


def test_bad_datasets_are_refused() -> None:
    images = identifiable_images()
    with pytest.raises(ValueError, match="fewer than"):
        EpisodeSampler(images, ways=2, shots=4, queries=3)
    with pytest.raises(ValueError, match="8-way"):
        EpisodeSampler(images, ways=8, shots=1, queries=1)
    with pytest.raises(ValueError, match="square"):
        EpisodeSampler({0: torch.zeros(2, 1, 3, 4), 1: torch.zeros(2, 1, 3, 4)}, 2, 1, 1, rotate_classes=True)
    with pytest.raises(ValueError, match="one shape"):
        EpisodeSampler({0: torch.zeros(2, 1, 3, 3), 1: torch.zeros(2, 1, 4, 4)}, 2, 1, 1)


def write_character(path: Path, stroke_rows: slice) -> None:
    """A white 20x20 image with black strokes, as Omniglot characters are drawn."""
    array = np.full((20, 20), 255, dtype=np.uint8)
    array[stroke_rows, 5:15] = 0
    Image.fromarray(array).save(path)


def test_load_class_images_resizes_inverts_and_reports_bad_files(tmp_path: Path) -> None:
    write_character(tmp_path / "a1.png", slice(0, 10))
    write_character(tmp_path / "a2.png", slice(10, 20))
    write_character(tmp_path / "b1.png", slice(5, 15))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    items = [("b", tmp_path / "b1.png"), ("a", tmp_path / "a2.png"), ("a", tmp_path / "a1.png")]
    problems: list[tuple[Path, str]] = []
    images = load_class_images(
        [*items, ("b", tmp_path / "broken.png")],
        size=(8, 8),
        invert=True,
        on_error=lambda path, reason: problems.append((path, reason)),
    )
    assert [path.name for path, _ in problems] == ["broken.png"]
    assert images["a"].shape == (2, 1, 8, 8) and images["b"].shape == (1, 1, 8, 8)
    assert images["a"].dtype == torch.uint8
    # Inverted: the strokes are bright, the background dark; a1 (strokes on top) comes first, by path.
    top, bottom = images["a"][0, 0, :3, 3:5].float().mean(), images["a"][0, 0, -3:, 3:5].float().mean()
    assert top > 200 and bottom < 50
    plain = load_class_images(items, size=(8, 8))
    assert torch.equal(plain["a"], 255 - images["a"])
    with pytest.raises(ValueError, match=r"broken\.png"):
        load_class_images([("b", tmp_path / "broken.png")])


def test_load_class_images_in_colour(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((10, 12, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    images = load_class_images([("x", tmp_path / "x.png")], size=(6, 4), channels=3)
    assert images["x"].shape == (1, 3, 4, 6)
