#!/usr/bin/env python3
"""Render ``datasets/street_sample``: procedural street scenes with labelled pedestrians and cars.

Only numpy and Pillow are used and every random choice comes from a seeded generator,
so running the script again writes the same files. A pinhole camera looks down a
straight street; road, facades, trees, cars and people are placed in metres and
projected, which gives the perspective (people shrink towards the horizon) for free.
Each scene is drawn at twice the output size, then reduced, blurred, tone-mapped,
noised and JPEG-compressed like a frame from a small camera.

Boxes come from an id buffer written while drawing, so a box covers exactly the part
of an object that is visible in the image.

With ``--night`` the same scene code is lit as at night (``datasets/street_night_sample``):
a dark sky, street lamps, lit windows and shops, head and tail lights, a dim blue ambient
light and a noisier, lower exposure. Night scenes use their own scene seeds, and every
night-only choice comes from a second generator, so day scenes are unchanged by it.

    python datasets/make_street_sample.py               # rewrites datasets/street_sample/
    python datasets/make_street_sample.py --out /tmp/x  # somewhere else
    python datasets/make_street_sample.py --night       # rewrites datasets/street_night_sample/
"""

from __future__ import annotations

import argparse
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

WIDTH, HEIGHT = 320, 240
SUPERSAMPLE = 2
SPLIT_SIZES = {"train": 48, "val": 16, "test": 16}
CLASS_NAMES = {0: "person", 1: "car"}
PERSON, CAR = 0, 1
SEED = 20240607
JPEG_QUALITY = 90
MIN_BOX_PX = 4
# An object hidden more than this is re-placed, so no label is a box around a sliver.
MIN_VISIBLE_SHARE = 0.35
NEAR_PLANE_M = 0.4
MAX_LAYOUT_TRIES = 60
# Night scenes: other scene seeds than the day set's (the two domains are unpaired), and a
# second stream for night-only choices, so the day renderer's draws never change.
NIGHT_SEED = 20240921
NIGHT_LIGHTS_STREAM = 1
NIGHT_SPLIT_SIZES = {"train": 48, "test": 16}
# Lights are brighter than an 8-bit layer holds: emission is stored divided by this.
EMISSION_RANGE = 8.0

Color = tuple[float, float, float]
Point = tuple[float, float]
Point3 = tuple[float, float, float]

SKIN_TONES: list[Color] = [
    (250, 220, 196),
    (238, 193, 160),
    (222, 170, 130),
    (196, 138, 100),
    (160, 106, 72),
    (118, 78, 52),
    (86, 58, 42),
]
HAIR_COLORS: list[Color] = [(22, 18, 16), (44, 30, 22), (78, 54, 36), (140, 100, 58), (196, 164, 110), (140, 138, 134)]
TOP_COLORS: list[Color] = [
    (34, 44, 74),
    (26, 26, 30),
    (112, 112, 118),
    (222, 222, 216),
    (188, 168, 138),
    (88, 94, 60),
    (168, 42, 40),
    (62, 88, 128),
    (104, 72, 48),
    (118, 40, 58),
    (204, 160, 56),
    (40, 110, 112),
    (218, 150, 168),
    (70, 120, 70),
]
BOTTOM_COLORS: list[Color] = [
    (52, 74, 112),
    (40, 58, 92),
    (28, 28, 32),
    (86, 86, 92),
    (170, 150, 116),
    (38, 42, 64),
    (196, 186, 166),
    (82, 64, 48),
]
SHOE_COLORS: list[Color] = [(24, 22, 22), (236, 236, 232), (70, 48, 34), (40, 40, 46), (150, 150, 156)]
BAG_COLORS: list[Color] = [(30, 30, 34), (92, 60, 36), (150, 40, 36), (40, 60, 100), (168, 150, 120), (60, 84, 58)]
CAR_COLORS: list[Color] = [
    (228, 228, 226),
    (30, 30, 34),
    (158, 160, 164),
    (96, 98, 104),
    (150, 28, 30),
    (36, 62, 120),
    (46, 70, 56),
    (200, 196, 182),
    (120, 90, 60),
]
FACADE_COLORS: list[Color] = [
    (196, 184, 160),
    (176, 150, 120),
    (150, 112, 90),
    (210, 204, 190),
    (170, 170, 166),
    (136, 88, 70),
    (214, 196, 150),
    (120, 118, 116),
    (188, 160, 140),
    (160, 170, 176),
]
AWNING_COLORS: list[Color] = [(150, 34, 34), (34, 90, 60), (40, 56, 110), (200, 160, 60), (90, 40, 70), (60, 60, 62)]


# ---------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Camera:
    """A level pinhole camera; image coordinates are in supersampled pixels."""

    focal: float
    cx: float
    horizon: float
    height: float
    x: float

    def project(self, x: float, y: float, z: float) -> Point:
        return self.cx + self.focal * (x - self.x) / z, self.horizon + self.focal * (self.height - y) / z

    def polygon(self, points: Sequence[Point3]) -> list[Point]:
        return [self.project(*p) for p in clip_near(points)]

    def pixels_per_metre(self, z: float) -> float:
        return self.focal / z


def clip_near(points: Sequence[Point3]) -> list[Point3]:
    """Cut a polygon at the near plane so parts behind the camera never project."""
    kept: list[Point3] = []
    for i, a in enumerate(points):
        b = points[(i + 1) % len(points)]
        a_in, b_in = a[2] >= NEAR_PLANE_M, b[2] >= NEAR_PLANE_M
        if a_in:
            kept.append(a)
        if a_in != b_in:
            t = (NEAR_PLANE_M - a[2]) / (b[2] - a[2])
            kept.append((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]), NEAR_PLANE_M))
    return kept


def ground_ellipse(x: float, z: float, rx: float, rz: float, segments: int = 20) -> list[Point3]:
    return [
        (x + rx * math.cos(t), 0.0, z + rz * math.sin(t)) for t in np.linspace(0, 2 * math.pi, segments, endpoint=False)
    ]


def convex_hull(points: Sequence[Point]) -> list[Point]:
    ordered = sorted(set(points))
    if len(ordered) < 3:
        return ordered

    def half(seq: Sequence[Point]) -> list[Point]:
        chain: list[Point] = []
        for p in seq:
            while len(chain) >= 2:
                (ax, ay), (bx, by) = chain[-2], chain[-1]
                if (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax) > 0:
                    break
                chain.pop()
            chain.append(p)
        return chain

    lower, upper = half(ordered), half(ordered[::-1])
    return lower[:-1] + upper[:-1]


def inside_polygon(x: float, z: float, polygon: Sequence[Point]) -> bool:
    inside = False
    for i, (ax, az) in enumerate(polygon):
        bx, bz = polygon[i - 1]
        if (az > z) != (bz > z) and x < ax + (z - az) * (bx - ax) / (bz - az):
            inside = not inside
    return inside


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


class ValueNoise:
    """Smooth lattice noise sampled at arbitrary coordinates (used in metres on the ground and sky)."""

    def __init__(self, rng: np.random.Generator, size: int = 256):
        self.grid = rng.random((size, size), dtype=np.float32)
        self.size = size

    def sample(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x0, y0 = np.floor(x), np.floor(y)
        fx, fy = x - x0, y - y0
        fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
        i0, j0 = x0.astype(np.int64) % self.size, y0.astype(np.int64) % self.size
        i1, j1 = (i0 + 1) % self.size, (j0 + 1) % self.size
        g = self.grid
        top = g[j0, i0] * (1 - fx) + g[j0, i1] * fx
        bottom = g[j1, i0] * (1 - fx) + g[j1, i1] * fx
        return top * (1 - fy) + bottom * fy

    def fractal(self, x: np.ndarray, y: np.ndarray, octaves: int) -> np.ndarray:
        total, weight, norm = np.zeros_like(x, dtype=np.float32), 1.0, 0.0
        for octave in range(octaves):
            scale = 2.0**octave
            total += weight * self.sample(x * scale + 17.3 * octave, y * scale + 41.7 * octave)
            norm += weight
            weight *= 0.5
        return total / norm


# ---------------------------------------------------------------- drawing


def as_rgb(color: Color) -> tuple[int, int, int]:
    r, g, b = (int(min(max(float(c), 0.0), 255.0) + 0.5) for c in color)
    return r, g, b


def scaled(color: Color, factor: float) -> Color:
    return color[0] * factor, color[1] * factor, color[2] * factor


def mixed(a: Color, b: Color, t: float) -> Color:
    return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t


def jittered(rng: np.random.Generator, color: Color, amount: float) -> Color:
    """``color`` a little brighter or darker and a little shifted in hue."""
    factor = 1 + rng.uniform(-amount, amount)
    r, g, b = (c * factor * (1 + rng.uniform(-amount / 3, amount / 3)) for c in color)
    return r, g, b


class Layer:
    """One object's colours and coverage, drawn with Pillow and composited onto the canvas at once."""

    def __init__(self, size: tuple[int, int]):
        self.color = Image.new("RGB", size)
        self.alpha = Image.new("L", size)
        self._color = ImageDraw.Draw(self.color)
        self._alpha = ImageDraw.Draw(self.alpha)
        # Light the layer gives off (lamps, lit windows), added after the scene is lit; made
        # on the first glowing shape, so layers without lights cost nothing.
        self.emission: Image.Image | None = None
        self._emission: ImageDraw.ImageDraw | None = None

    def _emit(self, glow: Color | None) -> ImageDraw.ImageDraw | None:
        if glow is not None and self._emission is None:
            self.emission = Image.new("RGB", self.color.size)
            self._emission = ImageDraw.Draw(self.emission)
        return self._emission

    def polygon(self, points: Sequence[Point], color: Color, glow: Color | None = None) -> None:
        """Fill ``points`` with ``color``; ``glow`` (0 to 255 * EMISSION_RANGE) is light it emits."""
        if len(points) >= 3:
            self._color.polygon(list(points), fill=as_rgb(color))
            self._alpha.polygon(list(points), fill=255)
            # A dark shape over a glowing one (a window frame over its pane) hides the glow too.
            if (emission := self._emit(glow)) is not None:
                emission.polygon(list(points), fill=as_rgb(scaled(glow or (0, 0, 0), 1 / EMISSION_RANGE)))

    def ellipse(self, center: Point, rx: float, ry: float, color: Color, glow: Color | None = None) -> None:
        box = (center[0] - rx, center[1] - ry, center[0] + rx, center[1] + ry)
        if box[2] > box[0] and box[3] > box[1]:
            self._color.ellipse(box, fill=as_rgb(color))
            self._alpha.ellipse(box, fill=255)
            if (emission := self._emit(glow)) is not None:
                emission.ellipse(box, fill=as_rgb(scaled(glow or (0, 0, 0), 1 / EMISSION_RANGE)))

    def limb(self, p0: Point, p1: Point, w0: float, w1: float, color: Color) -> None:
        """A tapered capsule from ``p0`` (width ``w0``) to ``p1`` (width ``w1``)."""
        dx, dy = p1[0] - p0[0], p1[1] - p0[1]
        length = math.hypot(dx, dy) or 1e-6
        nx, ny = -dy / length, dx / length
        self.polygon(
            [
                (p0[0] + nx * w0 / 2, p0[1] + ny * w0 / 2),
                (p1[0] + nx * w1 / 2, p1[1] + ny * w1 / 2),
                (p1[0] - nx * w1 / 2, p1[1] - ny * w1 / 2),
                (p0[0] - nx * w0 / 2, p0[1] - ny * w0 / 2),
            ],
            color,
        )
        self.ellipse(p0, w0 / 2, w0 / 2, color)
        self.ellipse(p1, w1 / 2, w1 / 2, color)


class Canvas:
    """The supersampled frame: colour, per-pixel depth (for haze) and the id of the object drawn last."""

    def __init__(self, rng: np.random.Generator, night: bool = False):
        self.width, self.height = WIDTH * SUPERSAMPLE, HEIGHT * SUPERSAMPLE
        self.rgb = np.zeros((self.height, self.width, 3), np.float32)
        self.depth = np.full((self.height, self.width), np.inf, np.float32)
        self.ids = np.zeros((self.height, self.width), np.int16)
        # Emitted light, kept apart from ``rgb`` (reflected colour) so night lighting can scale
        # one and not the other; by day nothing glows and there is no buffer.
        self.emit = np.zeros((self.height, self.width, 3), np.float32) if night else None
        fine = rng.standard_normal((self.height, self.width)).astype(np.float32)
        coarse = np.asarray(
            Image.fromarray(rng.standard_normal((self.height // 8, self.width // 8)).astype(np.float32)).resize(
                (self.width, self.height), Image.Resampling.BICUBIC
            )
        )
        # Surface grain: a little pixel noise plus blotches, so walls and clothes are not flat fills.
        self.grain = 0.5 * fine + coarse

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def layer(self) -> Layer:
        return Layer(self.size)

    def composite(
        self,
        layer: Layer,
        depth: float | np.ndarray,
        object_id: int = 0,
        light: float | Color = 1.0,
        lateral: float = 0.0,
        vertical: float = 0.0,
        texture: float = 0.0,
    ) -> int:
        """Paint ``layer``; returns how many pixels it covers. ``lateral``/``vertical`` brighten one side."""
        box = layer.alpha.getbbox()
        if box is None:
            return 0
        x0, y0, x1, y1 = box
        region = (slice(y0, y1), slice(x0, x1))
        alpha = np.asarray(layer.alpha.crop(box), np.float32)[..., None] / 255.0
        color = np.asarray(layer.color.crop(box), np.float32) * np.asarray(light, np.float32)
        if lateral or vertical:
            tx = np.linspace(-0.5, 0.5, x1 - x0, dtype=np.float32)[None, :, None]
            ty = np.linspace(-0.5, 0.5, y1 - y0, dtype=np.float32)[:, None, None]
            color = color * (1 + lateral * tx - vertical * ty)
        if texture:
            color = color * (1 + texture * self.grain[region])[..., None]
        self.rgb[region] = self.rgb[region] * (1 - alpha) + color * alpha
        if self.emit is not None:
            glow = 0.0 if layer.emission is None else np.asarray(layer.emission.crop(box), np.float32) * EMISSION_RANGE
            self.emit[region] = self.emit[region] * (1 - alpha) + glow * alpha
        covered = alpha[..., 0] > 0.5
        self.depth[region][covered] = depth[region][covered] if isinstance(depth, np.ndarray) else depth
        self.ids[region][covered] = object_id
        return int(covered.sum())


# ---------------------------------------------------------------- the scene


@dataclass(frozen=True)
class Street:
    half_road: float
    lane_width: float
    lanes: int
    facade: float  # distance of the building fronts from the road centre
    crosswalk: float | None  # near edge of a zebra crossing


@dataclass(frozen=True)
class Lighting:
    sunny: bool
    shadow_dir: Point  # (x, z) direction shadows fall on the ground
    shadow_length: float  # metres of shadow per metre of height
    sun: Point3  # unit vector towards the sun
    ambient: float
    diffuse: float
    shade: Color  # multiplier for surfaces in a building's shadow

    def on(self, normal: Point3) -> float:
        facing = max(0.0, sum(n * s for n, s in zip(normal, self.sun, strict=True)))
        return self.ambient + self.diffuse * facing

    @property
    def lit_side(self) -> float:
        """+1 when objects are lit from the image's left, -1 from its right."""
        return 1.0 if self.shadow_dir[0] > 0 else -1.0


@dataclass(frozen=True)
class Light:
    """A point light at night; ``color`` is the light's strength per channel at 1 m."""

    position: Point3
    color: Color
    direction: Point3 | None = None  # unit vector the light points along; None shines all round
    focus: float = 0.0  # how tightly it points: the power of the cosine off ``direction``


@dataclass
class Night:
    """What lights a night scene; ``rng`` makes every night-only choice, so day draws stay as they are."""

    rng: np.random.Generator
    ambient: Color  # moon and sky glow, as a multiplier of the daylight colours
    lamp: Color  # street lamp strength per channel
    lamp_glow: Color  # colour of the lamp heads themselves
    window_share: float  # share of windows with the light on
    sky_top: Color
    sky_horizon: Color
    cloud: Color  # clouds lit from below by the town
    lights: list[Light] = field(default_factory=list)


WINDOW_LIGHTS: list[Color] = [(255, 196, 120), (255, 214, 160), (240, 226, 200), (255, 180, 100), (150, 176, 255)]


def window_glow(night: Night, curtains: bool) -> Color | None:
    """The light a window gives off at night, or None when it is dark inside."""
    if night.rng.random() >= night.window_share:
        return None
    # Mostly warm room light; now and then the blue of a screen. Curtains dim and warm it.
    color = jittered(night.rng, WINDOW_LIGHTS[night.rng.integers(len(WINDOW_LIGHTS))], 0.1)
    strength = night.rng.uniform(0.45, 1.0) * (0.6 if curtains else 1.0)
    return scaled(color, strength)


def plan_night(rng: np.random.Generator) -> Night:
    sodium = rng.random() < 0.45  # older orange sodium lamps, or white LED ones
    lamp_color = (1.0, 0.72, 0.42) if sodium else (0.92, 0.95, 1.0)
    power = rng.uniform(45, 70)
    moon = rng.uniform(0.8, 1.25)
    glow = rng.uniform(0.0, 1.0)  # how much the town lights the low sky orange
    return Night(
        rng=rng,
        ambient=(0.07 * moon, 0.095 * moon, 0.19 * moon),
        lamp=scaled(lamp_color, power),
        lamp_glow=scaled(mixed(lamp_color, (1.0, 1.0, 1.0), 0.45), 2000),
        window_share=rng.uniform(0.2, 0.45),
        sky_top=jittered(rng, (5, 8, 22), 0.15),
        sky_horizon=jittered(rng, mixed((22, 28, 52), (58, 44, 42), glow), 0.1),
        cloud=jittered(rng, mixed((34, 36, 48), (70, 54, 50), glow), 0.1),
    )


# Night scenes draw with flat light: no sun, only a little more on surfaces facing the sky.
NIGHT_LIGHTING = Lighting(False, (0.0, 1.0), 0.0, (0.0, 1.0, 0.0), 0.85, 0.15, (1.0, 1.0, 1.0))


@dataclass
class Scene:
    camera: Camera
    street: Street
    lighting: Lighting
    sky_top: Color
    sky_horizon: Color
    visibility_m: float
    building_shadows: list[list[Point]]
    night: Night | None = None

    def in_shade(self, x: float, z: float) -> bool:
        return any(inside_polygon(x, z, polygon) for polygon in self.building_shadows)


@dataclass
class Shadows:
    """Ground polygons: ``contact`` darkens under an object whatever the weather, ``cast`` only in sun."""

    contact: list[list[Point3]]
    cast: list[list[Point3]]


class Drawable:
    """Something standing on the street at (x, z), drawn far to near; ``label`` is its class or None."""

    x: float
    z: float
    label: int | None = None

    def shadows(self, scene: Scene) -> Shadows:
        return Shadows([], [])

    def draw(self, canvas: Canvas, scene: Scene, object_id: int) -> int:
        raise NotImplementedError


# ---------------------------------------------------------------- background


def paint_sky(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    cam = scene.camera
    rows = np.arange(canvas.height, dtype=np.float32)[:, None]
    t = np.clip(rows / max(cam.horizon, 1.0), 0, 1) ** 0.8
    top, horizon = np.array(scene.sky_top, np.float32), np.array(scene.sky_horizon, np.float32)
    sky = top + (horizon - top) * t[..., None]
    sky = np.broadcast_to(sky, (canvas.height, canvas.width, 3)).copy()
    # Clouds live on a plane high above the street, so they flatten and thin towards the horizon.
    cloud_height = 900.0
    above = np.maximum(cam.horizon - rows, 1.0)
    distance = cam.focal * cloud_height / above
    cols = np.arange(canvas.width, dtype=np.float32)[None, :]
    lateral = (cols - cam.cx) * distance / cam.focal
    noise = ValueNoise(rng)
    offset = rng.uniform(0, 200, size=2)
    density = noise.fractal(lateral / 1400 + offset[0], distance / 1400 + offset[1], octaves=5)
    cover = rng.uniform(0.42, 0.62) if scene.lighting.sunny else rng.uniform(0.2, 0.32)
    amount = smoothstep(cover, cover + 0.18, density) * np.exp(-distance / 30000.0)
    thickness = smoothstep(cover + 0.12, cover + 0.45, density)
    white = np.array((246, 246, 248), np.float32) if scene.lighting.sunny else np.array((214, 216, 220), np.float32)
    if scene.night is not None:
        # At night clouds are faint, lit from below by the town, and darker where thick.
        white = np.array(scene.night.cloud, np.float32)
        amount = amount * 0.55
        thickness = thickness * 1.6
    cloud = white * (1 - 0.28 * thickness)[..., None]
    sky = sky * (1 - amount[..., None]) + cloud * amount[..., None]
    canvas.rgb[:] = sky


def paint_ground(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    """Road, markings, curbs and pavement, computed per pixel from where each pixel lands on the ground."""
    cam, street = scene.camera, scene.street
    first_row = math.floor(cam.horizon) + 1
    rows = np.arange(first_row, canvas.height, dtype=np.float32)[:, None] + 0.5
    cols = np.arange(canvas.width, dtype=np.float32)[None, :] + 0.5
    z = cam.focal * cam.height / (rows - cam.horizon)
    x = cam.x + (cols - cam.cx) * z / cam.focal
    z = np.broadcast_to(z, x.shape)
    ax = np.abs(x)
    noise = ValueNoise(rng)
    blotch = noise.fractal(x / 3.0, z / 3.0, octaves=3) - 0.5
    fade = np.clip(1 - z / 70.0, 0.15, 1)
    fine = (noise.sample(x * 6.0 + 91.0, z * 6.0 + 13.0) - 0.5) * fade

    asphalt = np.array(jittered(rng, (86, 87, 90), 0.12), np.float32)
    color = np.empty((*x.shape, 3), np.float32)
    road = ax <= street.half_road
    shade = 1 + 0.16 * blotch + 0.22 * fine
    # Tyres polish two darker tracks in every lane.
    lane_pos = np.mod(x + street.half_road, street.lane_width) / street.lane_width
    tracks = (np.abs(lane_pos - 0.28) < 0.07) | (np.abs(lane_pos - 0.72) < 0.07)
    shade = np.where(tracks & road, shade * 0.95, shade)
    color[:] = asphalt * shade[..., None]

    paint = np.array((222, 222, 214), np.float32) * (0.82 + 0.3 * fine[..., None])
    marking = np.zeros(x.shape, bool)
    edge = street.half_road - 0.35
    marking |= np.abs(ax - edge) < 0.07
    dash_period, dash_length = rng.uniform(9, 13), rng.uniform(3, 4.5)
    dashed = np.mod(z + rng.uniform(0, 10), dash_period) < dash_length
    for k in range(1, street.lanes):
        boundary = -street.half_road + k * street.lane_width
        centre_line = k * 2 == street.lanes
        if centre_line:
            marking |= np.abs(x - boundary) < 0.07
        else:
            marking |= (np.abs(x - boundary) < 0.07) & dashed
    if street.crosswalk is not None:
        zebra = (z > street.crosswalk) & (z < street.crosswalk + 4.0) & (ax < street.half_road - 0.3)
        marking |= zebra & (np.mod(x, 1.0) < 0.5)
        marking &= ~(zebra & (np.mod(x, 1.0) >= 0.5))
    marking &= road
    color[marking] = paint[marking]

    curb = (ax > street.half_road) & (ax <= street.half_road + 0.3)
    curb_color = np.array((168, 166, 158), np.float32)
    color[curb] = (curb_color * (1 + 0.1 * blotch[..., None] + 0.15 * fine[..., None]))[curb]
    curb_face = (ax > street.half_road - 0.05) & (ax <= street.half_road)
    color[curb_face] = curb_color * 0.55

    walk = ax > street.half_road + 0.3
    paving = np.array(jittered(rng, (150, 146, 138), 0.1), np.float32)
    tile = rng.uniform(0.5, 1.0)
    joint_width = 0.03 + 0.02 * np.clip(z / 15.0, 0, 2)
    joints = (np.mod(z, tile) < joint_width) | (np.mod(ax - street.half_road, tile) < joint_width)
    joint_strength = np.clip(1 - z / 45.0, 0, 1) * 0.22
    walk_shade = 1 + 0.12 * blotch + 0.18 * fine - joints * joint_strength
    color[walk] = (paving * walk_shade[..., None])[walk]

    canvas.rgb[first_row:] = color
    canvas.depth[first_row:] = z


@dataclass
class Building:
    side: int  # -1 left, +1 right
    z0: float
    z1: float
    height: float
    color: Color
    floor_height: float
    window_width: float
    window_height: float
    window_spacing: float
    shop: bool
    awning: Color | None


def plan_buildings(rng: np.random.Generator, side: int, end: float) -> list[Building]:
    buildings, z = [], -6.0
    while z < end:
        length = rng.uniform(8, 26)
        floor_height = rng.uniform(2.9, 3.5)
        buildings.append(
            Building(
                side=side,
                z0=z,
                z1=min(z + length, end),
                height=rng.uniform(7, 24),
                color=jittered(rng, FACADE_COLORS[rng.integers(len(FACADE_COLORS))], 0.08),
                floor_height=floor_height,
                window_width=rng.uniform(0.9, 1.5),
                window_height=rng.uniform(1.3, 1.9),
                window_spacing=rng.uniform(2.2, 3.4),
                shop=rng.random() < 0.6,
                awning=AWNING_COLORS[rng.integers(len(AWNING_COLORS))] if rng.random() < 0.45 else None,
            )
        )
        z += length
    return buildings


def facade_depth(canvas: Canvas, scene: Scene, plane_x: float) -> np.ndarray:
    """Depth of each pixel on the vertical plane ``x = plane_x`` (constant per column)."""
    cam = scene.camera
    cols = np.arange(canvas.width, dtype=np.float32) + 0.5
    offset = cols - cam.cx
    with np.errstate(divide="ignore"):
        z = cam.focal * (plane_x - cam.x) / offset
    z = np.where(z > 0, z, np.inf).astype(np.float32)
    return np.broadcast_to(z[None, :], (canvas.height, canvas.width))


def draw_building(canvas: Canvas, scene: Scene, building: Building, rng: np.random.Generator) -> None:
    cam, light = scene.camera, scene.lighting
    x = building.side * scene.street.facade
    depth = facade_depth(canvas, scene, x)
    facing = light.on((-building.side, 0.0, 0.0))
    z0, z1, top = building.z0, building.z1, building.height
    wall = building.color

    # The building's near side wall shows where it stands taller than its nearer neighbour.
    side_wall = canvas.layer()
    side_wall.polygon(
        cam.polygon([(x, 0, z0), (x + building.side * 14, 0, z0), (x + building.side * 14, top, z0), (x, top, z0)]),
        wall,
    )
    canvas.composite(side_wall, max(z0, NEAR_PLANE_M), light=light.on((0.0, 0.0, -1.0)) * 0.92, texture=0.03)

    front = canvas.layer()
    front.polygon(cam.polygon([(x, 0, z0), (x, 0, z1), (x, top, z1), (x, top, z0)]), wall)
    cornice = scaled(wall, 0.8 if rng.random() < 0.5 else 1.12)
    front.polygon(cam.polygon([(x, top - 0.45, z0), (x, top - 0.45, z1), (x, top, z1), (x, top, z0)]), cornice)
    canvas.composite(front, depth, light=facing, vertical=0.12, texture=0.04)

    details = canvas.layer()
    ground_floor = rng.uniform(3.4, 4.4) if building.shop else building.floor_height
    frame = scaled(wall, rng.uniform(0.7, 1.25))
    glass_base = mixed((34, 40, 50), scene.sky_horizon, rng.uniform(0.1, 0.35))
    floors = max(0, int((top - ground_floor - 1.0) // building.floor_height))
    spacing = building.window_spacing
    columns = max(1, int((z1 - z0 - 1.0) // spacing))
    margin = (z1 - z0 - columns * spacing) / 2
    ww, wh = building.window_width, building.window_height
    for floor in range(floors):
        sill = ground_floor + floor * building.floor_height + 0.8
        for column in range(columns):
            centre = z0 + margin + (column + 0.5) * spacing
            if centre < 1.0:
                continue
            a, b = centre - ww / 2, centre + ww / 2
            details.polygon(
                cam.polygon(
                    [
                        (x, sill - 0.1, a - 0.1),
                        (x, sill - 0.1, b + 0.1),
                        (x, sill + wh + 0.1, b + 0.1),
                        (x, sill + wh + 0.1, a - 0.1),
                    ]
                ),
                frame,
            )
            roll = rng.random()
            if roll < 0.15:
                glass = jittered(rng, (196, 184, 160), 0.1)  # drawn curtains
            elif roll < 0.35:
                glass = mixed(glass_base, scene.sky_top, 0.5)  # sky reflected
            else:
                glass = jittered(rng, glass_base, 0.15)
            glow = None if scene.night is None else window_glow(scene.night, curtains=roll < 0.15)
            # Glass shows reflections, not the sunlight on the wall: undo the facade's lighting factor.
            details.polygon(
                cam.polygon([(x, sill, a), (x, sill, b), (x, sill + wh, b), (x, sill + wh, a)]),
                scaled(glass, 1 / facing),
                glow,
            )
            if centre < 40:
                mullion = scaled(frame, 0.9)
                mid = (a + b) / 2
                details.polygon(
                    cam.polygon(
                        [
                            (x, sill, mid - 0.04),
                            (x, sill, mid + 0.04),
                            (x, sill + wh, mid + 0.04),
                            (x, sill + wh, mid - 0.04),
                        ]
                    ),
                    mullion,
                )
    if building.shop:
        sign = jittered(rng, AWNING_COLORS[rng.integers(len(AWNING_COLORS))], 0.2)
        night = scene.night
        # At night most shops are lit: a backlit sign and bright windows that light the pavement.
        shop_lit = night is not None and night.rng.random() < 0.6
        shop_light = jittered(night.rng, (250, 214, 160), 0.12) if night is not None else (0.0, 0.0, 0.0)
        details.polygon(
            cam.polygon([(x, 2.9, z0 + 0.4), (x, 2.9, z1 - 0.4), (x, 3.4, z1 - 0.4), (x, 3.4, z0 + 0.4)]),
            sign,
            scaled(mixed(sign, (255, 255, 255), 0.3), 1.4) if shop_lit else None,
        )
        pane = rng.uniform(2.0, 3.2)
        start = z0 + 0.6
        while start + pane < z1 - 0.5:
            if start + pane > 1.0:
                details.polygon(
                    cam.polygon([(x, 0.35, start), (x, 0.35, start + pane), (x, 2.7, start + pane), (x, 2.7, start)]),
                    scaled(mixed((28, 32, 38), scene.sky_horizon, rng.uniform(0.05, 0.3)), 1 / facing),
                    scaled(shop_light, night.rng.uniform(0.25, 0.42)) if shop_lit and night else None,
                )
                if shop_lit and night is not None:
                    # The display below the pane is darker than the lit room behind it.
                    details.polygon(
                        cam.polygon(
                            [(x, 0.35, start), (x, 0.35, start + pane), (x, 1.0, start + pane), (x, 1.0, start)]
                        ),
                        (20, 20, 22),
                        scaled(shop_light, night.rng.uniform(0.08, 0.2)),
                    )
                    night.lights.append(
                        Light(
                            (x - building.side * 0.3, 1.5, start + pane / 2),
                            scaled(shop_light, 0.9 * pane / 255),
                            (-float(building.side), -0.25, 0.0),
                            1.0,
                        )
                    )
            start += pane + 0.3
    canvas.composite(details, depth, light=facing, texture=0.03)

    # An awning right over a camera held on the pavement would fill the frame, so awnings start ahead.
    a0, a1 = max(z0 + 0.5, 4.0), z1 - 0.5
    if building.awning is not None and a1 - a0 > 1.0:
        awning = canvas.layer()
        out = -building.side * 1.4
        awning.polygon(
            cam.polygon([(x, 3.0, a0), (x, 3.0, a1), (x + out, 2.45, a1), (x + out, 2.45, a0)]), building.awning
        )
        awning.polygon(
            cam.polygon([(x + out, 2.45, a0), (x + out, 2.45, a1), (x + out, 2.2, a1), (x + out, 2.2, a0)]),
            scaled(building.awning, 0.8),
        )
        canvas.composite(awning, (a0 + a1) / 2, light=facing * 0.9, texture=0.03)


def draw_far_end(canvas: Canvas, scene: Scene, end: float, rng: np.random.Generator) -> None:
    """Buildings across the far end of the street close the view, as a real street's distance does."""
    cam = scene.camera
    span = scene.street.facade + 30
    x = -span
    while x < span:
        width = rng.uniform(8, 20)
        height = rng.uniform(10, 35)
        layer = canvas.layer()
        color = jittered(rng, FACADE_COLORS[rng.integers(len(FACADE_COLORS))], 0.08)
        layer.polygon(
            cam.polygon([(x, 0, end), (x + width, 0, end), (x + width, height, end), (x, height, end)]), color
        )
        if scene.night is not None:
            # Distant blocks are dark shapes at night, dotted with a few lit windows.
            for floor in range(int((height - 1.5) // 3.2)):
                for column in range(int((width - 1.0) // 2.6)):
                    if scene.night.rng.random() < scene.night.window_share * 0.8:
                        wx, wy = x + 1.0 + column * 2.6, 1.2 + floor * 3.2
                        layer.polygon(
                            cam.polygon(
                                [(wx, wy, end), (wx + 1.2, wy, end), (wx + 1.2, wy + 1.5, end), (wx, wy + 1.5, end)]
                            ),
                            (30, 30, 34),
                            window_glow(scene.night, curtains=False),
                        )
        canvas.composite(layer, end, light=scene.lighting.on((0.0, 0.0, -1.0)), texture=0.03)
        x += width


# ---------------------------------------------------------------- street furniture


@dataclass
class Tree(Drawable):
    x: float
    z: float
    trunk_height: float
    crown_radius: float
    leaves: Color
    seed: int

    def shadows(self, scene: Scene) -> Shadows:
        sx, sz = scene.lighting.shadow_dir
        reach = scene.lighting.shadow_length * (self.trunk_height + self.crown_radius)
        crown = ground_ellipse(self.x + sx * reach, self.z + sz * reach, self.crown_radius, self.crown_radius * 0.9)
        trunk_end = scene.lighting.shadow_length * self.trunk_height
        trunk = [
            (self.x - 0.12, 0.0, self.z),
            (self.x + 0.12, 0.0, self.z),
            (self.x + sx * trunk_end + 0.12, 0.0, self.z + sz * trunk_end),
            (self.x + sx * trunk_end - 0.12, 0.0, self.z + sz * trunk_end),
        ]
        return Shadows([ground_ellipse(self.x, self.z, 0.3, 0.3)], [crown, trunk])

    def draw(self, canvas: Canvas, scene: Scene, object_id: int) -> int:
        cam, light = scene.camera, scene.lighting
        rng = np.random.default_rng(self.seed)
        ppm = cam.pixels_per_metre(self.z)
        layer = canvas.layer()
        base = cam.project(self.x, 0, self.z)
        fork = cam.project(self.x, self.trunk_height + 0.4, self.z)
        bark = jittered(rng, (74, 60, 46), 0.15)
        layer.limb(base, fork, 0.3 * ppm, 0.18 * ppm, bark)
        for _ in range(3):
            tip = cam.project(
                self.x + rng.uniform(-0.8, 0.8),
                self.trunk_height + rng.uniform(0.8, 1.6),
                self.z + rng.uniform(-0.5, 0.5),
            )
            layer.limb(fork, tip, 0.12 * ppm, 0.06 * ppm, scaled(bark, 0.9))
        centre_y = self.trunk_height + self.crown_radius * 0.9
        r = self.crown_radius
        sunward = -light.lit_side if light.sunny else 0.0  # image-x direction the sun comes from
        # The crown's shadowed core first, then clumps lit from above and from the sun's side,
        # then single leaves, so it reads as foliage rather than a disc.
        u, v = cam.project(self.x, centre_y, self.z)
        layer.ellipse((u, v), r * ppm * 0.85, r * ppm * 0.7, scaled(self.leaves, 0.55))
        clumps = []
        for _ in range(60):
            dx, dy = rng.uniform(-1, 1, 2)
            if dx * dx + dy * dy > 1:
                continue
            clumps.append((dy, dx, rng.uniform(0.22, 0.42) * r))
        for dy, dx, size in sorted(clumps):
            u, v = cam.project(self.x + dx * r * 0.9, centre_y + dy * r * 0.72, self.z)
            brightness = 0.72 + 0.22 * dy + 0.2 * dx * sunward + rng.uniform(-0.08, 0.08)
            layer.ellipse((u, v), size * ppm, size * ppm * 0.85, scaled(self.leaves, brightness))
        for _ in range(140):
            dx, dy = rng.uniform(-1, 1, 2)
            if dx * dx + dy * dy > 1:
                continue
            u, v = cam.project(self.x + dx * r * 1.02, centre_y + dy * r * 0.8, self.z)
            size = rng.uniform(0.05, 0.12) * r * ppm
            brightness = 0.75 + 0.25 * dy + 0.15 * dx * sunward + rng.uniform(-0.25, 0.25)
            layer.ellipse((u, v), size, size, scaled(self.leaves, brightness))
        return canvas.composite(layer, self.z, object_id, light=light.ambient + 0.5 * light.diffuse, texture=0.08)


@dataclass
class Pole(Drawable):
    x: float
    z: float
    kind: str  # "lamp" or "sign"
    seed: int

    def shadows(self, scene: Scene) -> Shadows:
        sx, sz = scene.lighting.shadow_dir
        height = 7.0 if self.kind == "lamp" else 2.6
        reach = scene.lighting.shadow_length * height
        pole = [
            (self.x - 0.06, 0.0, self.z),
            (self.x + 0.06, 0.0, self.z),
            (self.x + sx * reach + 0.06, 0.0, self.z + sz * reach),
            (self.x + sx * reach - 0.06, 0.0, self.z + sz * reach),
        ]
        return Shadows([], [pole])

    def draw(self, canvas: Canvas, scene: Scene, object_id: int) -> int:
        cam = scene.camera
        rng = np.random.default_rng(self.seed)
        ppm = cam.pixels_per_metre(self.z)
        layer = canvas.layer()
        base = cam.project(self.x, 0, self.z)
        metal = jittered(rng, (84, 90, 96), 0.15)
        if self.kind == "lamp":
            top = cam.project(self.x, 7.0, self.z)
            layer.limb(base, top, 0.18 * ppm, 0.1 * ppm, metal)
            reach = -math.copysign(1.6, self.x)
            arm_end = cam.project(self.x + reach, 7.1, self.z)
            layer.limb(top, arm_end, 0.08 * ppm, 0.08 * ppm, metal)
            head = cam.project(self.x + reach, 7.0, self.z)
            night = scene.night
            layer.ellipse(head, 0.35 * ppm, 0.1 * ppm, scaled(metal, 0.7))
            if night is not None:
                # The lamp's lens under the head: what glows, and where its light comes from.
                lens = cam.project(self.x + reach, 6.93, self.z)
                layer.ellipse(lens, 0.36 * ppm, 0.08 * ppm, (250, 240, 220), night.lamp_glow)
                night.lights.append(Light((self.x + reach, 6.85, self.z), night.lamp, (0.0, -1.0, 0.0), 4.0))
        else:
            top = cam.project(self.x, 2.6, self.z)
            layer.limb(base, top, 0.07 * ppm, 0.07 * ppm, (150, 152, 156))
            centre = cam.project(self.x, 2.35, self.z)
            if rng.random() < 0.5:
                layer.ellipse(centre, 0.32 * ppm, 0.32 * ppm, (186, 30, 32))
                layer.ellipse(centre, 0.22 * ppm, 0.22 * ppm, (232, 232, 228))
            else:
                half = 0.3 * ppm
                u, v = centre
                layer.polygon(
                    [(u - half, v - half), (u + half, v - half), (u + half, v + half), (u - half, v + half)],
                    (30, 74, 160),
                )
                layer.polygon(
                    [
                        (u - half * 0.3, v - half * 0.7),
                        (u + half * 0.3, v - half * 0.7),
                        (u + half * 0.3, v + half * 0.7),
                        (u - half * 0.3, v + half * 0.7),
                    ],
                    (232, 232, 228),
                )
        light = scene.lighting.ambient + 0.5 * scene.lighting.diffuse
        return canvas.composite(layer, self.z, object_id, light=light, lateral=0.3 * scene.lighting.lit_side)


# ---------------------------------------------------------------- cars


@dataclass
class Car(Drawable):
    x: float
    z: float  # near end
    length: float
    width: float
    height: float
    belt: float
    profile: tuple[float, float, float, float]  # cabin: near bottom, near top, far top, far bottom offsets
    color: Color
    facing_away: bool
    parked: bool = False
    label: int | None = CAR

    @property
    def far(self) -> float:
        return self.z + self.length

    def footprint(self, margin: float = 0.0) -> list[Point]:
        xl, xr = self.x - self.width / 2 - margin, self.x + self.width / 2 + margin
        return [(xl, self.z - margin), (xr, self.z - margin), (xr, self.far + margin), (xl, self.far + margin)]

    def shadows(self, scene: Scene) -> Shadows:
        contact = [(x, 0.0, z) for x, z in self.footprint(0.08)]
        sx, sz = scene.lighting.shadow_dir
        reach = scene.lighting.shadow_length * self.height * 0.85
        shifted = [(x + sx * reach, z + sz * reach) for x, z in self.footprint(-0.1)]
        hull = convex_hull(self.footprint(0.0) + shifted)
        return Shadows([contact], [[(x, 0.0, z) for x, z in hull]])

    def draw(self, canvas: Canvas, scene: Scene, object_id: int) -> int:
        cam, light = scene.camera, scene.lighting
        layer = canvas.layer()
        xl, xr, zn, zf = self.x - self.width / 2, self.x + self.width / 2, self.z, self.far
        belt, top = self.belt, self.height
        nb, nt, ft, fb = self.profile
        paint = self.color
        glass: Color = mixed((22, 26, 34), scene.sky_horizon, 0.18)
        tyre: Color = (20, 20, 22)
        shade = light.shade if scene.in_shade(self.x, (zn + zf) / 2) else (1.0, 1.0, 1.0)

        def lit(color: Color, normal: Point3) -> Color:
            return scaled(color, light.on(normal) / (light.ambient + 0.5 * light.diffuse))

        side_x = xl if cam.x < xl else xr if cam.x > xr else None
        if side_x is not None:
            normal: Point3 = (-1.0 if side_x == xl else 1.0, 0.0, 0.0)
            body = lit(paint, normal)
            layer.polygon(
                cam.polygon([(side_x, 0.2, zn + 0.1), (side_x, 0.2, zf - 0.1), (side_x, belt, zf), (side_x, belt, zn)]),
                body,
            )
            layer.polygon(
                cam.polygon(
                    [
                        (side_x, 0.2, zn + 0.1),
                        (side_x, 0.2, zf - 0.1),
                        (side_x, 0.34, zf - 0.05),
                        (side_x, 0.34, zn + 0.05),
                    ]
                ),
                scaled(body, 0.6),
            )
            inset = 0.1 if side_x == xl else -0.1
            cabin_x = side_x + inset
            layer.polygon(
                cam.polygon(
                    [
                        (cabin_x, belt, zn + nb),
                        (cabin_x, top, zn + nt),
                        (cabin_x, top, zf - ft),
                        (cabin_x, belt, zf - fb),
                    ]
                ),
                body,
            )
            layer.polygon(
                cam.polygon(
                    [
                        (cabin_x, belt + 0.04, zn + nb + 0.1),
                        (cabin_x, top - 0.06, zn + nt + 0.06),
                        (cabin_x, top - 0.06, zf - ft - 0.06),
                        (cabin_x, belt + 0.04, zf - fb - 0.1),
                    ]
                ),
                glass,
            )
            pillar = (zn + nt + zf - ft) / 2
            layer.polygon(
                cam.polygon(
                    [
                        (cabin_x, belt, pillar - 0.07),
                        (cabin_x, top, pillar - 0.07),
                        (cabin_x, top, pillar + 0.07),
                        (cabin_x, belt, pillar + 0.07),
                    ]
                ),
                body,
            )
            layer.polygon(
                cam.polygon(
                    [
                        (side_x, 0.7, (zn + zf) / 2 - 0.02),
                        (side_x, 0.7, (zn + zf) / 2 + 0.02),
                        (side_x, 0.3, (zn + zf) / 2 + 0.02),
                        (side_x, 0.3, (zn + zf) / 2 - 0.02),
                    ]
                ),
                scaled(body, 0.7),
            )
            for axle in (zn + 0.8, zf - 0.8):
                for radius, color in ((0.38, (12, 12, 12)), (0.32, tyre), (0.19, (150, 152, 156))):
                    ring = [
                        (side_x, 0.32 + radius * math.sin(t), axle + radius * math.cos(t))
                        for t in np.linspace(0, 2 * math.pi, 18, endpoint=False)
                    ]
                    if radius == 0.38:
                        ring = [p for p in ring if p[1] >= 0.25] + [
                            (side_x, 0.25, axle - 0.38),
                            (side_x, 0.25, axle + 0.38),
                        ]
                        ring = sorted(ring, key=lambda p: math.atan2(p[1] - 0.25, p[2] - axle))
                    layer.polygon(cam.polygon(ring), color)
        if cam.height > top:
            roof = lit(paint, (0.0, 1.0, 0.0))
            layer.polygon(
                cam.polygon(
                    [
                        (xl + 0.12, top, zn + nt),
                        (xr - 0.12, top, zn + nt),
                        (xr - 0.12, top, zf - ft),
                        (xl + 0.12, top, zf - ft),
                    ]
                ),
                roof,
            )

        # The near end: wheels peeking out below, then the body, the cabin's sloped glass and the lights.
        near = lit(paint, (0.0, 0.0, -1.0))
        for a, b in ((xl + 0.05, xl + 0.3), (xr - 0.3, xr - 0.05)):
            layer.polygon(
                cam.polygon([(a, 0.0, zn + 0.7), (b, 0.0, zn + 0.7), (b, 0.35, zn + 0.7), (a, 0.35, zn + 0.7)]), tyre
            )
        layer.polygon(
            cam.polygon(
                [
                    (xl, 0.22, zn),
                    (xr, 0.22, zn),
                    (xr, belt - 0.05, zn),
                    (xr - 0.06, belt, zn),
                    (xl + 0.06, belt, zn),
                    (xl, belt - 0.05, zn),
                ]
            ),
            near,
        )
        layer.polygon(
            cam.polygon(
                [
                    (xl + 0.08, belt, zn + nb),
                    (xr - 0.08, belt, zn + nb),
                    (xr - 0.2, top, zn + nt),
                    (xl + 0.2, top, zn + nt),
                ]
            ),
            near,
        )
        layer.polygon(
            cam.polygon(
                [
                    (xl + 0.16, belt + 0.04, zn + nb + 0.03),
                    (xr - 0.16, belt + 0.04, zn + nb + 0.03),
                    (xr - 0.26, top - 0.06, zn + nt - 0.03),
                    (xl + 0.26, top - 0.06, zn + nt - 0.03),
                ]
            ),
            mixed(glass, scene.sky_top, 0.25),
        )
        layer.polygon(
            cam.polygon([(xl, 0.22, zn - 0.02), (xr, 0.22, zn - 0.02), (xr, 0.4, zn - 0.02), (xl, 0.4, zn - 0.02)]),
            scaled(near, 0.55),
        )
        night = scene.night
        # Parked cars mostly stand dark at night; driving ones have their lights on.
        lights_on = night is not None and (not self.parked or night.rng.random() < 0.2)
        glow: Color | None = None
        if self.facing_away:
            lamp: Color = (176, 26, 28)
            lamp_rows, plate_rows = (belt - 0.25, belt - 0.08), (0.44, 0.56)
            if lights_on:
                glow = (420, 36, 30)
        else:
            lamp = (236, 236, 226)
            lamp_rows, plate_rows = (belt - 0.24, belt - 0.12), (0.26, 0.38)
            layer.polygon(
                cam.polygon(
                    [
                        (self.x - 0.4, 0.45, zn - 0.02),
                        (self.x + 0.4, 0.45, zn - 0.02),
                        (self.x + 0.4, belt - 0.1, zn - 0.02),
                        (self.x - 0.4, belt - 0.1, zn - 0.02),
                    ]
                ),
                (30, 30, 32),
            )
            if lights_on:
                glow = (2000, 1960, 1820)
        for a, b in ((xl + 0.05, xl + 0.38), (xr - 0.38, xr - 0.05)):
            layer.polygon(
                cam.polygon(
                    [
                        (a, lamp_rows[0], zn - 0.02),
                        (b, lamp_rows[0], zn - 0.02),
                        (b, lamp_rows[1], zn - 0.02),
                        (a, lamp_rows[1], zn - 0.02),
                    ]
                ),
                lamp,
                glow,
            )
            if glow is not None and night is not None:
                # Headlights throw a beam down the road towards the camera; tail lights a red smear.
                beam = (3.0, 2.9, 2.7) if not self.facing_away else (0.5, 0.02, 0.01)
                night.lights.append(
                    Light(((a + b) / 2, sum(lamp_rows) / 2, zn - 0.1), scaled(beam, 20), (0.0, -0.12, -1.0), 8.0)
                )
        layer.polygon(
            cam.polygon(
                [
                    (self.x - 0.26, plate_rows[0], zn - 0.03),
                    (self.x + 0.26, plate_rows[0], zn - 0.03),
                    (self.x + 0.26, plate_rows[1], zn - 0.03),
                    (self.x - 0.26, plate_rows[1], zn - 0.03),
                ]
            ),
            (232, 232, 226),
        )
        return canvas.composite(layer, self.z, object_id, light=shade, vertical=0.15, texture=0.02)


CAR_SHAPES = {
    # height, belt line, cabin profile seen from the back (rear window bottom/top, windscreen top/bottom)
    "sedan": (1.45, 0.9, (0.45, 1.05, 1.6, 0.95)),
    "hatchback": (1.48, 0.92, (0.12, 0.45, 1.5, 0.9)),
    "suv": (1.7, 1.0, (0.08, 0.3, 1.35, 0.85)),
}


def make_car(rng: np.random.Generator, x: float, z: float, facing_away: bool, parked: bool = False) -> Car:
    kind = ("sedan", "hatchback", "suv")[rng.integers(3)]
    height, belt, (rb, rt, wt, wb) = CAR_SHAPES[kind]
    # Seen from the front the windscreen is the near slope and the rear window the far one.
    profile = (rb, rt, wt, wb) if facing_away else (wb, wt, rt, rb)
    return Car(
        x=x,
        z=z,
        length=rng.uniform(4.0, 4.8),
        width=rng.uniform(1.72, 1.9),
        height=height * rng.uniform(0.97, 1.03),
        belt=belt,
        profile=profile,
        color=jittered(rng, CAR_COLORS[rng.integers(len(CAR_COLORS))], 0.06),
        facing_away=facing_away,
        parked=parked,
    )


# ---------------------------------------------------------------- people


@dataclass(frozen=True)
class Outfit:
    skin: Color
    hair: Color
    hair_style: str  # short, long, bald, cap
    cap: Color
    top: Color
    long_sleeves: bool
    bottom: Color
    bottom_kind: str  # trousers, shorts, skirt
    shoes: Color
    bag: str  # none, backpack, handbag, shoulder
    bag_color: Color


def make_outfit(rng: np.random.Generator) -> Outfit:
    def pick(colors: list[Color], amount: float = 0.12) -> Color:
        return jittered(rng, colors[rng.integers(len(colors))], amount)

    hair_style = str(rng.choice(["short", "long", "bald", "cap"], p=[0.5, 0.34, 0.06, 0.1]))
    bottom_kind = str(rng.choice(["trousers", "shorts", "skirt"], p=[0.7, 0.15, 0.15]))
    return Outfit(
        skin=pick(SKIN_TONES, 0.06),
        hair=pick(HAIR_COLORS),
        hair_style=hair_style,
        cap=pick(TOP_COLORS),
        top=pick(TOP_COLORS),
        long_sleeves=bool(rng.random() < 0.6),
        bottom=pick(BOTTOM_COLORS),
        bottom_kind=bottom_kind,
        shoes=pick(SHOE_COLORS),
        bag=str(rng.choice(["none", "backpack", "handbag", "shoulder"], p=[0.5, 0.2, 0.15, 0.15])),
        bag_color=pick(BAG_COLORS),
    )


@dataclass
class Pedestrian(Drawable):
    x: float
    z: float
    height_m: float
    view: str  # front, back, left, right
    walking: bool
    phase: float
    outfit: Outfit
    label: int | None = PERSON

    def shadows(self, scene: Scene) -> Shadows:
        contact = ground_ellipse(self.x, self.z, 0.28, 0.22)
        if scene.in_shade(self.x, self.z):
            return Shadows([contact], [])
        sx, sz = scene.lighting.shadow_dir
        reach = scene.lighting.shadow_length * self.height_m
        px, pz = -sz, sx  # across the shadow
        w = 0.2
        body = [
            (self.x + px * w, 0.0, self.z + pz * w),
            (self.x + sx * reach * 0.75 + px * w * 1.2, 0.0, self.z + sz * reach * 0.75 + pz * w * 1.2),
            (self.x + sx * reach, 0.0, self.z + sz * reach),
            (self.x + sx * reach * 0.75 - px * w * 1.2, 0.0, self.z + sz * reach * 0.75 - pz * w * 1.2),
            (self.x - px * w, 0.0, self.z - pz * w),
        ]
        return Shadows([contact], [body])

    def draw(self, canvas: Canvas, scene: Scene, object_id: int) -> int:
        cam, light = scene.camera, scene.lighting
        foot_u, foot_v = cam.project(self.x, 0, self.z)
        size = self.height_m * cam.pixels_per_metre(self.z)
        layer = canvas.layer()

        def at(bx: float, by: float) -> Point:
            return foot_u + bx * size, foot_v - by * size

        if self.view in ("left", "right"):
            draw_side_figure(layer, at, size, self, 1.0 if self.view == "right" else -1.0)
        else:
            draw_front_figure(layer, at, size, self)
        base = (1.0, 1.0, 1.0)
        if scene.in_shade(self.x, self.z):
            base = light.shade
        lateral = 0.35 * light.lit_side if light.sunny else 0.0
        return canvas.composite(layer, self.z, object_id, light=base, lateral=lateral, vertical=0.12, texture=0.04)


def draw_side_figure(
    layer: Layer, at: Callable[[float, float], Point], size: float, person: Pedestrian, facing: float
) -> None:
    """A walker or stander in profile; body units are fractions of the person's height."""
    o = person.outfit
    s = math.sin(person.phase) if person.walking else 0.0
    swing = 0.42 if person.walking else 0.05

    def leg(phase_sign: float) -> tuple[Point, Point, Point, Point]:
        thigh = swing * s * phase_sign + (0.0 if person.walking else 0.04 * phase_sign)
        flex = 0.08 + (
            0.5 * max(0.0, -math.cos(person.phase + (0 if phase_sign > 0 else math.pi))) if person.walking else 0.0
        )
        hip = (0.0, 0.53)
        knee = (hip[0] + 0.245 * math.sin(thigh), hip[1] - 0.245 * math.cos(thigh))
        shin = thigh - flex
        ankle = (knee[0] + 0.245 * math.sin(shin), knee[1] - 0.245 * math.cos(shin))
        toe = (ankle[0] + 0.11, ankle[1] - 0.03)
        return hip, knee, ankle, toe

    legs = [leg(1.0), leg(-1.0)]
    lift = min(p[2][1] for p in legs) - 0.045  # lower the body so the planted foot touches the ground

    def body(point: Point) -> Point:
        return at(facing * point[0], point[1] - lift)

    def arm(phase_sign: float) -> tuple[Point, Point, Point]:
        upper = -0.35 * s * phase_sign if person.walking else 0.04
        bend = 0.25 + (0.25 * max(0.0, upper) if person.walking else 0.1)
        shoulder = (0.015, 0.8)
        elbow = (shoulder[0] + 0.17 * math.sin(upper), shoulder[1] - 0.17 * math.cos(upper))
        fore = upper + bend
        wrist = (elbow[0] + 0.15 * math.sin(fore), elbow[1] - 0.15 * math.cos(fore))
        return shoulder, elbow, wrist

    arms = [arm(-1.0), arm(1.0)]  # the far arm swings with the near leg
    lower_skin = o.bottom_kind != "trousers"

    def draw_leg(points: tuple[Point, Point, Point, Point], shade: float) -> None:
        hip, knee, ankle, toe = points
        thigh_color = scaled(o.skin if o.bottom_kind == "skirt" else o.bottom, shade)
        shin_color = scaled(o.skin if lower_skin else o.bottom, shade)
        layer.limb(body(hip), body(knee), 0.085 * size, 0.062 * size, thigh_color)
        layer.limb(body(knee), body(ankle), 0.06 * size, 0.045 * size, shin_color)
        layer.limb(
            body((ankle[0] - 0.02, ankle[1] - 0.005)), body(toe), 0.045 * size, 0.035 * size, scaled(o.shoes, shade)
        )

    def draw_arm(points: tuple[Point, Point, Point], shade: float) -> None:
        shoulder, elbow, wrist = points
        layer.limb(body(shoulder), body(elbow), 0.058 * size, 0.046 * size, scaled(o.top, shade))
        fore = o.top if o.long_sleeves else o.skin
        layer.limb(body(elbow), body(wrist), 0.046 * size, 0.036 * size, scaled(fore, shade))
        layer.ellipse(body((wrist[0] + 0.01, wrist[1] - 0.02)), 0.024 * size, 0.028 * size, scaled(o.skin, shade))
        if o.bag == "handbag" and shade == 1.0:
            hx, hy = wrist[0] + 0.01, wrist[1] - 0.05
            layer.polygon(
                [
                    body((hx - 0.05, hy)),
                    body((hx + 0.05, hy)),
                    body((hx + 0.055, hy - 0.1)),
                    body((hx - 0.055, hy - 0.1)),
                ],
                o.bag_color,
            )

    draw_arm(arms[0], 0.78)
    draw_leg(legs[1], 0.8)
    if o.bag == "backpack":
        layer.polygon([body((-0.07, 0.79)), body((-0.15, 0.77)), body((-0.16, 0.58)), body((-0.06, 0.57))], o.bag_color)
    draw_leg(legs[0], 1.0)
    torso = [
        (-0.06, 0.815),
        (0.05, 0.815),
        (0.07, 0.74),
        (0.055, 0.6),
        (0.06, 0.5),
        (-0.065, 0.5),
        (-0.06, 0.6),
        (-0.075, 0.72),
    ]
    layer.polygon([body(p) for p in torso], o.top)
    if o.bottom_kind == "skirt":
        layer.polygon([body((-0.065, 0.53)), body((0.06, 0.53)), body((0.12, 0.36)), body((-0.11, 0.36))], o.bottom)
    else:
        layer.polygon([body((-0.065, 0.52)), body((0.06, 0.52)), body((0.05, 0.46)), body((-0.06, 0.46))], o.bottom)
    if o.bag == "shoulder":
        layer.limb(body((0.0, 0.81)), body((-0.05, 0.52)), 0.012 * size, 0.012 * size, scaled(o.bag_color, 0.8))
        layer.polygon([body((-0.1, 0.56)), body((0.02, 0.56)), body((0.02, 0.45)), body((-0.1, 0.45))], o.bag_color)
    layer.limb(body((0.01, 0.8)), body((0.015, 0.865)), 0.045 * size, 0.04 * size, o.skin)
    draw_head(layer, lambda bx, by: body((bx, by)), size, o, profile=True)
    draw_arm(arms[1], 1.0)


def draw_front_figure(layer: Layer, at: Callable[[float, float], Point], size: float, person: Pedestrian) -> None:
    """A walker or stander seen from the front or the back."""
    o = person.outfit
    s = math.sin(person.phase) if person.walking else 0.0
    back = person.view == "back"
    lower_skin = o.bottom_kind != "trousers"
    # The foot stepping towards the camera sits lower in the image; the other one is lifting.
    feet = [(-0.05, 0.04 - 0.02 * s), (0.05, 0.04 + 0.02 * s)] if person.walking else [(-0.045, 0.04), (0.045, 0.04)]
    shoulder_y = 0.815
    for side, foot in zip((-1.0, 1.0), feet, strict=True):
        hip = (side * 0.055, 0.52)
        knee = (side * 0.05, (hip[1] + foot[1]) / 2 + 0.01)
        thigh_color = o.skin if o.bottom_kind == "skirt" else o.bottom
        shin_color = o.skin if lower_skin else o.bottom
        layer.limb(at(*hip), at(*knee), 0.085 * size, 0.065 * size, thigh_color)
        layer.limb(at(*knee), at(*foot), 0.062 * size, 0.046 * size, shin_color)
        layer.ellipse(at(foot[0], foot[1] - 0.015), 0.032 * size, 0.02 * size, o.shoes)
    layer.polygon([at(-0.1, 0.53), at(0.1, 0.53), at(0.075, 0.45), at(-0.075, 0.45)], o.bottom)
    torso = [
        (-0.11, shoulder_y),
        (0.11, shoulder_y),
        (0.1, 0.7),
        (0.085, 0.6),
        (0.1, 0.5),
        (-0.1, 0.5),
        (-0.085, 0.6),
        (-0.1, 0.7),
    ]
    if o.hair_style == "long" and not back:
        # Seen from the front, long hair falls behind the shoulders, so it goes under the torso and neck.
        layer.polygon([at(-0.068, 0.94), at(0.068, 0.94), at(0.075, 0.77), at(-0.075, 0.77)], o.hair)
    layer.polygon([at(*p) for p in torso], o.top)
    for side in (-1.0, 1.0):
        layer.ellipse(at(side * 0.1, shoulder_y - 0.02), 0.035 * size, 0.03 * size, o.top)
    if o.bottom_kind == "skirt":
        layer.polygon([at(-0.1, 0.53), at(0.1, 0.53), at(0.13, 0.36), at(-0.13, 0.36)], o.bottom)
    for side in (-1.0, 1.0):
        # An arm swinging towards or away from the camera looks shorter.
        reach = abs(s) * (0.03 if side * s > 0 else 0.02)
        shoulder = (side * 0.115, 0.8)
        elbow = (side * 0.135, 0.645 + reach)
        wrist = (side * 0.14, 0.5 + 2 * reach)
        layer.limb(at(*shoulder), at(*elbow), 0.055 * size, 0.045 * size, o.top)
        layer.limb(at(*elbow), at(*wrist), 0.045 * size, 0.036 * size, o.top if o.long_sleeves else o.skin)
        layer.ellipse(at(wrist[0], wrist[1] - 0.02), 0.024 * size, 0.03 * size, o.skin)
        if o.bag == "handbag" and side > 0:
            layer.polygon(
                [
                    at(wrist[0] - 0.04, wrist[1] - 0.04),
                    at(wrist[0] + 0.05, wrist[1] - 0.04),
                    at(wrist[0] + 0.055, wrist[1] - 0.14),
                    at(wrist[0] - 0.045, wrist[1] - 0.14),
                ],
                o.bag_color,
            )
    if o.bag == "backpack":
        if back:
            layer.polygon([at(-0.085, 0.79), at(0.085, 0.79), at(0.09, 0.57), at(-0.09, 0.57)], o.bag_color)
        else:
            for side in (-1.0, 1.0):
                layer.limb(at(side * 0.07, 0.81), at(side * 0.075, 0.62), 0.018 * size, 0.018 * size, o.bag_color)
    if o.bag == "shoulder":
        layer.limb(at(-0.08, 0.81), at(0.1, 0.55), 0.014 * size, 0.014 * size, scaled(o.bag_color, 0.8))
        layer.polygon([at(0.08, 0.58), at(0.16, 0.58), at(0.16, 0.47), at(0.08, 0.47)], o.bag_color)
    layer.limb(at(0.0, 0.8), at(0.0, 0.865), 0.05 * size, 0.045 * size, o.skin)
    draw_head(layer, at, size, o, profile=False, back=back)


def draw_head(
    layer: Layer, at: Callable[[float, float], Point], size: float, o: Outfit, profile: bool, back: bool = False
) -> None:
    centre = (0.008, 0.925) if profile else (0.0, 0.925)
    rx, ry = 0.052 * size, 0.066 * size
    if o.hair_style == "long" and (profile or back):
        sweep = (
            [(-0.062, 0.95), (0.0, 0.95), (-0.012, 0.78), (-0.072, 0.77)]
            if profile
            else [(-0.065, 0.94), (0.065, 0.94), (0.07, 0.76), (-0.07, 0.76)]
        )
        layer.polygon([at(*p) for p in sweep], o.hair)
    if back:
        layer.ellipse(at(*centre), rx, ry, o.skin)
        if o.hair_style != "bald":
            layer.ellipse(at(centre[0], centre[1] + 0.004), rx * 1.05, ry * 0.98, o.hair)
    elif profile:
        layer.ellipse(at(*centre), rx, ry, o.skin)
        layer.ellipse(at(centre[0] + 0.05, centre[1] - 0.008), 0.012 * size, 0.014 * size, o.skin)  # nose
        if o.hair_style != "bald":
            layer.ellipse(at(centre[0] - 0.012, centre[1] + 0.018), rx * 0.95, ry * 0.78, o.hair)
    else:
        if o.hair_style != "bald":
            layer.ellipse(at(centre[0], centre[1] + 0.01), rx * 1.08, ry * 1.0, o.hair)
        layer.ellipse(at(centre[0], centre[1] - 0.01), rx * 0.9, ry * 0.86, o.skin)
        for side in (-1.0, 1.0):
            layer.ellipse(
                at(centre[0] + side * 0.018, centre[1] - 0.004), 0.006 * size, 0.004 * size, scaled(o.skin, 0.45)
            )
    if o.hair_style == "cap":
        layer.ellipse(at(centre[0], centre[1] + 0.03), rx * 1.08, ry * 0.6, o.cap)
        brim = 0.055 if profile else 0.0
        layer.ellipse(at(centre[0] + brim, centre[1] + 0.012), rx * 0.8, ry * 0.2, scaled(o.cap, 0.8))


# ---------------------------------------------------------------- layout


def plan_lighting(rng: np.random.Generator) -> Lighting:
    sunny = bool(rng.random() < 0.75)
    angle = rng.uniform(0.35, 1.25) * (1 if rng.random() < 0.5 else -1)  # from the street axis
    toward_camera = rng.random() < 0.6
    sx, sz = math.sin(angle), math.cos(angle) * (-1 if toward_camera else 1)
    elevation = rng.uniform(0.55, 1.05)
    sun = (-sx * math.cos(elevation), math.sin(elevation), -sz * math.cos(elevation))
    if sunny:
        return Lighting(True, (sx, sz), 1 / math.tan(elevation), sun, 0.62, 0.55, (0.58, 0.62, 0.72))
    return Lighting(False, (sx, sz), 0.0, sun, 0.95, 0.08, (0.9, 0.9, 0.92))


def building_shadows(buildings: list[Building], street: Street, lighting: Lighting) -> list[list[Point]]:
    if not lighting.sunny:
        return []
    sx, sz = lighting.shadow_dir
    shadows = []
    for b in buildings:
        if b.side * sx >= 0:  # shadows of this row fall away from the street
            continue
        x = b.side * street.facade
        reach = lighting.shadow_length * b.height
        shadows.append([(x, b.z0), (x, b.z1), (x + sx * reach, b.z1 + sz * reach), (x + sx * reach, b.z0 + sz * reach)])
    return shadows


def place_people(rng: np.random.Generator, scene: Scene, cars: list[Car], props: list[Drawable]) -> list[Pedestrian]:
    cam, street = scene.camera, scene.street
    count = int(rng.integers(2, 7))
    people: list[Pedestrian] = []

    def fits(x: float, z: float) -> bool:
        u, v = cam.project(x, 0, z)
        if not 0.05 * WIDTH * SUPERSAMPLE <= u <= 0.95 * WIDTH * SUPERSAMPLE:
            return False
        if v > HEIGHT * SUPERSAMPLE - 2:
            return False
        if any(math.hypot(x - p.x, z - p.z) < 0.45 for p in people):
            return False
        if any(math.hypot(x - q.x, z - q.z) < 0.6 for q in props):
            return False
        return not any(c.z - 0.9 < z < c.far + 0.9 and abs(x - c.x) < c.width / 2 + 2.5 for c in cars)

    attempts = 0
    while len(people) < count and attempts < 400:
        attempts += 1
        crossing = rng.random() < 0.25
        if crossing:
            x = rng.uniform(-street.half_road + 0.4, street.half_road - 0.4)
            if street.crosswalk is not None and rng.random() < 0.7:
                z = street.crosswalk + rng.uniform(0.6, 3.4)
            else:
                z = rng.uniform(6, 28)
            view = "right" if rng.random() < 0.5 else "left"
            walking = bool(rng.random() < 0.85)
        else:
            side = 1 if rng.random() < 0.5 else -1
            x = side * rng.uniform(street.half_road + 0.5, street.facade - 0.45)
            z = 4.5 + 30 * rng.random() ** 1.5  # nearer people are likelier, as on a real pavement
            roll = rng.random()
            view = "front" if roll < 0.38 else "back" if roll < 0.76 else ("right" if rng.random() < 0.5 else "left")
            walking = bool(rng.random() < 0.72)
        child = rng.random() < 0.08
        height = rng.uniform(1.1, 1.35) if child else rng.uniform(1.55, 1.92)
        if not fits(x, z):
            continue
        person = Pedestrian(
            x=x,
            z=z,
            height_m=height,
            view=view,
            walking=walking,
            phase=rng.uniform(0, 2 * math.pi),
            outfit=make_outfit(rng),
        )
        people.append(person)
        if len(people) < count and rng.random() < 0.3:
            # A companion walking alongside, a little nearer or farther, so the two overlap.
            offset = rng.uniform(0.5, 0.75) * (1 if rng.random() < 0.5 else -1)
            cz = z + rng.uniform(-1.2, 1.2)
            if view in ("left", "right"):
                cx, cz = x + rng.uniform(-0.3, 0.3), z + offset
            else:
                cx = x + offset
            if fits(cx, cz) and (crossing or abs(cx) > street.half_road + 0.4):
                people.append(
                    Pedestrian(
                        x=cx,
                        z=cz,
                        height_m=rng.uniform(1.55, 1.9),
                        view=view,
                        walking=walking,
                        phase=person.phase + rng.uniform(-0.8, 0.8),
                        outfit=make_outfit(rng),
                    )
                )
    return people


def place_cars(rng: np.random.Generator, scene: Scene) -> list[Car]:
    cam, street = scene.camera, scene.street
    cars: list[Car] = []
    count = int(rng.integers(0, 4))
    attempts = 0
    while len(cars) < count and attempts < 100:
        attempts += 1
        if rng.random() < 0.5:
            side = 1 if rng.random() < 0.5 else -1
            x = side * (street.half_road - 1.2)
            z = rng.uniform(6, 45)
            car = make_car(rng, x, z, facing_away=bool(rng.random() < 0.6), parked=True)
        else:
            lane = int(rng.integers(street.lanes))
            x = -street.half_road + (lane + 0.5) * street.lane_width
            z = rng.uniform(8, 60)
            car = make_car(rng, x, z, facing_away=x > 0)
        if abs(x - cam.x) < car.width / 2 + 0.3 and car.z < 9:
            continue
        u, _ = cam.project(car.x, 0.7, car.z + car.length / 2)
        if not 0 <= u <= WIDTH * SUPERSAMPLE:
            continue
        # Cars never share a stretch of street, so drawing them far to near always occludes correctly.
        if any(car.z < other.far + 1.0 and other.z < car.far + 1.0 for other in cars):
            continue
        cars.append(car)
    return cars


def place_props(rng: np.random.Generator, street: Street, camera: Camera, night: bool = False) -> list[Drawable]:
    props: list[Drawable] = []
    tree_sides = [s for s in (-1, 1) if rng.random() < 0.55]
    for side in tree_sides:
        z = rng.uniform(6, 14)
        spacing = rng.uniform(8, 13)
        leaves = jittered(rng, (70, 104, 50), 0.15)
        while z < 110:
            props.append(
                Tree(
                    x=side * (street.half_road + 0.8),
                    z=z,
                    trunk_height=rng.uniform(2.8, 3.6),
                    crown_radius=rng.uniform(1.5, 2.4),
                    leaves=jittered(rng, leaves, 0.06),
                    seed=int(rng.integers(1 << 30)),
                )
            )
            z += spacing * rng.uniform(0.9, 1.1)
    for side in (-1, 1):
        # A tree-lined side sometimes has no lamps by day; a street at night is lit on both
        # sides. ``night`` is tested after the draw, so the day scenes' draws are as before.
        if side in tree_sides and rng.random() < 0.5 and not night:
            continue
        z = rng.uniform(8, 20)
        while z < 120:
            props.append(Pole(x=side * (street.half_road + 0.4), z=z, kind="lamp", seed=int(rng.integers(1 << 30))))
            z += rng.uniform(22, 32)
    if rng.random() < 0.6:
        side = 1 if rng.random() < 0.5 else -1
        props.append(
            Pole(x=side * (street.half_road + 0.45), z=rng.uniform(8, 25), kind="sign", seed=int(rng.integers(1 << 30)))
        )
    # Nothing stands right in front of a camera held on the pavement.
    return [prop for prop in props if abs(prop.x - camera.x) > 1.2]


def plan_scene(rng: np.random.Generator, night: Night | None = None) -> tuple[Scene, list[Building], float]:
    lanes = int(rng.choice([2, 2, 3, 4]))
    lane_width = rng.uniform(3.0, 3.5)
    half_road = lanes * lane_width / 2
    street = Street(
        half_road=half_road,
        lane_width=lane_width,
        lanes=lanes,
        facade=half_road + rng.uniform(2.8, 4.5),
        crosswalk=rng.uniform(7, 16) if rng.random() < 0.45 else None,
    )
    camera = Camera(
        focal=rng.uniform(290, 370) * SUPERSAMPLE,
        cx=(WIDTH / 2 + rng.uniform(-20, 20)) * SUPERSAMPLE,
        horizon=rng.uniform(100, 122) * SUPERSAMPLE,
        height=rng.uniform(1.35, 1.7),
        # Mostly a car's view from its lane; sometimes a pedestrian's, from the pavement.
        x=(
            rng.choice([-1, 1]) * rng.uniform(street.half_road + 0.9, street.facade - 0.8)
            if rng.random() < 0.3
            else rng.uniform(-0.3, 0.6) * half_road
        ),
    )
    lighting = plan_lighting(rng)
    if night is not None:
        lighting = NIGHT_LIGHTING
    if lighting.sunny:
        sky_top = jittered(rng, (64, 118, 196), 0.1)
        sky_horizon = jittered(rng, (184, 206, 230), 0.05)
    else:
        sky_top = jittered(rng, (150, 160, 174), 0.05)
        sky_horizon = jittered(rng, (206, 210, 214), 0.03)
    if night is not None:
        sky_top, sky_horizon = night.sky_top, night.sky_horizon
    end = rng.uniform(160, 260)
    buildings = plan_buildings(rng, -1, end) + plan_buildings(rng, 1, end)
    scene = Scene(
        camera=camera,
        street=street,
        lighting=lighting,
        sky_top=sky_top,
        sky_horizon=sky_horizon,
        visibility_m=rng.uniform(350, 700) if lighting.sunny else rng.uniform(220, 400),
        building_shadows=building_shadows(buildings, street, lighting),
        night=night,
    )
    return scene, buildings, end


# ---------------------------------------------------------------- rendering


def paint_shadows(canvas: Canvas, scene: Scene, objects: list[Drawable]) -> None:
    """Darken the ground under buildings' and objects' shadows (blurred, so the edges are soft)."""
    cam, lighting = scene.camera, scene.lighting
    mask = Image.new("L", canvas.size)
    draw = ImageDraw.Draw(mask)
    for polygon in scene.building_shadows:
        points = cam.polygon([(x, 0.0, z) for x, z in polygon])
        if len(points) >= 3:
            draw.polygon(points, fill=255)
    soft = np.asarray(mask.filter(ImageFilter.GaussianBlur(1.5 * SUPERSAMPLE)), np.float32) / 255
    contact = Image.new("L", canvas.size)
    contact_draw = ImageDraw.Draw(contact)
    cast = Image.new("L", canvas.size)
    cast_draw = ImageDraw.Draw(cast)
    for item in objects:
        shadows = item.shadows(scene)
        for polygons, target in ((shadows.contact, contact_draw), (shadows.cast if lighting.sunny else [], cast_draw)):
            for polygon in polygons:
                points = cam.polygon(polygon)
                if len(points) >= 3:
                    target.polygon(points, fill=255)
    contact_soft = np.asarray(contact.filter(ImageFilter.GaussianBlur(1.2 * SUPERSAMPLE)), np.float32) / 255
    cast_soft = np.asarray(cast.filter(ImageFilter.GaussianBlur(1.0 * SUPERSAMPLE)), np.float32) / 255
    sun_shadow = np.maximum(soft, cast_soft)[..., None]
    shade = np.array(lighting.shade, np.float32)
    factor = 1 - sun_shadow * (1 - shade)
    factor = factor * (1 - (0.45 if lighting.sunny else 0.3) * contact_soft[..., None])
    ground = np.isfinite(canvas.depth)[..., None]
    canvas.rgb[:] = np.where(ground, canvas.rgb * factor, canvas.rgb)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a float image (Pillow blurs only 8-bit images), as two matrix products."""

    def kernel(n: int) -> np.ndarray:
        offsets = np.arange(n, dtype=np.float32)
        weights = np.exp(-0.5 * ((offsets[:, None] - offsets[None, :]) / sigma) ** 2)
        return weights / weights.sum(axis=1, keepdims=True)

    rows, cols = kernel(image.shape[0]), kernel(image.shape[1])
    return np.stack([rows @ image[..., c] @ cols.T for c in range(image.shape[2])], axis=-1)


def light_night(canvas: Canvas, scene: Scene) -> None:
    """Light the drawn scene with the night's lamps, then add what glows and its bloom.

    Every pixel's point in the street comes back from its depth; each light adds its
    colour with the inverse square of the distance, its cone and the angle it meets the
    ground at. Surfaces other than the ground get an average angle, as their normals are
    not kept.
    """
    night, cam = scene.night, scene.camera
    assert night is not None and canvas.emit is not None
    height, width = canvas.height, canvas.width
    solid = np.isfinite(canvas.depth)
    z = np.where(solid, canvas.depth, 1.0)
    u = np.arange(width, dtype=np.float32)[None, :] + 0.5
    v = np.arange(height, dtype=np.float32)[:, None] + 0.5
    x = cam.x + (u - cam.cx) * z / cam.focal
    y = cam.height - (v - cam.horizon) * z / cam.focal
    ground = y < 0.05
    light = np.empty((height, width, 3), np.float32)
    light[:] = night.ambient
    for lamp in night.lights:
        lx, ly, lz = lamp.position
        # Only where this light adds a visible amount: the box around a sphere of that reach.
        reach = math.sqrt(max(lamp.color) / 0.01)
        near, far = max(lz - reach, NEAR_PLANE_M), lz + reach
        if far <= NEAR_PLANE_M:
            continue
        corners = [
            cam.project(cx, cy, cz)
            for cx in (lx - reach, lx + reach)
            for cy in (ly - reach, ly + reach)
            for cz in (near, far)
        ]
        u0 = max(int(min(c[0] for c in corners)), 0)
        u1 = min(int(max(c[0] for c in corners)) + 1, width)
        v0 = max(int(min(c[1] for c in corners)), 0)
        v1 = min(int(max(c[1] for c in corners)) + 1, height)
        if u0 >= u1 or v0 >= v1:
            continue
        box = (slice(v0, v1), slice(u0, u1))
        dx, dy, dz = x[box] - lx, y[box] - ly, z[box] - lz
        d2 = dx * dx + dy * dy + dz * dz + 4.0  # softened: no light blows out what it nearly touches
        d = np.sqrt(d2)
        strength = 1.0 / d2
        if lamp.direction is not None:
            ax, ay, az = lamp.direction
            strength = strength * np.clip((ax * dx + ay * dy + az * dz) / d, 0, 1) ** lamp.focus
        # Light meets the ground at -dy/d; walls, cars and people face it at about half strength.
        strength = strength * np.where(ground[box], np.clip(-dy / d, 0, 1), 0.5)
        light[box] += strength[..., None] * np.array(lamp.color, np.float32)
    rgb = np.where(solid[..., None], canvas.rgb * light, canvas.rgb) + canvas.emit
    # Bloom: lights spill into their surroundings, a small halo and a wide, faint one, and the
    # brightest (headlights, lamp lenses) glare further.
    small = canvas.emit.reshape(height // 2, 2, width // 2, 2, 3).mean(axis=(1, 3))
    glare = np.clip(small - 1000.0, 0, None)
    halo = 0.32 * blur(small, 2.0) + 0.1 * blur(small, 8.0) + 0.5 * blur(glare, 5.0)
    canvas.rgb[:] = rgb + np.repeat(np.repeat(halo, 2, axis=0), 2, axis=1)


def develop(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """Haze, lens blur, exposure, vignette and sensor noise: the supersampled scene becomes a camera frame."""
    haze = np.array(scene.sky_horizon, np.float32)
    transmission = np.exp(-canvas.depth / scene.visibility_m)[..., None]
    rgb = np.where(
        np.isfinite(canvas.depth)[..., None], canvas.rgb * transmission + haze * (1 - transmission), canvas.rgb
    )
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).reduce(SUPERSAMPLE)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.55)))
    frame = np.asarray(image, np.float32) / 255
    white_balance = np.array([1 + rng.uniform(-0.04, 0.04), 1.0, 1 + rng.uniform(-0.05, 0.04)], np.float32)
    frame = np.clip(frame * white_balance * rng.uniform(0.94, 1.08), 0, 1)
    contrast = rng.uniform(0.1, 0.25)
    frame = frame + contrast * (frame - 0.5) * (1 - np.abs(2 * frame - 1))  # gentle S-curve
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    radius = ((xx - WIDTH / 2) / (WIDTH / 2)) ** 2 + ((yy - HEIGHT / 2) / (HEIGHT / 2)) ** 2
    frame = frame * (1 - rng.uniform(0.1, 0.2) * radius / 2)[..., None]
    sigma = rng.uniform(0.006, 0.011)
    luminance = rng.standard_normal((HEIGHT, WIDTH, 1)).astype(np.float32) * sigma
    chroma = rng.standard_normal((HEIGHT, WIDTH, 3)).astype(np.float32) * sigma * 0.4
    frame = frame + (luminance + chroma) * np.sqrt(np.clip(frame, 0.02, 1))
    if scene.night is not None:
        # A dark frame is pushed up in gain, so noise, coloured noise most, shows in the shadows.
        gain = scene.night.rng.uniform(1.6, 2.4)
        frame = frame + gain * (luminance + 1.5 * chroma) * np.sqrt(np.clip(frame, 0.05, 1))
    return np.clip(np.round(frame * 255), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Label:
    cls: int
    x1: float
    y1: float
    x2: float
    y2: float

    def yolo_line(self) -> str:
        cx, cy = (self.x1 + self.x2) / 2 / WIDTH, (self.y1 + self.y2) / 2 / HEIGHT
        w, h = (self.x2 - self.x1) / WIDTH, (self.y2 - self.y1) / HEIGHT
        return f"{self.cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


@dataclass(frozen=True)
class Rendered:
    """A rendered scene: the camera frame, its labels, and what they came from (for checking them)."""

    frame: np.ndarray
    labels: list[Label]
    ids: np.ndarray  # supersampled id buffer: the object drawn last at each pixel, 0 for unlabelled
    classes: dict[int, int]  # object id -> class, for every labelled object drawn


def try_render(rng: np.random.Generator, night_rng: np.random.Generator | None = None) -> Rendered | None:
    """One scene, or None when a labelled object ended up mostly hidden; lit at night with ``night_rng``."""
    night = plan_night(night_rng) if night_rng is not None else None
    scene, buildings, end = plan_scene(rng, night)
    props = place_props(rng, scene.street, scene.camera, night=night is not None)
    cars = place_cars(rng, scene)
    people = place_people(rng, scene, cars, props)
    if len(people) < 2:
        return None
    canvas = Canvas(rng, night=night is not None)
    paint_sky(canvas, scene, rng)
    draw_far_end(canvas, scene, end, rng)
    for building in sorted(buildings, key=lambda b: -b.z0):
        draw_building(canvas, scene, building, rng)
    paint_ground(canvas, scene, rng)
    objects: list[Drawable] = [*props, *cars, *people]
    paint_shadows(canvas, scene, objects)

    drawn: dict[int, tuple[int, int]] = {}  # object id -> (class, pixels drawn)
    for index, item in enumerate(sorted(objects, key=lambda o: -o.z), start=1):
        object_id = index if item.label is not None else 0
        covered = item.draw(canvas, scene, object_id)
        if item.label is not None:
            drawn[object_id] = (item.label, covered)

    labels = []
    for object_id, (cls, covered) in drawn.items():
        ys, xs = np.nonzero(canvas.ids == object_id)
        if covered == 0 or len(xs) < MIN_VISIBLE_SHARE * covered:
            return None
        label = Label(
            cls,
            float(xs.min()) / SUPERSAMPLE,
            float(ys.min()) / SUPERSAMPLE,
            float(xs.max() + 1) / SUPERSAMPLE,
            float(ys.max() + 1) / SUPERSAMPLE,
        )
        if label.x2 - label.x1 >= MIN_BOX_PX and label.y2 - label.y1 >= MIN_BOX_PX:
            labels.append(label)
    if sum(label.cls == PERSON for label in labels) < 2:
        return None
    if night is not None:
        light_night(canvas, scene)
    return Rendered(
        develop(canvas, scene, rng),
        sorted(labels, key=lambda lb: (lb.cls, lb.x1, lb.y1)),
        canvas.ids,
        {object_id: cls for object_id, (cls, _) in drawn.items()},
    )


def render(index: int, lighting: str = "day") -> tuple[np.ndarray, list[Label]]:
    """Scene ``index`` of the day set, or with ``lighting="night"`` of the (separately seeded) night set."""
    result = render_scene(index, lighting)
    return result.frame, result.labels


def render_scene(index: int, lighting: str = "day") -> Rendered:
    """Like ``render``, with the id buffer the labels were read from."""
    if lighting == "day":
        rng, night_rng = np.random.default_rng([SEED, index]), None
    elif lighting == "night":
        rng = np.random.default_rng([NIGHT_SEED, index])
        night_rng = np.random.default_rng([NIGHT_SEED, index, NIGHT_LIGHTS_STREAM])
    else:
        raise ValueError(f"lighting is day or night, not {lighting!r}")
    for _ in range(MAX_LAYOUT_TRIES):
        result = try_render(rng, night_rng)
        if result is not None:
            return result
    raise RuntimeError(f"no acceptable layout for {lighting} image {index} in {MAX_LAYOUT_TRIES} tries")


def data_yaml(splits: Sequence[str] = ("train", "val", "test")) -> str:
    names = "".join(f"  {cls}: {name}\n" for cls, name in CLASS_NAMES.items())
    return (
        "# Procedurally generated by datasets/make_street_sample.py; see README.md.\n"
        + "".join(f"{split}: images/{split}\n" for split in splits)
        + "names:\n"
        + names
    )


def write_dataset(out: Path, lighting: str = "day") -> int:
    """Write the day or night set to ``out``; returns how many images it wrote."""
    sizes, prefix = (SPLIT_SIZES, "street") if lighting == "day" else (NIGHT_SPLIT_SIZES, "night")
    for folder in ("images", "labels"):
        shutil.rmtree(out / folder, ignore_errors=True)
    index = 0
    for split, size in sizes.items():
        (out / "images" / split).mkdir(parents=True)
        (out / "labels" / split).mkdir(parents=True)
        for _ in range(size):
            frame, labels = render(index, lighting)
            stem = f"{prefix}_{index:03d}"
            Image.fromarray(frame).save(out / "images" / split / f"{stem}.jpg", quality=JPEG_QUALITY)
            text = "".join(label.yolo_line() + "\n" for label in labels)
            (out / "labels" / split / f"{stem}.txt").write_text(text, encoding="utf-8")
            index += 1
    (out / "data.yaml").write_text(data_yaml(tuple(sizes)), encoding="utf-8")
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--night", action="store_true", help="render the night set (street_night_sample)")
    parser.add_argument("--out", type=Path, help="dataset folder to (re)write; by default the shipped one")
    args = parser.parse_args()
    lighting = "night" if args.night else "day"
    out = args.out or Path(__file__).resolve().parent / ("street_night_sample" if args.night else "street_sample")
    count = write_dataset(out, lighting)
    print(f"wrote {count} {lighting} images to {out}")


if __name__ == "__main__":
    main()
