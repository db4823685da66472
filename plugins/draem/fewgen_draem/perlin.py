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

The noise is computed as matrix products rather than by gathering the four corner
gradients of every pixel. With (g_r, g_c) the gradient at node (i, j), the value at pixel
(y, x) is

    sum over corners (dr, dc) in {0, 1}^2 of  w_dr(y) w_dc(x) [g_r(i, j) (fy - dr) + g_c(i, j) (fx - dc)],

where (i, j) = (cell row + dr, cell column + dc), (fy, fx) is the offset within the cell and
w_0 = 1 - fade(offset), w_1 = fade(offset) along each axis. Each term is a row factor times
a gradient component times a column factor, so

    noise = A @ G_r @ B^T + C @ G_c @ D^T

with sparse (pixels x nodes) interpolation matrices, two non-zeros per row:
A[y, i] = w_dr(y) (fy - dr), C[y, i] = w_dr(y) for i = cell row + dr; B[x, j] = w_dc(x),
D[x, j] = w_dc(x) (fx - dc) for j = cell column + dc. Per map that is a few small matrix
products instead of four (H, W, 2) gathers, and one batched product of (H, 2 nodes) by
(2 nodes, W) writes the whole map. On a lattice node the offset and the far weight are 0,
so A's row and D's row are exactly zero there and so is the noise.
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
    node_rows, node_cols = int(resolutions[:, 0].max()) + 1, int(resolutions[:, 1].max()) + 1
    angles = 2 * math.pi * torch.rand(count, node_rows, node_cols, generator=generator)
    # (row, column) gradient components; nodes beyond a map's own lattice are never weighted.
    row_gradients, col_gradients = torch.sin(angles).to(device), torch.cos(angles).to(device)

    # The sqrt(2) spreads the blend, bounded by sqrt(2)/2 for unit gradients, over [-1, 1] as
    # DRAEM's reference code does; folded into the small row matrices it costs nothing.
    row_offset, row_cell, row_blend = lattice_coordinates(resolutions[:, 0], height, device)
    offset_rows = interpolation_matrix(row_cell, row_blend, node_rows, row_offset, math.sqrt(2))  # A
    plain_rows = interpolation_matrix(row_cell, row_blend, node_rows, None, math.sqrt(2))  # C
    col_offset, col_cell, col_blend = lattice_coordinates(resolutions[:, 1], width, device)
    plain_cols = interpolation_matrix(col_cell, col_blend, node_cols)  # B
    offset_cols = interpolation_matrix(col_cell, col_blend, node_cols, col_offset)  # D
    # (A G_r | C G_c) @ (B | D)^T: both terms in one product with 2 * node_cols inner terms.
    left = torch.cat((offset_rows @ row_gradients, plain_rows @ col_gradients), dim=2)
    right = torch.cat((plain_cols, offset_cols), dim=2)
    return torch.bmm(left, right.transpose(1, 2))


def lattice_coordinates(
    resolution: torch.Tensor, length: int, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Offset within the cell, cell index and fade-blend of every pixel along one axis: (B, length) each.

    Whole cells: a length that is not a multiple of the resolution is the crop of the next multiple.
    """
    cell = (length + resolution - 1) // resolution
    position = torch.arange(length, device=device, dtype=torch.float32)[None, :] / cell.to(device)[:, None]
    index = position.floor()
    offset = position - index
    return offset, index.long(), fade(offset)


def interpolation_matrix(
    cell: torch.Tensor, blend: torch.Tensor, nodes: int, offset: torch.Tensor | None = None, scale: float = 1.0
) -> torch.Tensor:
    """(B, pixels, nodes) weights of the two nodes around each pixel along one axis.

    Node ``cell`` gets (1 - blend), node ``cell + 1`` gets blend; with ``offset`` they are
    multiplied by the pixel's signed distance to that node, offset and offset - 1.
    """
    near, far = scale * (1 - blend), scale * blend
    if offset is not None:
        near, far = near * offset, far * (offset - 1)
    matrix = torch.zeros(*cell.shape, nodes, device=cell.device, dtype=blend.dtype)
    # The two nodes differ, and cell + 1 <= resolution < nodes: every pixel's far node exists.
    matrix.scatter_(2, cell.unsqueeze(2), near.unsqueeze(2))
    return matrix.scatter_(2, (cell + 1).unsqueeze(2), far.unsqueeze(2))
