#!/usr/bin/env python3
"""Render ``datasets/defect_types_sample``: a few-shot dataset of surface-defect types, 32x32 grey crops.

An Omniglot for defects: ten *families* of surface defect (like alphabets), six *kinds* in each
family (like characters) and fifteen instances of each kind. A kind fixes what makes the defect
what it is (orientation, curvature, width, polarity, number and arrangement of parts, size,
outline); its instances differ by a few pixels of position, up to 15 degrees of rotation, about
12 % of scale, 20 % of contrast, and each has its own patch of ground-steel background and its
own sensor noise. Kinds of one family are told apart by a person from a few examples, but they
are alike, so it is a fine-grained problem.

The background and several building blocks come from ``make_surface_sample.py`` in the same
folder (the ground steel plate of ``surface_sample``). Only numpy and Pillow are used, and every
random choice of an instance comes from a generator seeded with (seed, family, kind, index), so
running the script again writes the same files.

    python datasets/make_defect_types_sample.py               # rewrites datasets/defect_types_sample/
    python datasets/make_defect_types_sample.py --out /tmp/x  # somewhere else

From Python (a test, say), load this file with importlib and call
``render_defect_types_sample(out_dir, seed=0, families=("scratch", "chip"), kinds=2, per_kind=3)``;
``render_instance(seed, family, kind, index)`` returns one crop as an array without writing it.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent


def _load_surface_module():
    # datasets/ is no package (and the name would clash with Hugging Face's): load by path.
    name = "make_surface_sample"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / "make_surface_sample.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


surface_sample = _load_surface_module()
filtered_noise = surface_sample.filtered_noise
smooth = surface_sample.smooth
smoothstep = surface_sample.smoothstep
pixel_grid = surface_sample.pixel_grid
polyline_coverage = surface_sample.polyline_coverage
jagged_path = surface_sample.jagged_path
render_surface = surface_sample.render_surface
sensor_noise = surface_sample.sensor_noise
finish = surface_sample.finish
LIGHT_ANGLE = surface_sample.LIGHT_ANGLE

SIZE = 32
SEED = 0
KINDS = 6
PER_KIND = 15
FAMILIES = ("scratch", "crack", "spot", "dent", "pits", "ring", "inclusion", "blister", "hatch", "chip")
# The background is cut from a ground-steel patch rendered at this size (the surface_sample size,
# so the grain has the same magnification) and defects are painted on a canvas this much larger
# than the crop on every side, so blurs and lines run on past the crop's border.
SURFACE = 128
MARGIN = 8
# How much instances of one kind differ.
JITTER = 2.5  # pixels, each way
ROTATION = 15.0  # degrees, each way
SCALE = 0.12  # relative, each way
CONTRAST = 0.2  # relative, each way

Array = np.ndarray


# ---------------------------------------------------------------- where a defect sits


class Pose(NamedTuple):
    """Where one instance lies on the canvas: centre (x, y), angle (degrees, counter-clockwise as seen), scale.

    Shapes are drawn in the defect's own frame (u, v): u along the defect's axis, v across it
    (v points down the image at angle 0), in pixels at scale 1.
    """

    cx: float
    cy: float
    angle: float
    scale: float

    def axes(self) -> tuple[Array, Array]:
        a = math.radians(self.angle)
        return np.array([math.cos(a), -math.sin(a)]), np.array([math.sin(a), math.cos(a)])

    def uv(self, n: int) -> tuple[Array, Array]:
        """Defect-frame coordinates of every canvas pixel."""
        y, x = pixel_grid(n)
        eu, ev = self.axes()
        dx, dy = x - self.cx, y - self.cy
        return (dx * eu[0] + dy * eu[1]) / self.scale, (dx * ev[0] + dy * ev[1]) / self.scale

    def points(self, uv: Array) -> Array:
        """(k, 2) defect-frame points (u, v) to canvas points (x, y)."""
        eu, ev = self.axes()
        return np.array([self.cx, self.cy]) + self.scale * (uv[:, :1] * eu + uv[:, 1:] * ev)


def line(length: float, bend: float = 0.0, steps: int = 24) -> Array:
    """A segment along u centred on the origin, bowed by ``bend`` across it (a parabola); (k, 2)."""
    u = np.linspace(-length / 2, length / 2, steps)
    return np.stack([u, bend * (1.0 - (2.0 * u / length) ** 2)], axis=1)


def lines_cover(pose: Pose, n: int, strokes: Sequence[tuple[Array, Array]]) -> Array:
    """Coverage of several strokes, each (defect-frame points, half-width per point)."""
    cover = np.zeros((n, n))
    for uv, half in strokes:
        np.maximum(cover, polyline_coverage(pose.points(uv), half * pose.scale, n), out=cover)
    return cover


def disc_weight(u: Array, v: Array, radius: Array | float, soft: float) -> Array:
    """1 inside a disc of the given radius (may vary with direction), 0 outside, ``soft`` pixels of edge."""
    rho = np.hypot(u, v)
    return 1.0 - smoothstep(-soft, soft, rho - radius)


# ---------------------------------------------------------------- ways of marking the surface


def stain(canvas: Array, weight: Array, level: float, dull: float = 0.5) -> None:
    """Shift the grey level by ``level`` where ``weight`` is 1, dulling the grain by ``dull``."""
    mean = smooth(canvas, 1.5)
    canvas += weight * (dull * (mean - canvas) + level)


def groove(canvas: Array, rng: np.random.Generator, cover: Array, level: float) -> None:
    """A scratch-like mark: the grain is wiped out under ``cover`` and the level shifted, deeper in places."""
    n = canvas.shape[0]
    along = 1.0 + 0.2 * filtered_noise(rng, n, along=4.0, across=4.0, angle=0.0)
    floor = smooth(canvas, 1.0) + level * along
    canvas += cover * (floor - canvas)


def relief(canvas: Array, height: Array, gain: float, radius: float, warp: float = 0.0) -> None:
    """Shade a height field lit from the top left, as ``add_dent`` in make_surface_sample does."""
    gy, gx = np.gradient(height)
    slope = (gx * math.cos(LIGHT_ANGLE) + gy * math.sin(LIGHT_ANGLE)) * radius
    mean = smooth(canvas, 1.5)
    inside = np.clip(np.abs(height) * 3.0, 0.0, 1.0)
    canvas += warp * inside * (mean - canvas) + gain * slope


# ---------------------------------------------------------------- families
#
# Each painter takes the canvas (float grey levels), the instance's generator, the kind's
# parameters, its pose and its contrast factor, and paints the defect in place.


def paint_scratch(canvas: Array, rng: np.random.Generator, kind: dict, pose: Pose, gain: float) -> None:
    n = canvas.shape[0]
    length = kind.get("length", 26.0)
    half = kind["half"]
    strokes = []
    for offset in kind.get("offsets", (0.0,)):
        uv = line(length, kind.get("bend", 0.0)) + np.array([0.0, offset])
        t = np.linspace(0.0, 1.0, len(uv))
        # Thin at both ends, a little uneven along the way.
        widths = half * np.clip(np.sin(math.pi * t) ** 0.3, 0.45, 1.0) * rng.uniform(0.85, 1.15)
        strokes.append((uv, widths))
    groove(canvas, rng, lines_cover(pose, n, strokes), kind["level"] * gain)


def paint_crack(canvas: Array, rng: np.random.Generator, kind: dict, pose: Pose, gain: float) -> None:
    n = canvas.shape[0]
    wander = kind.get("wander", 0.35)
    half = kind.get("half", 0.8)
    strokes = []
    # Arms start at the origin and run out at the given angles (degrees in the defect frame).
    for arm_angle, arm_length in kind.get("arms", ()):
        path = jagged_path(rng, arm_length, 1.5, math.radians(arm_angle), wander)
        strokes.append((path, half * np.linspace(1.0, 0.4, len(path))))
    if "length" in kind:
        main = jagged_path(rng, kind["length"], 1.5, 0.0, wander)
        main -= main.mean(axis=0)
        t = np.linspace(0.0, 1.0, len(main))
        strokes.append((main, half * np.clip(np.sin(math.pi * t) ** 0.3, 0.45, 1.0)))
        for at, side, branch_length in kind.get("branches", ()):
            start = main[round(at * (len(main) - 1))]
            branch = start + jagged_path(rng, branch_length, 1.4, math.radians(side), wander)
            strokes.append((branch, 0.7 * half * np.linspace(1.0, 0.4, len(branch))))
    cover = lines_cover(pose, n, strokes)
    # Dark in proportion to the surface brightness: a gap in shadow.
    canvas -= min(kind.get("depth", 0.5) * gain, 0.85) * cover * canvas


def lobed_radius(
    rng: np.random.Generator, phi: Array, radius: float, lobes: int = 0, amount: float = 0.0, wobble: float = 0.05
) -> Array:
    """A radius that varies with direction: ``lobes`` bulges of ``amount`` and a little random ``wobble``."""
    factor = np.ones_like(phi)
    for k in range(2, 5):
        factor += wobble / (k - 1) * rng.normal() * np.cos(k * phi + rng.uniform(0, 2 * math.pi))
    if lobes:
        factor += amount * np.cos(lobes * phi + rng.normal(0.0, 0.15))
    return radius * factor


def paint_spot(canvas: Array, rng: np.random.Generator, kind: dict, pose: Pose, gain: float) -> None:
    n = canvas.shape[0]
    u, v = pose.uv(n)
    weight = np.zeros((n, n))
    stretch = kind.get("stretch", 1.0)
    for cu in kind.get("centres", (0.0,)):
        du, dv = (u - cu) / stretch, v
        radius = lobed_radius(rng, np.arctan2(dv, du), kind["radius"], kind.get("lobes", 0), 0.3)
        np.maximum(weight, disc_weight(du, dv, radius, kind["soft"]), out=weight)
    mottle = 1.0 + 0.2 * filtered_noise(rng, n, along=2.0, across=2.0, angle=0.0)
    stain(canvas, weight * mottle, kind["level"] * gain, dull=0.6)


def paint_dent(canvas: Array, rng: np.random.Generator, kind: dict, pose: Pose, gain: float) -> None:
    n = canvas.shape[0]
    u, v = pose.uv(n)
    height = np.zeros((n, n))
    radius = kind["radius"]
    power = kind.get("power", 2.0)  # 2: round outline, larger: squarer
    for cu in kind.get("centres", (0.0,)):
        du, dv = (u - cu) / kind.get("stretch", 1.0), v
        rho = (np.abs(du) ** power + np.abs(dv) ** power) ** (1.0 / power) / radius
        rho *= 1.0 + 0.05 * rng.normal()
        bowl = np.where(rho < 1.0, (1.0 - np.minimum(rho, 1.0) ** 2) ** 2, 0.0)
        rim_width = max(0.12, 1.2 / radius)
        rim = np.exp(-(((rho - 1.0) / rim_width) ** 2))
        height += -bowl + kind.get("rim", 0.35) * rim
    relief(canvas, height, 16.0 * gain, radius * pose.scale, warp=0.5)


def paint_pits(canvas: Array, rng: np.random.Generator, kind: dict, pose: Pose, gain: float) -> None:
    n = canvas.shape[0]
    u, v = pose.uv(n)
    if "cluster" in kind:
        count, spread = kind["cluster"]
        places = []
        while len(places) < count:  # random, but never two pits on top of each other
            p = rng.uniform(-spread, spread, 2)
            if np.hypot(*p) <= spread and all(np.hypot(*(p - q)) > 2.2 for q in places):
                places.append(p)
        centres = np.array(places)
    else:
        centres = np.array(kind["at"], dtype=float) + rng.normal(0.0, 0.35, (len(kind["at"]), 2))
    weight = np.zeros((n, n))
    for cu, cv in centres:
        r = kind["radius"] * rng.uniform(0.85, 1.15)
        np.maximum(weight, disc_weight(u - cu, v - cv, r, 0.6), out=weight)
    stain(canvas, weight, kind.get("level", -45.0) * gain, dull=0.7)


def paint_ring(canvas: Array, rng: np.random.Generator, kind: dict, pose: Pose, gain: float) -> None:
    n = canvas.shape[0]
    u, v = pose.uv(n)
    phi = np.arctan2(v, u)
    rho = np.hypot(u, v)
    weight = np.zeros((n, n))
    for radius in kind["radii"]:
        r = lobed_radius(rng, phi, radius, wobble=0.03)
        np.maximum(weight, np.exp(-(((rho - r) / kind["width"]) ** 2)), out=weight)
    if "gap" in kind:  # an open ring: nothing within gap/2 of the +u direction
        half_gap = math.radians(kind["gap"]) / 2
        weight *= smoothstep(half_gap - 0.25, half_gap + 0.25, np.abs(phi))
    if kind.get("filled"):
        inner = disc_weight(u, v, lobed_radius(rng, phi, max(kind["radii"]), wobble=0.03), 1.0)
        weight = np.maximum(weight, 0.6 * inner)
    stain(canvas, weight, kind.get("level", -30.0) * gain, dull=0.4)


def paint_inclusion(canvas: Array, rng: np.random.Generator, kind: dict, pose: Pose, gain: float) -> None:
    n = canvas.shape[0]
    strokes = []
    length, half = kind["length"], kind["half"]
    for cu in kind.get("centres", (0.0,)):
        uv = line(length, kind.get("bend", 0.0), steps=16) + np.array([cu, 0.0])
        t = np.linspace(0.0, 1.0, len(uv))
        # A tapered one thins towards its tail; the others have blunt, rounded ends (the polyline's caps).
        taper = 0.85 if kind.get("tapered") else 0.0
        widths = half * (1.0 - taper * t) * (1.0 + 0.12 * rng.normal(size=len(t)))
        strokes.append((uv, np.clip(widths, 0.3, None)))
    cover = smooth(lines_cover(pose, n, strokes), 0.5)
    stain(canvas, np.clip(cover, 0.0, 1.0), kind.get("level", -42.0) * gain, dull=0.8)


def paint_blister(canvas: Array, rng: np.random.Generator, kind: dict, pose: Pose, gain: float) -> None:
    n = canvas.shape[0]
    u, v = pose.uv(n)
    stretch = kind.get("stretch", 1.0)
    dome = np.zeros((n, n))
    rim = np.zeros((n, n))
    highlight = np.zeros((n, n))
    radius = kind["radius"]
    for cu, cv in kind.get("at", ((0.0, 0.0),)):
        du, dv = (u - cu) / stretch, v - cv
        r = lobed_radius(rng, np.arctan2(dv, du), radius, wobble=0.03)
        rho = np.hypot(du, dv)
        np.maximum(dome, disc_weight(du, dv, r, 0.6), out=dome)
        np.maximum(rim, np.exp(-(((rho - r - 0.4) / kind.get("rim", 0.8)) ** 2)), out=rim)
        # A highlight towards the light (top left in the image, whatever the pose).
        hx, hy = -0.35 * r * pose.scale, -0.35 * r * pose.scale
        centre = pose.points(np.array([[cu, cv]]))[0]
        y, x = pixel_grid(n)
        spot = np.exp(-((x - centre[0] - hx) ** 2 + (y - centre[1] - hy) ** 2) / (2 * (0.3 * r * pose.scale) ** 2))
        np.maximum(highlight, spot, out=highlight)
    stain(canvas, dome, 22.0 * gain, dull=0.85)
    canvas += gain * (14.0 * highlight * dome - 38.0 * rim * (1.0 - dome))


def paint_hatch(canvas: Array, rng: np.random.Generator, kind: dict, pose: Pose, gain: float) -> None:
    n = canvas.shape[0]
    strokes = []
    for sets_angle, count in kind["sets"]:
        a = math.radians(sets_angle)
        along, across = np.array([math.cos(a), -math.sin(a)]), np.array([math.sin(a), math.cos(a)])
        for i in range(count):
            offset = (i - (count - 1) / 2) * kind["spacing"]
            shift = (i - (count - 1) / 2) * kind.get("stagger", 0.0)
            s = np.linspace(-kind["length"] / 2, kind["length"] / 2, 8) + shift + rng.normal(0.0, 0.6)
            uv = s[:, None] * along + (offset + rng.normal(0.0, 0.3)) * across
            widths = kind.get("half", 0.75) * np.clip(np.sin(math.pi * np.linspace(0, 1, 8)) ** 0.3, 0.5, 1.0)
            strokes.append((uv, widths))
    groove(canvas, rng, lines_cover(pose, n, strokes), kind.get("level", -34.0) * gain)


def chip_region(rng: np.random.Generator, kind: dict, u: Array, v: Array) -> Callable[[float], Array]:
    """The chip's weight (1 inside), as a function of how far its outline is pushed out, in pixels."""
    size, shape = kind["size"], kind["shape"]
    if shape == "disc":
        return lambda grow: disc_weight(u, v, size + grow, 0.6)
    if shape == "jagged":
        phi = np.arctan2(v, u)
        factor = 1.0 + sum(0.22 / k * rng.normal() * np.cos(k * phi + rng.uniform(0, 2 * math.pi)) for k in range(3, 9))
        return lambda grow: disc_weight(u, v, size * factor + grow, 0.5)
    if shape == "notch":  # a V with its point ``size`` into the part
        sides = kind["width"] / 2 * (1.0 - v / size) - np.abs(u)
        return lambda grow: smoothstep(-0.6, 0.6, sides + grow) * smoothstep(-0.6, 0.6, size - v + grow)
    if shape == "step":  # a rectangle ``size`` deep
        return lambda grow: (
            smoothstep(-0.6, 0.6, kind["width"] / 2 - np.abs(u) + grow) * smoothstep(-0.6, 0.6, size - v + grow)
        )
    raise ValueError(f"unknown chip shape {shape!r}")


def paint_chip(canvas: Array, rng: np.random.Generator, kind: dict, pose: Pose, gain: float) -> None:
    """Drawn against the crop's top edge (or its top-left corner), then turned to the kind's edge."""
    n = canvas.shape[0]
    u, v = pose.uv(n)
    region = chip_region(rng, kind, u, v)
    weight = region(0.0)
    # A dark line along the break, just outside the broken-away region.
    edge = np.clip(region(1.3) - weight, 0.0, 1.0)
    # Fresh fracture: bright and smooth, with faint conchoidal ripples round where it broke out.
    ripples = np.sin(np.hypot(u, v) * rng.uniform(1.1, 1.5) + rng.uniform(0, 2 * math.pi))
    texture = 4.0 * ripples + 3.0 * filtered_noise(rng, n, along=2.0, across=2.0, angle=0.0)
    turns = kind.get("turns", 0)
    weight, edge, texture = (np.rot90(a, turns) for a in (weight, edge, texture))
    mean = smooth(canvas, 3.0)
    canvas += weight * (0.9 * (mean - canvas) + gain * (36.0 + texture)) - gain * 28.0 * edge


# ---------------------------------------------------------------- the kinds
#
# Angles in degrees, counter-clockwise as seen; lengths in pixels of the 32x32 crop; levels in
# grey levels (negative: darker). Every instance then gets its own pose and contrast.

KIND_TABLE: dict[str, list[dict]] = {
    "scratch": [
        {"angle": 0, "half": 0.7, "level": -34},  # thin, dark, straight, along the grain
        {"angle": 60, "half": 0.7, "level": -34},  # the same, steep
        {"angle": 0, "half": 0.7, "level": -34, "bend": 6},  # bowed into an arc
        {"angle": 120, "half": 0.7, "level": 34},  # bright, steep the other way
        {"angle": 60, "half": 1.9, "level": -22},  # broad and shallow
        {"angle": 0, "half": 0.6, "level": -30, "offsets": (-2.5, 2.5)},  # a pair of parallel scratches
    ],
    "crack": [
        {"angle": 0, "length": 26},  # one jagged line
        {"angle": 0, "length": 26, "branches": ((0.5, -50, 10),)},  # with one branch from the middle
        {"angle": 90, "arms": ((90, 11), (210, 11), (330, 11))},  # three arms from a point (Y)
        {"angle": 90, "length": 22, "wander": 0.9},  # tortuous
        {"angle": 90, "length": 26, "branches": ((0.3, 50, 7), (0.7, -130, 7))},  # branches on both sides
        {"angle": 45, "arms": ((180, 12), (25, 10), (-25, 10))},  # a line that forks
    ],
    "spot": [
        {"angle": 0, "radius": 4.0, "soft": 0.6, "level": -34},  # small, dark, sharp
        {"angle": 0, "radius": 8.5, "soft": 2.5, "level": -26},  # large, dark, soft edge
        {"angle": 30, "radius": 4.5, "soft": 0.8, "stretch": 2.0, "level": -32},  # elongated
        {"angle": 0, "radius": 6.0, "soft": 1.0, "level": 30},  # bright
        {"angle": 0, "radius": 7.0, "soft": 0.8, "level": -30, "lobes": 4},  # four-lobed outline
        {"angle": 90, "radius": 3.2, "soft": 0.7, "level": -34, "centres": (-5.0, 5.0)},  # a pair
    ],
    "dent": [
        {"angle": 0, "radius": 5.0},  # small, round
        {"angle": 0, "radius": 9.5},  # large, round
        {"angle": 0, "radius": 4.0, "stretch": 2.6},  # an elongated groove along the grain
        {"angle": 90, "radius": 4.0, "stretch": 2.6},  # the same across the grain
        {"angle": 0, "radius": 7.0, "power": 5.0, "rim": 0.5},  # square outline
        {"angle": 0, "radius": 3.8, "centres": (-5.5, 5.5)},  # two small dents side by side
    ],
    "pits": [
        {"angle": 0, "radius": 1.4, "at": ((-6, 0), (0, 0), (6, 0))},  # three in a row
        {"angle": 0, "radius": 1.0, "at": ((-8, 0), (-4, 0), (0, 0), (4, 0), (8, 0))},  # five, close together
        {
            "angle": 0,
            "radius": 1.1,
            "at": tuple((7 * math.cos(k * math.pi / 3), 7 * math.sin(k * math.pi / 3)) for k in range(6)),
        },  # a ring of six
        {"angle": 0, "radius": 0.9, "cluster": (8, 6.0)},  # a random cluster of eight small pits
        {"angle": 0, "radius": 2.1, "at": ((0, -5.5), (-5, 3), (5, 3))},  # a triangle of three large pits
        {"angle": 0, "radius": 1.4, "at": ((-3.5, -3.5), (3.5, -3.5), (-3.5, 3.5), (3.5, 3.5))},  # a square of four
    ],
    "ring": [
        {"angle": 0, "radii": (8.0,), "width": 0.9},  # thin
        {"angle": 0, "radii": (8.0,), "width": 2.0},  # thick
        {"angle": 0, "radii": (4.5,), "width": 0.9},  # small
        {"angle": 0, "radii": (4.0, 9.0), "width": 0.8},  # two concentric rings
        {"angle": 0, "radii": (8.0,), "width": 0.9, "gap": 100},  # open (a C), gap to the right
        {"angle": 0, "radii": (7.5,), "width": 0.9, "filled": True},  # a stain with a drying ring
    ],
    "inclusion": [
        {"angle": 0, "length": 7, "half": 2.4},  # short and fat
        {"angle": 0, "length": 21, "half": 1.1},  # long and thin, along the grain
        {"angle": 60, "length": 19, "half": 1.1},  # long and thin, steep
        {"angle": 0, "length": 4, "half": 1.4, "centres": (-8, 0, 8)},  # a chain of three
        {"angle": 0, "length": 16, "half": 2.6, "tapered": True},  # a tadpole: blunt head, thin tail
        {"angle": 0, "length": 18, "half": 1.4, "bend": 5},  # bent
    ],
    "blister": [
        {"angle": 0, "radius": 5.0},  # one, medium
        {"angle": 0, "radius": 9.0},  # one, large
        {"angle": 0, "radius": 3.0, "at": ((-5, 0), (5, 0))},  # two small side by side
        {"angle": 0, "radius": 2.7, "at": ((0, -5), (-5, 3.5), (5, 3.5))},  # three small in a triangle
        {"angle": 0, "radius": 5.0, "rim": 1.9},  # one, medium, thick dark rim
        {"angle": 30, "radius": 4.0, "stretch": 2.0},  # oval
    ],
    "hatch": [
        {"angle": 0, "sets": ((90, 3),), "spacing": 6.0, "length": 12},  # three upright marks
        {"angle": 0, "sets": ((90, 5),), "spacing": 3.6, "length": 12},  # five, close together
        {"angle": 0, "sets": ((45, 3),), "spacing": 6.0, "length": 12},  # three slanted marks
        {"angle": 0, "sets": ((0, 3),), "spacing": 6.0, "length": 20},  # three long, lying marks
        {"angle": 0, "sets": ((90, 2), (0, 2)), "spacing": 7.0, "length": 18},  # cross-hatch (#)
        {"angle": 0, "sets": ((90, 4),), "spacing": 4.5, "length": 9, "stagger": 3.5},  # staggered steps
    ],
    "chip": [
        {"shape": "disc", "size": 7.5},  # a half-disc out of the top edge
        {"shape": "disc", "size": 4.0},  # a small one
        {"shape": "notch", "size": 9.0, "width": 13.0},  # a V-notch
        {"shape": "step", "size": 5.0, "width": 15.0},  # a rectangular step
        {"shape": "jagged", "size": 8.0, "turns": 1},  # a jagged chip out of the left edge
        {"shape": "disc", "size": 10.0, "corner": True},  # a quarter-disc out of the top-left corner
    ],
}

PAINTERS: dict[str, Callable[[Array, np.random.Generator, dict, Pose, float], None]] = {
    "scratch": paint_scratch,
    "crack": paint_crack,
    "spot": paint_spot,
    "dent": paint_dent,
    "pits": paint_pits,
    "ring": paint_ring,
    "inclusion": paint_inclusion,
    "blister": paint_blister,
    "hatch": paint_hatch,
    "chip": paint_chip,
}


# ---------------------------------------------------------------- images and files


def instance_pose(rng: np.random.Generator, family: str, kind: dict, size: int) -> Pose:
    """The kind's pose, jittered: position, rotation and scale."""
    n = size + 2 * MARGIN
    centre = (n - 1) / 2
    scale = size / SIZE * rng.uniform(1.0 - SCALE, 1.0 + SCALE)
    angle = kind.get("angle", 0.0) + rng.uniform(-ROTATION, ROTATION)
    jx, jy = rng.uniform(-JITTER, JITTER, 2) * size / SIZE
    if family == "chip":  # on the crop's top edge (or top-left corner), moved along it only
        top = MARGIN - 0.5
        if kind.get("corner"):
            return Pose(top, top, angle, scale)
        return Pose(centre + jx, top, angle, scale)
    return Pose(centre + jx, centre + jy, angle, scale)


def render_instance(seed: int, family: str, kind: int, index: int, size: int = SIZE) -> Array:
    """One crop, HxW uint8: instance ``index`` of kind ``kind`` of ``family``."""
    rng = np.random.default_rng([seed, FAMILIES.index(family), kind, index])
    n = size + 2 * MARGIN
    surface_size = max(SURFACE, n)
    surface = render_surface(rng, surface_size)
    y0, x0 = rng.integers(0, surface_size - n + 1, 2)
    canvas = surface[y0 : y0 + n, x0 : x0 + n].copy()
    params = KIND_TABLE[family][kind]
    pose = instance_pose(rng, family, params, size)
    gain = rng.uniform(1.0 - CONTRAST, 1.0 + CONTRAST)
    PAINTERS[family](canvas, rng, params, pose, gain)
    image = finish(canvas, sensor_noise(rng, n))
    return image[MARGIN : MARGIN + size, MARGIN : MARGIN + size]


def kind_name(family: str, kind: int) -> str:
    return f"{family}_{kind:02d}"


def render_defect_types_sample(
    out_dir: Path | str,
    seed: int = SEED,
    size: int = SIZE,
    families: Sequence[str] | None = None,
    kinds: int = KINDS,
    per_kind: int = PER_KIND,
) -> dict[str, int]:
    """Write ``images/<family>/<family>_<kk>/<family>_<kk>_<iii>.png`` under ``out_dir``.

    The first ``kinds`` kinds of each family in ``families`` (all ten if None), ``per_kind``
    images of each. An existing ``images/`` folder under ``out_dir`` is replaced; other files are
    left alone. Returns the number of images per class, keyed by label ``<family>/<family>_<kk>``.
    """
    families = tuple(FAMILIES if families is None else families)
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown families {unknown}; the families are {', '.join(FAMILIES)}")
    if not 1 <= kinds <= KINDS:
        raise ValueError(f"kinds must be 1 to {KINDS}, not {kinds}")
    out = Path(out_dir)
    shutil.rmtree(out / "images", ignore_errors=True)
    counts = {}
    for family in families:
        for kind in range(kinds):
            name = kind_name(family, kind)
            folder = out / "images" / family / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(per_kind):
                image = render_instance(seed, family, kind, index, size)
                Image.fromarray(image).save(folder / f"{name}_{index:03d}.png", optimize=True)
            counts[f"{family}/{name}"] = per_kind
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "defect_types_sample", help="dataset folder to (re)write")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    counts = render_defect_types_sample(args.out, seed=args.seed)
    print(f"wrote {sum(counts.values())} images of {len(counts)} kinds in {len(FAMILIES)} families to {args.out}")


if __name__ == "__main__":
    main()
