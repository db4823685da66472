"""Batched 2-D Perlin noise: the shapes of DRAEM's anomaly masks.

Gradient noise on a lattice (Perlin, "Improving noise", 2002): every lattice node gets a
random unit gradient, every pixel takes the dot products of the four surrounding
gradients with its offsets from those nodes, and blends them with the fade curve
6t^5 - 15t^4 + 10t^3. The result is 0 on every lattice node and smooth in between; the
lattice resolution sets the size of the blobs.

Every map in a batch has its own resolution (DRAEM draws it per axis), so the lattice is
indexed per sample instead of grouping the batch by resolution: one pass, no Python loop.
A resolution that does not divide the size gets the next larger whole cell: the map is
the top-left crop of the noise on the next multiple of the resolution.
"""

from __future__ import annotations

import math

import torch


def fade(t: torch.Tensor) -> torch.Tensor:
    """Perlin's quintic: 0 and 1 at the ends with zero first and second derivatives, so cells join smoothly."""
    return t * t * t * (t * (t * 6 - 15) + 10)


def random_resolutions(
    count: int, generator: torch.Generator, min_exponent: int = 0, max_exponent: int = 5
) -> torch.Tensor:
    """(count, 2) lattice resolutions (rows, columns), each 2**k with k uniform in [min_exponent, max_exponent]."""
    exponents = torch.randint(min_exponent, max_exponent + 1, (count, 2), generator=generator)
    return 2**exponents


def perlin_noise(
    resolutions: torch.Tensor, size: tuple[int, int], generator: torch.Generator, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(B, H, W) noise maps in [-1, 1]; map b has resolutions[b] = (rows, columns) lattice cells.

    ``generator`` is a CPU generator: the gradients are drawn on the CPU and moved to
    ``device``, so the same seed gives the same noise on any device.
    """
    height, width = size
    resolutions = torch.as_tensor(resolutions, dtype=torch.long).reshape(-1, 2)
    if (resolutions < 1).any():
        raise ValueError(f"lattice resolutions must be at least 1, got {resolutions.tolist()}")
    count = resolutions.shape[0]
    # Whole cells: a size that is not a multiple of the resolution is the crop of the next multiple.
    cell_rows = (height + resolutions[:, 0] - 1) // resolutions[:, 0]
    cell_cols = (width + resolutions[:, 1] - 1) // resolutions[:, 1]
    node_rows, node_cols = int(resolutions[:, 0].max()) + 1, int(resolutions[:, 1].max()) + 1
    angles = 2 * math.pi * torch.rand(count, node_rows, node_cols, generator=generator)
    gradients = torch.stack((torch.sin(angles), torch.cos(angles)), dim=-1).to(device)  # (row, column) components

    # Lattice coordinates of every pixel: integer cell index and offset within the cell.
    rows = torch.arange(height, device=device, dtype=torch.float32)[None, :] / cell_rows.to(device)[:, None]
    cols = torch.arange(width, device=device, dtype=torch.float32)[None, :] / cell_cols.to(device)[:, None]
    row_cell, col_cell = rows.floor().long(), cols.floor().long()
    row_offset, col_offset = (rows - row_cell)[:, :, None], (cols - col_cell)[:, None, :]
    batch = torch.arange(count, device=device)[:, None, None]

    def corner_dot(row_step: int, col_step: int) -> torch.Tensor:
        """Dot product of each pixel's offset from one corner of its cell with that corner's gradient."""
        gradient = gradients[batch, (row_cell + row_step)[:, :, None], (col_cell + col_step)[:, None, :]]
        return gradient[..., 0] * (row_offset - row_step) + gradient[..., 1] * (col_offset - col_step)

    row_blend, col_blend = fade(row_offset), fade(col_offset)
    top = torch.lerp(corner_dot(0, 0), corner_dot(0, 1), col_blend)
    bottom = torch.lerp(corner_dot(1, 0), corner_dot(1, 1), col_blend)
    # Unit gradients bound the blend by sqrt(2)/2; the factor spreads it over [-1, 1] as DRAEM's reference code does.
    return math.sqrt(2) * torch.lerp(top, bottom, row_blend)
