"""The embedded surface-inspection sample, its renderer and the image + mask folder cards."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from fewgen.cards import assign_splits, load_card
from fewgen.dataset import Dataset
from fewgen.imageio import load_mask, load_rgb

REPOSITORY = Path(__file__).resolve().parent.parent
RENDERER = REPOSITORY / "datasets" / "make_surface_sample.py"
DEFECTS = ("scratch", "spot", "crack", "dent")


def renderer() -> ModuleType:
    # Loaded by path: datasets/ is no package (and the name would clash with Hugging Face's).
    spec = importlib.util.spec_from_file_location("make_surface_sample", RENDERER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("surface")
    counts = renderer().render_surface_sample(root, seed=0, size=64, good=6, per_defect=1)
    assert counts == {"good": 6, **dict.fromkeys(DEFECTS, 1)}
    return root


def read_with_card(card_name: str, root: Path, registry, seed: int = 0) -> Dataset:
    """What the engine does with a card: read with its format and options, then assign its splits."""
    card = load_card(card_name, registry)
    fmt = registry.dataset_format(card.format)
    result = fmt().read(root, fmt.Options.model_validate(card.options))
    assert not result.issues, result.issues
    assert card.splits
    return assign_splits(result.dataset, card.splits, seed)


def split_counts(dataset: Dataset) -> Counter:
    return Counter((s.label, s.split) for s in dataset)


def check_masks(dataset: Dataset) -> None:
    for sample in dataset:
        image = load_rgb(sample.image)
        assert image.shape == (sample.height, sample.width, 3)
        # Single-channel PNGs come back as RGB with three equal channels.
        assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
        if sample.label == "good":
            assert sample.mask is None
            continue
        assert sample.mask is not None, sample.id
        mask = load_mask(sample.mask)
        assert mask.shape == (sample.height, sample.width)
        assert set(np.unique(mask)) == {0, 255}, sample.id
        defect = mask > 0
        # The defect lies wholly inside the image: nothing on the border rows or columns.
        assert not (defect[0].any() or defect[-1].any() or defect[:, 0].any() or defect[:, -1].any()), sample.id


def test_tiny_sample_reads_through_its_card(tiny_sample: Path, registry) -> None:
    dataset = read_with_card("surface_sample", tiny_sample, registry)
    assert len(dataset) == 10
    # good 6 * 0.75 = 4.5, rounded to even: 4 train, 2 test; every defect in test.
    assert split_counts(dataset) == Counter(
        {("good", "train"): 4, ("good", "test"): 2, **{(label, "test"): 1 for label in DEFECTS}}
    )
    assert all(s.width == s.height == 64 for s in dataset)
    check_masks(dataset)


@pytest.mark.parametrize("label", DEFECTS)
def test_masks_cover_what_the_defect_changed(tiny_sample: Path, label: str) -> None:
    clean, defective, mask = renderer().render_pair(0, label, 0, 64)
    name = f"{label}_000.png"
    # The files are what render_pair gives.
    assert (np.asarray(Image.open(tiny_sample / "images" / label / name)) == defective).all()
    assert (np.asarray(Image.open(tiny_sample / "masks" / label / name)) == mask).all()
    change = np.abs(defective.astype(int) - clean.astype(int))
    inside = mask > 0
    # Outside the mask the defect changes nothing visibly; inside, most pixels change.
    assert change[~inside].max() <= 4, change[~inside].max()
    assert (change[inside] >= 2).mean() > 0.3
    assert change[inside].max() >= 8


def test_generic_card_reads_the_same_layout(tiny_sample: Path, registry) -> None:
    card = load_card("image_mask_folders", registry)
    assert card.root is None, "the generic card takes its root from the recipe"
    dataset = read_with_card("image_mask_folders", tiny_sample, registry)
    # good 6 * 0.8 = 4.8: 5 train, 1 test.
    assert split_counts(dataset) == Counter(
        {("good", "train"): 5, ("good", "test"): 1, **{(label, "test"): 1 for label in DEFECTS}}
    )
    check_masks(dataset)


def test_generic_card_takes_any_image_suffix_and_skips_a_defect_without_mask(tmp_path: Path, registry) -> None:
    grey = np.full((16, 16), 128, np.uint8)
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 255
    for relative, array in [
        ("images/good/a.jpg", grey),
        ("images/good/b.png", grey),
        ("images/crack/c.jpg", grey),
        ("masks/crack/c.png", mask),
        ("images/crack/d.jpg", grey),  # no mask: skipped and reported
    ]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(tmp_path / relative)
    card = load_card("image_mask_folders", registry)
    fmt = registry.dataset_format(card.format)
    result = fmt().read(tmp_path, fmt.Options.model_validate(card.options))
    assert sorted((s.id, s.label, s.mask is not None) for s in result.dataset) == [
        ("images/crack/c", "crack", True),
        ("images/good/a", "good", False),
        ("images/good/b", "good", False),
    ]
    assert [Path(issue.path).name for issue in result.issues] == ["d.jpg"]


def test_renderer_is_deterministic(tmp_path: Path) -> None:
    module = renderer()
    for out in ("a", "b"):
        module.render_surface_sample(tmp_path / out, seed=3, size=48, good=2, per_defect=1)
    first = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert first == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.png"))
    assert len(first) == 2 + 2 * len(DEFECTS)
    for relative in first:
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes(), relative


def test_shipped_sample_matches_its_card(registry) -> None:
    card = load_card("surface_sample", registry)
    assert card.path is not None and card.root is not None
    root = (card.path.parent / card.root).resolve()
    assert root == REPOSITORY / "datasets" / "surface_sample"
    dataset = read_with_card("surface_sample", root, registry)
    assert split_counts(dataset) == Counter(
        {("good", "train"): 60, ("good", "test"): 20, **{(label, "test"): 10 for label in DEFECTS}}
    )
    assert all(s.width == s.height == 128 for s in dataset)
    assert all((s.mask is None) == (s.label == "good") for s in dataset)
    assert sum(p.stat().st_size for p in root.rglob("*")) < 1_500_000
