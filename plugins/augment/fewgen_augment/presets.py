"""Named albumentations pipelines, kept as plain data so that importing this module stays cheap.

A preset is a list of transform steps (an albumentations class name and its keyword
arguments) and the domain its copies belong to. Every step either leaves pixel positions
alone (colour, noise, weather) or moves the image, its boxes and its mask together (flip,
affine), so labels stay valid. :func:`build_pipeline` turns steps into an albumentations
``Compose``; it is the only place albumentations is imported.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from fewgen.errors import did_you_mean

if TYPE_CHECKING:
    from albumentations import BasicTransform, Compose

# OpenCV's constant border mode: pixels moved in from outside the image are black. Reflecting
# would copy objects into the border without their boxes.
BORDER_CONSTANT = 0


@dataclass(frozen=True)
class TransformStep:
    """One albumentations transform: its class name and keyword arguments."""

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Preset:
    summary: str
    # Domain of the copies (the condition they show); None keeps each parent's domain.
    domain: str | None
    steps: tuple[TransformStep, ...]


def _step(name: str, **kwargs: Any) -> TransformStep:
    return TransformStep(name, kwargs)


PRESETS: dict[str, Preset] = {
    "night": Preset(
        "dark and blue-tinted, with the noise and softness of a camera at high gain",
        "night",
        (
            _step("RandomGamma", gamma_limit=(150, 190), p=1.0),
            _step("RandomBrightnessContrast", brightness_limit=(-0.18, -0.1), contrast_limit=(-0.2, -0.05), p=1.0),
            _step("RGBShift", r_shift_limit=(-16, -6), g_shift_limit=(-6, 0), b_shift_limit=(4, 14), p=1.0),
            _step("ISONoise", color_shift=(0.01, 0.03), intensity=(0.1, 0.3), p=1.0),
            _step("GaussNoise", std_range=(0.01, 0.03), p=1.0),
            _step("GaussianBlur", blur_limit=(3, 3), sigma_limit=(0.3, 0.8), p=0.5),
        ),
    ),
    "fog": Preset(
        "fog patches over a washed-out, low-contrast, less saturated image",
        "fog",
        (
            _step("RandomFog", fog_coef_range=(0.2, 0.4), alpha_coef=0.08, p=1.0),
            _step("RandomBrightnessContrast", brightness_limit=(0.0, 0.08), contrast_limit=(-0.35, -0.2), p=1.0),
            _step("HueSaturationValue", hue_shift_limit=0, sat_shift_limit=(-30, -15), val_shift_limit=0, p=1.0),
        ),
    ),
    "rain": Preset(
        "rain streaks under a darker, duller sky",
        "rain",
        (
            _step(
                "RandomRain",
                slant_range=(-8, 8),
                drop_length=8,
                drop_width=1,
                drop_color=(170, 172, 180),
                blur_value=3,
                brightness_coefficient=0.85,
                rain_type="drizzle",
                p=1.0,
            ),
            _step("RandomBrightnessContrast", brightness_limit=(-0.12, -0.04), contrast_limit=(-0.2, -0.05), p=1.0),
            _step("HueSaturationValue", hue_shift_limit=0, sat_shift_limit=(-25, -10), val_shift_limit=0, p=1.0),
        ),
    ),
    "snow": Preset(
        "bright surfaces bleached white as if snow-covered, in flat light",
        "snow",
        (
            _step("RandomSnow", snow_point_range=(0.15, 0.3), brightness_coeff=2.0, method="bleach", p=1.0),
            _step("RandomBrightnessContrast", brightness_limit=(0.0, 0.05), contrast_limit=(-0.2, -0.05), p=1.0),
        ),
    ),
    "dusk": Preset(
        "warm, dimmer light of a low sun",
        None,
        (
            _step("RandomGamma", gamma_limit=(108, 125), p=1.0),
            _step("RGBShift", r_shift_limit=(8, 18), g_shift_limit=(0, 5), b_shift_limit=(-18, -8), p=1.0),
            _step("RandomBrightnessContrast", brightness_limit=(-0.1, -0.03), contrast_limit=(-0.1, 0.05), p=1.0),
        ),
    ),
    "flip": Preset("mirrored left to right", None, (_step("HorizontalFlip", p=1.0),)),
    "color": Preset(
        "brightness, contrast, saturation and hue jitter, as between cameras and days",
        None,
        (
            _step(
                "ColorJitter",
                brightness=(0.8, 1.2),
                contrast=(0.8, 1.2),
                saturation=(0.7, 1.3),
                hue=(-0.04, 0.04),
                p=1.0,
            ),
            _step("HueSaturationValue", hue_shift_limit=8, sat_shift_limit=15, val_shift_limit=10, p=0.5),
        ),
    ),
    "rot90": Preset(
        "turned by a multiple of 90 degrees and mirrored half the time: any of the 8 symmetries of a square, "
        "for top-down views with no 'up' (circuit boards, wafers, tiles, aerial images)",
        None,
        (_step("RandomRotate90", p=1.0), _step("HorizontalFlip", p=0.5)),
    ),
    "geometric": Preset(
        "scaled by up to 15% and shifted by up to 8% without rotation (boxes stay tight), mirrored half the time",
        None,
        (
            _step(
                "Affine",
                scale=(0.85, 1.15),
                translate_percent=(-0.08, 0.08),
                border_mode=BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                p=1.0,
            ),
            _step("HorizontalFlip", p=0.5),
        ),
    ),
}


def preset_domain(names: Sequence[str]) -> str | None:
    """The domain of copies made by ``names`` in order: their domains joined by "_", or None if none has one."""
    domains = dict.fromkeys(PRESETS[name].domain for name in names if PRESETS[name].domain)
    return "_".join(d for d in domains if d) or None


def import_albumentations() -> ModuleType:
    # Unless told not to, albumentations asks PyPI for a newer version on import.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations

    return albumentations


def build_pipeline(steps: Sequence[TransformStep], min_visibility: float) -> Compose:
    """An albumentations pipeline over image, mask and pixel ``pascal_voc`` boxes (``box_index`` labels).

    Raises ValueError naming the step when a name is no albumentations transform or its arguments are invalid.
    """
    album = import_albumentations()
    transforms = [_make_transform(album, step) for step in steps]
    with warnings.catch_warnings():
        # A colour-only pipeline moves no box, and albumentations warns that its box processor has nothing to do.
        warnings.filterwarnings("ignore", message="Got processor for bboxes")
        return album.Compose(
            transforms,
            bbox_params=album.BboxParams(
                format="pascal_voc",
                label_fields=["box_index"],
                clip=True,
                min_visibility=min_visibility,
                filter_invalid_bboxes=True,
            ),
            strict=True,
        )


def _make_transform(album: ModuleType, step: TransformStep) -> BasicTransform:
    known = transform_names(album)
    if step.name not in known:
        raise ValueError(f"{step.name!r} is not an albumentations transform{did_you_mean(step.name, known)}")
    transform_class = getattr(album, step.name)
    try:
        try:
            # strict: an unknown or invalid argument is an error rather than a warning.
            return transform_class(**{**step.kwargs, "strict": True})
        except TypeError as exc:
            # A few transforms, such as RandomRotate90, have no argument schema and no `strict`;
            # Python itself then rejects unknown arguments.
            if "'strict'" not in str(exc):
                raise
            return transform_class(**step.kwargs)
    except (TypeError, ValueError) as exc:
        # albumentations reports bad arguments as a pydantic error; keep its lines, not its links.
        detail = "; ".join(
            line.strip() for line in str(exc).splitlines() if line.strip() and "errors.pydantic.dev" not in line
        )
        raise ValueError(f"transform {step.name}: {detail}") from None


def transform_names(album: ModuleType) -> list[str]:
    """Names of albumentations' 2-D image transforms.

    Left out: compositions (OneOf is no transform), the base classes, 3-D volume transforms
    and the conversions to PyTorch tensors, none of which yields an image to save.
    """
    return sorted(
        name
        for name, value in vars(album).items()
        if isinstance(value, type)
        and issubclass(value, album.BasicTransform)
        and not issubclass(value, album.Transform3D)
        and value.__module__.startswith("albumentations.augmentations.")
    )
