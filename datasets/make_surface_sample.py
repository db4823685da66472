#!/usr/bin/env python3
"""Render ``datasets/surface_sample``: ground-steel surface patches, defect-free or with one defect and its mask.

Only numpy and Pillow are used and every random choice comes from a generator seeded with
(seed, label, index), so running the script again writes the same files, and a smaller
sample (fewer images, smaller size) is a quick way to get anomaly-detection data in tests.

Every image shows the same product: a ground steel plate under the same light, with a fine
grain running nearly horizontally, coarser grinding streaks, faint chatter marks across
the grain, low-frequency shading, a few harmless pits and sensor noise. Brightness, grain
strength and shading vary from patch to patch by more than a defect changes the mean, so
a defect cannot be found from mean brightness.

Defects, one per image, each with a mask of the pixels it covers:

- ``scratch``: a thin, smoothly curved line, darker or brighter, that wipes out the grain;
- ``spot``: an irregular stain with a soft edge, darker or brighter, sometimes ringed;
- ``crack``: a dark jagged line with one to three thinner branches;
- ``dent``: a shallow depression lit from the top left, with a raised rim.

One defect in five of each type (indices 4, 9, ...) is faint; the rest are clearly visible.

    python datasets/make_surface_sample.py               # rewrites datasets/surface_sample/
    python datasets/make_surface_sample.py --out /tmp/x  # somewhere else

From Python (a test, say), load this file with importlib and call
``render_surface_sample(out_dir, seed=0, size=64, good=6, per_defect=1)``; ``render_pair``
gives a defect image together with the same patch without its defect, to check masks against.
"""

from __future__ import annotations

import argparse
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 128
SEED = 0
GOOD = 80  # the card splits these 75/25: 60 train, 20 test
PER_DEFECT = 10
DEFECTS = ("scratch", "spot", "crack", "dent")
# A pixel belongs to the mask when the defect's weight there is at least this: its coverage of
# the pixel for lines and stains, 1 on a dent and its rim. Left out, the last fringe changes a
# pixel by a few grey levels at most, about as much as the sensor noise.
MASK_THRESHOLD = 0.05
# Every patch is lit from the same side (image angle, radians; y points down).
LIGHT_ANGLE = math.radians(-135.0)
PLACE_TRIES = 50

Array = np.ndarray


# ---------------------------------------------------------------- building blocks


def frequency_grid(n: int) -> tuple[Array, Array]:
    """Spatial frequencies in cycles per pixel, (fy column, fx row)."""
    f = np.fft.fftfreq(n)
    return f[:, None], f[None, :]


def filtered_noise(rng: np.random.Generator, n: int, along: float, across: float, angle: float) -> Array:
    """Periodic Gaussian noise with correlation lengths ``along`` and ``across`` direction ``angle``; unit std."""
    fy, fx = frequency_grid(n)
    c, s = math.cos(angle), math.sin(angle)
    u = fx * c + fy * s
    v = -fx * s + fy * c
    gain = np.exp(-2.0 * math.pi**2 * ((u * along) ** 2 + (v * across) ** 2))
    gain[0, 0] = 0.0  # zero mean: the level of a patch is set by its base brightness alone
    field = np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * gain).real
    return field / (field.std() + 1e-12)


def smooth(image: Array, sigma: float) -> Array:
    """Periodic Gaussian blur (the texture is periodic, so wrapping is harmless)."""
    fy, fx = frequency_grid(image.shape[0])
    gain = np.exp(-2.0 * math.pi**2 * sigma**2 * (fx**2 + fy**2))
    return np.fft.ifft2(np.fft.fft2(image) * gain).real


def smoothstep(edge0: float, edge1: float, x: Array) -> Array:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def pixel_grid(n: int) -> tuple[Array, Array]:
    """Pixel-centre coordinates (y, x)."""
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    return y, x


def polyline_coverage(points: Array, half_widths: Array, n: int) -> Array:
    """How much of each pixel a polyline of varying half-width covers (0..1, anti-aliased by distance).

    ``points`` is (k, 2) as (x, y); ``half_widths`` has one value per point and is interpolated
    along each segment.
    """
    y, x = pixel_grid(n)
    coverage = np.zeros((n, n))
    reach = float(half_widths.max()) + 1.0
    for (ax, ay), (bx, by), wa, wb in zip(points[:-1], points[1:], half_widths[:-1], half_widths[1:], strict=True):
        x0, x1 = max(int(min(ax, bx) - reach), 0), min(int(max(ax, bx) + reach) + 2, n)
        y0, y1 = max(int(min(ay, by) - reach), 0), min(int(max(ay, by) + reach) + 2, n)
        if x0 >= x1 or y0 >= y1:
            continue
        px, py = x[y0:y1, x0:x1], y[y0:y1, x0:x1]
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0.0, 1.0) if length2 > 0 else np.zeros_like(px)
        distance = np.hypot(px - (ax + t * dx), py - (ay + t * dy))
        width = wa + t * (wb - wa)
        covered = np.clip(width - distance + 0.5, 0.0, 1.0)
        np.maximum(coverage[y0:y1, x0:x1], covered, out=coverage[y0:y1, x0:x1])
    return coverage


def bilinear(image: Array, y: Array, x: Array) -> Array:
    """``image`` sampled at fractional (y, x), wrapping at the borders like the texture."""
    n = image.shape[0]
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    fy, fx = y - y0, x - x0
    y0, x0 = y0 % n, x0 % n
    y1, x1 = (y0 + 1) % n, (x0 + 1) % n
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def place(rng: np.random.Generator, shape_points: Array, reach: float, n: int) -> Array:
    """Shift (x, y) points, drawn around the origin, to a random spot where they and ``reach`` fit inside."""
    low = shape_points.min(axis=0) - reach - 1.0
    high = shape_points.max(axis=0) + reach + 1.0
    room_low = -low
    room_high = n - 1 - high
    offset = np.array([rng.uniform(a, b) if b > a else (a + b) / 2 for a, b in zip(room_low, room_high, strict=True)])
    return shape_points + offset


# ---------------------------------------------------------------- the product


def render_surface(rng: np.random.Generator, n: int) -> Array:
    """A defect-free patch of ground steel, float grey levels before sensor noise."""
    scale = n / SIZE
    y, x = pixel_grid(n)
    grain_angle = math.radians(rng.normal(0.0, 2.5))
    base = rng.uniform(112.0, 146.0)
    fine = filtered_noise(rng, n, along=rng.uniform(14, 22) * scale, across=0.55 * scale, angle=grain_angle)
    streaks = filtered_noise(rng, n, along=rng.uniform(40, 70) * scale, across=1.8 * scale, angle=grain_angle)
    surface = base + rng.uniform(5.5, 8.5) * fine + rng.uniform(2.5, 4.5) * streaks
    # Chatter marks: faint bands across the grain with a slightly wandering pitch.
    pitch = rng.uniform(9.0, 14.0) * scale
    along = x * math.cos(grain_angle) + y * math.sin(grain_angle)
    wobble = 1.5 * scale * filtered_noise(rng, n, along=30 * scale, across=30 * scale, angle=0.0)
    surface += rng.uniform(0.6, 1.6) * np.sin(2 * math.pi * (along + wobble) / pitch + rng.uniform(0, 2 * math.pi))
    # Low-frequency shading: uneven lighting and gentle waviness of the plate.
    surface += rng.uniform(3.0, 7.0) * filtered_noise(rng, n, along=35 * scale, across=35 * scale, angle=0.0)
    tilt = rng.uniform(0, 2 * math.pi)
    surface += rng.uniform(0.0, 10.0) * ((x - n / 2) * math.cos(tilt) + (y - n / 2) * math.sin(tilt)) / n
    radius2 = ((x - n / 2) ** 2 + (y - n / 2) ** 2) / (n / 2) ** 2
    surface *= 1.0 - rng.uniform(0.0, 0.06) * radius2
    # Harmless pits: tiny, faint and part of every patch, so not every dark dot is a defect.
    for _ in range(int(rng.integers(0, 7))):
        cx, cy = rng.uniform(0, n, size=2)
        r = rng.uniform(0.5, 1.1) * max(scale, 0.6)
        surface -= rng.uniform(4.0, 9.0) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    return surface


def sensor_noise(rng: np.random.Generator, n: int) -> Array:
    return rng.normal(0.0, rng.uniform(1.2, 2.2), (n, n))


def finish(surface: Array, noise: Array) -> Array:
    """Sensor noise and quantisation to 8 bits."""
    return np.clip(np.rint(surface + noise), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- defects


def strength(rng: np.random.Generator, faint: bool, clear: tuple[float, float], low: tuple[float, float]) -> float:
    return rng.uniform(*(low if faint else clear))


def add_scratch(surface: Array, rng: np.random.Generator, faint: bool) -> Array:
    n = surface.shape[0]
    scale = n / SIZE
    length = rng.uniform(28.0, 85.0) * scale
    angle = rng.uniform(0, math.pi)
    bend = rng.uniform(-0.35, 0.35) * length
    t = np.linspace(0.0, 1.0, 48)
    # A quadratic Bezier from -L/2 to +L/2 bowed sideways by ``bend``.
    start, end = np.array([-length / 2, 0.0]), np.array([length / 2, 0.0])
    control = np.array([0.0, bend])
    curve = ((1 - t) ** 2)[:, None] * start + (2 * (1 - t) * t)[:, None] * control + (t**2)[:, None] * end
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    curve = curve @ rotation.T
    half = rng.uniform(0.75, 1.5) * max(scale, 0.75)
    half_widths = half * np.clip(np.sin(math.pi * t) ** 0.35, 0.55, 1.0)
    points = place(rng, curve, half, n)
    cover = polyline_coverage(points, half_widths, n)
    sign = -1.0 if rng.random() < 0.6 else 1.0
    contrast = sign * strength(rng, faint, (22.0, 48.0), (9.0, 14.0))
    # Deeper in places, shallower in others.
    along = 1.0 + 0.25 * filtered_noise(rng, n, along=10 * scale, across=10 * scale, angle=0.0)
    # The scratch floor is smooth: it replaces the grain with the local mean, then shifts it.
    floor = smooth(surface, 2.0 * scale) + contrast * along
    surface += cover * (floor - surface)
    return cover


def irregular_radius(rng: np.random.Generator, phi: Array, wobble: float) -> Array:
    radius = np.ones_like(phi)
    for k in range(2, 6):
        radius += wobble / k * rng.normal() * np.cos(k * phi + rng.uniform(0, 2 * math.pi))
    return np.clip(radius, 0.55, 1.6)


def add_spot(surface: Array, rng: np.random.Generator, faint: bool) -> Array:
    n = surface.shape[0]
    scale = n / SIZE
    y, x = pixel_grid(n)
    r = rng.uniform(4.0, 13.0) * scale
    stretch = rng.uniform(1.0, 1.7)
    tilt = rng.uniform(0, math.pi)
    reach = r * stretch * 2.3 + 2.0
    cx, cy = place(rng, np.zeros((1, 2)), reach, n)[0]
    u = ((x - cx) * math.cos(tilt) + (y - cy) * math.sin(tilt)) / stretch
    v = -(x - cx) * math.sin(tilt) + (y - cy) * math.cos(tilt)
    rho = np.hypot(u, v) / (r * irregular_radius(rng, np.arctan2(v, u), 0.35))
    softness = rng.uniform(0.08, 0.4)
    weight = 1.0 - smoothstep(1.0 - softness, 1.0 + softness, rho)
    sign = -1.0 if rng.random() < 0.7 else 1.0
    contrast = sign * strength(rng, faint, (16.0, 42.0), (6.0, 9.0))
    mottle = 1.0 + 0.25 * filtered_noise(rng, n, along=3 * max(scale, 0.5), across=3 * max(scale, 0.5), angle=0.0)
    shade = contrast * mottle
    if rng.random() < 0.35:  # a drying ring: darker (or brighter) at the edge
        shade = shade + 0.6 * contrast * np.exp(-(((rho - 0.9) / 0.12) ** 2))
    # The stain dulls the grain a little as well as shifting the level.
    dull = rng.uniform(0.2, 0.6)
    mean = smooth(surface, 3.0 * scale)
    surface += weight * (dull * (mean - surface) + shade)
    return weight


def jagged_path(rng: np.random.Generator, length: float, step: float, heading: float, wander: float) -> Array:
    """A random walk that keeps returning to ``heading``: the path of a crack, (k, 2) as (x, y)."""
    points = [np.zeros(2)]
    direction = heading
    for _ in range(max(int(length / step), 2)):
        direction += rng.normal(0.0, wander) + 0.35 * (heading - direction)
        points.append(points[-1] + step * rng.uniform(0.7, 1.3) * np.array([math.cos(direction), math.sin(direction)]))
    return np.array(points)


def add_crack(surface: Array, rng: np.random.Generator, faint: bool) -> Array:
    n = surface.shape[0]
    scale = n / SIZE
    heading = rng.uniform(0, 2 * math.pi)
    main = jagged_path(rng, rng.uniform(30.0, 70.0) * scale, 2.2 * max(scale, 0.6), heading, 0.45)
    main -= main.mean(axis=0)
    half = rng.uniform(0.8, 1.4) * max(scale, 0.7)
    along = np.linspace(0.0, 1.0, len(main))
    # (points, half-width at each point): the main crack thins towards both ends, a branch from
    # where it leaves the main crack.
    paths = [(main, half * np.clip(np.sin(math.pi * along) ** 0.3, 0.5, 1.0))]
    for _ in range(int(rng.integers(1, 4))):
        at = main[int(rng.integers(1, len(main) - 1))]
        side = heading + rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.2)
        branch = at + jagged_path(rng, rng.uniform(8.0, 26.0) * scale, 1.8 * max(scale, 0.6), side, 0.5)
        paths.append((branch, half * rng.uniform(0.5, 0.8) * (1.0 - 0.55 * np.linspace(0.0, 1.0, len(branch)))))
    everything = np.concatenate([p for p, _ in paths])
    shift = place(rng, everything, half, n)[0] - everything[0]
    cover = np.zeros_like(surface)
    for path, half_widths in paths:
        np.maximum(cover, polyline_coverage(path + shift, half_widths, n), out=cover)
    depth = strength(rng, faint, (0.35, 0.7), (0.1, 0.16))
    # Dark in proportion to the surface brightness: a gap in shadow.
    surface -= depth * cover * surface
    return cover


def add_dent(surface: Array, rng: np.random.Generator, faint: bool) -> Array:
    n = surface.shape[0]
    scale = n / SIZE
    y, x = pixel_grid(n)
    r = rng.uniform(6.0, 15.0) * scale
    stretch = rng.uniform(1.0, 1.5)
    tilt = rng.uniform(0, math.pi)
    reach = r * stretch * 1.6 + 2.0
    cx, cy = place(rng, np.zeros((1, 2)), reach, n)[0]
    u = ((x - cx) * math.cos(tilt) + (y - cy) * math.sin(tilt)) / stretch
    v = -(x - cx) * math.sin(tilt) + (y - cy) * math.cos(tilt)
    rho = np.hypot(u, v) / (r * irregular_radius(rng, np.arctan2(v, u), 0.12))
    bowl = np.where(rho < 1.0, (1.0 - np.minimum(rho, 1.0) ** 2) ** 2, 0.0)
    rim_width = max(0.1, 1.2 / r)  # in units of the radius; at least about a pixel wide
    rim = np.exp(-(((rho - 1.0) / rim_width) ** 2))
    height = -bowl + rng.uniform(0.25, 0.5) * rim
    gy, gx = np.gradient(height)
    slope = (gx * math.cos(LIGHT_ANGLE) + gy * math.sin(LIGHT_ANGLE)) * r
    gain = strength(rng, faint, (9.0, 18.0), (3.0, 4.5))
    # The grain seen through the dent is pulled towards its centre, then lit.
    bend = 1.5 * r
    warped = bilinear(surface, y - bend * gy, x - bend * gx)
    inside = np.clip(bowl * 4.0, 0.0, 1.0)
    surface[...] = surface + inside * (warped - surface) + gain * slope - 0.2 * gain * bowl
    # The depression and its whole rim, out to where the rim's shading fades below a grey level.
    return (rho <= 1.0 + 2.5 * rim_width).astype(np.float64)


DEFECT_PAINTERS: dict[str, Callable[[Array, np.random.Generator, bool], Array]] = {
    "scratch": add_scratch,
    "spot": add_spot,
    "crack": add_crack,
    "dent": add_dent,
}


# ---------------------------------------------------------------- images and files


def render_pair(seed: int, label: str, index: int, size: int = SIZE) -> tuple[Array, Array, Array]:
    """The patch of a defect image without and with its defect (same sensor noise), and the mask.

    All three are HxW uint8; the mask is 0 or 255. The two images differ only where the defect
    was painted (and by rounding), which is how the masks can be checked.
    """
    rng = np.random.default_rng([seed, 1 + DEFECTS.index(label), index])
    surface = render_surface(rng, size)
    faint = index % 5 == 4
    for _ in range(PLACE_TRIES):
        painted = surface.copy()
        weight = DEFECT_PAINTERS[label](painted, rng, faint)
        mask = weight >= MASK_THRESHOLD
        if mask.sum() >= 3:
            noise = sensor_noise(rng, size)
            return finish(surface, noise), finish(painted, noise), mask.astype(np.uint8) * 255
    raise RuntimeError(f"{label} {index}: no defect with a visible mask in {PLACE_TRIES} tries")


def render_image(seed: int, label: str, index: int, size: int = SIZE) -> tuple[Array, Array | None]:
    """One patch (HxW uint8) and, for a defect, its mask (HxW uint8, 0 or 255)."""
    if label != "good":
        _, image, mask = render_pair(seed, label, index, size)
        return image, mask
    rng = np.random.default_rng([seed, 0, index])
    surface = render_surface(rng, size)
    return finish(surface, sensor_noise(rng, size)), None


def render_surface_sample(
    out_dir: Path | str,
    seed: int = SEED,
    size: int = SIZE,
    good: int = GOOD,
    per_defect: int = PER_DEFECT,
    defects: tuple[str, ...] = DEFECTS,
) -> dict[str, int]:
    """Write ``images/{label}/{label}_{i:03d}.png`` and ``masks/{label}/{label}_{i:03d}.png`` under ``out_dir``.

    ``good`` defect-free images (no mask file) and ``per_defect`` images of each defect type.
    Existing ``images/`` and ``masks/`` folders under ``out_dir`` are replaced; other files are left
    alone. Returns the number of images per label.
    """
    out = Path(out_dir)
    for folder in ("images", "masks"):
        shutil.rmtree(out / folder, ignore_errors=True)
    counts = {"good": good, **{label: per_defect for label in defects}}
    for label, count in counts.items():
        (out / "images" / label).mkdir(parents=True, exist_ok=True)
        if label != "good":
            (out / "masks" / label).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image, mask = render_image(seed, label, index, size)
            name = f"{label}_{index:03d}.png"
            Image.fromarray(image).save(out / "images" / label / name, optimize=True)
            if mask is not None:
                Image.fromarray(mask).save(out / "masks" / label / name, optimize=True)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "surface_sample",
        help="dataset folder to (re)write",
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--size", type=int, default=SIZE)
    args = parser.parse_args()
    counts = render_surface_sample(args.out, seed=args.seed, size=args.size)
    print(f"wrote {sum(counts.values())} images to {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
