"""Perlin noise: range, zeros on the lattice, per-axis resolution, determinism."""

from __future__ import annotations

import math

import pytest
import torch
from fewgen_draem.perlin import perlin_noise, random_resolutions


def noise(resolutions: list[tuple[int, int]], size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    return perlin_noise(torch.tensor(resolutions), size, torch.Generator().manual_seed(seed))


def sign_changes(maps: torch.Tensor, dim: int) -> float:
    """Mean number of sign changes along one axis (rows: dim=-2, columns: dim=-1)."""
    signs = maps > 0
    changes = signs.narrow(dim, 1, signs.shape[dim] - 1) != signs.narrow(dim, 0, signs.shape[dim] - 1)
    return changes.float().sum(dim).mean().item()


def test_values_lie_in_minus_one_to_one_and_centre_on_zero() -> None:
    maps = noise([(r, c) for r in (1, 2, 4, 8, 16, 32) for c in (1, 4, 32)] * 4, (64, 64))
    assert maps.shape == (72, 64, 64)
    assert maps.abs().max() <= 1.0
    assert abs(maps.mean().item()) < 0.05
    assert 0.15 < maps.std().item() < 0.5


@pytest.mark.parametrize(("size", "resolution", "cell"), [((64, 64), (4, 8), (16, 8)), ((50, 37), (3, 5), (17, 8))])
def test_noise_is_zero_on_every_lattice_node(
    size: tuple[int, int], resolution: tuple[int, int], cell: tuple[int, int]
) -> None:
    # A size the resolution does not divide is the crop of the next multiple: cells of ceil(size / resolution).
    (single,) = noise([resolution], size)
    assert single.shape == size
    nodes = single[:: cell[0], :: cell[1]]
    assert torch.count_nonzero(nodes) == 0
    assert torch.count_nonzero(single) > 0.9 * single.numel() - nodes.numel()


def test_each_axis_has_its_own_resolution() -> None:
    wide_blobs, tall_blobs = noise([(1, 16)] * 8, (64, 64)), noise([(16, 1)] * 8, (64, 64))
    # 16 cells across the columns: many sign changes along each row, few down each column.
    assert sign_changes(wide_blobs, dim=-1) > 4 * sign_changes(wide_blobs, dim=-2) + 1
    assert sign_changes(tall_blobs, dim=-2) > 4 * sign_changes(tall_blobs, dim=-1) + 1


def test_maps_in_one_batch_keep_their_own_resolution() -> None:
    mixed = noise([(1, 1), (32, 32)], (64, 64))
    alone = noise([(32, 32)], (64, 64))
    assert sign_changes(mixed[1:], -1) == pytest.approx(sign_changes(alone, -1), rel=0.3)
    assert sign_changes(mixed[:1], -1) < sign_changes(mixed[1:], -1) / 4


def test_same_generator_seed_same_noise() -> None:
    assert torch.equal(noise([(2, 4), (8, 1)], (40, 24), seed=3), noise([(2, 4), (8, 1)], (40, 24), seed=3))
    assert not torch.equal(noise([(2, 4)], (40, 24), seed=3), noise([(2, 4)], (40, 24), seed=4))


def test_random_resolutions_are_powers_of_two_drawn_per_axis() -> None:
    resolutions = random_resolutions(500, torch.Generator().manual_seed(0))
    assert resolutions.shape == (500, 2)
    assert set(resolutions.flatten().tolist()) == {1, 2, 4, 8, 16, 32}
    assert (resolutions[:, 0] != resolutions[:, 1]).float().mean() > 0.7


def test_resolution_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        noise([(0, 2)], (8, 8))


def reference_noise(resolutions: list[tuple[int, int]], size: tuple[int, int], seed: int) -> torch.Tensor:
    """Perlin's formula pixel by pixel in float64: the four corner gradients, gathered, dotted with the offsets, faded.

    The gradients are drawn as perlin_noise draws them: one angle per lattice node, uniform on the circle.
    """
    height, width = size
    count = len(resolutions)
    node_rows = max(rows for rows, _ in resolutions) + 1
    node_cols = max(cols for _, cols in resolutions) + 1
    angles = 2 * math.pi * torch.rand(count, node_rows, node_cols, generator=torch.Generator().manual_seed(seed))
    angles = angles.double()

    def smooth(t: torch.Tensor) -> torch.Tensor:
        return 6 * t**5 - 15 * t**4 + 10 * t**3

    maps = torch.empty(count, height, width, dtype=torch.float64)
    for index, (rows, cols) in enumerate(resolutions):
        cell_height, cell_width = -(-height // rows), -(-width // cols)  # whole cells, cropped
        y = torch.arange(height, dtype=torch.float64)[:, None] / cell_height
        x = torch.arange(width, dtype=torch.float64)[None, :] / cell_width
        row, col = y.floor().long(), x.floor().long()
        fy, fx = y - row, x - col
        total = torch.zeros(height, width, dtype=torch.float64)
        for dr in (0, 1):
            for dc in (0, 1):
                angle = angles[index, row + dr, col + dc]
                dot = torch.sin(angle) * (fy - dr) + torch.cos(angle) * (fx - dc)
                weight = (smooth(fy) if dr else 1 - smooth(fy)) * (smooth(fx) if dc else 1 - smooth(fx))
                total += weight * dot
        maps[index] = math.sqrt(2) * total
    return maps


@pytest.mark.parametrize(
    ("size", "resolutions"),
    [
        ((64, 64), [(1, 1), (2, 32), (32, 2), (8, 8), (4, 16)]),
        ((50, 37), [(3, 5), (1, 32), (32, 1), (7, 2)]),  # resolutions that do not divide the size
        ((256, 256), [(32, 32), (1, 4), (16, 2)]),
    ],
)
def test_matrix_form_matches_the_corner_gather_formula(
    size: tuple[int, int], resolutions: list[tuple[int, int]]
) -> None:
    ours = noise(resolutions, size, seed=5)
    assert ours.dtype == torch.float32
    assert (ours.double() - reference_noise(resolutions, size, seed=5)).abs().max() < 1e-5
