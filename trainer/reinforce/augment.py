"""Stored image augmentations in DataCompDR's ``paug.json`` form: sampling and exact replay with Pillow.

One augmentation is a RandomResizedCrop box in original-image pixels plus two RandAugment ops with signed
magnitudes, stored per entry as ``[[top, left, height, width], [[op, magnitude], [op, magnitude]]]`` with
``null`` for a transform that was skipped (docs/mobileclip-spec.md §9.2). Sampling follows torchvision's
``RandomResizedCrop.get_params`` and ``RandAugment`` (2 ops, magnitude bin 9 of 31) but draws from a NumPy
generator, so a sample's augmentations depend only on the seed and its key, never on which process made them.
Replay follows torchvision's PIL code paths (crop, then resize; nearest-neighbour geometric ops with black fill),
without importing torchvision (docs/mobileclip-spec.md §13.11).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

# RandAugment op table in DataCompDR's index order (the stored op is an index into this tuple).
OP_NAMES: tuple[str, ...] = (
    "Identity",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
    "Brightness",
    "Color",
    "Contrast",
    "Sharpness",
    "Posterize",
    "Solarize",
    "AutoContrast",
    "Equalize",
)
_SIGNED = frozenset(
    {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness"}
)
RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}
# Magnitudes beyond these are not RandAugment's: refuse them instead of producing garbage pixels.
_MAX_ABS = {"ShearX": 10.0, "ShearY": 10.0, "Rotate": 360.0, "Posterize": 8.0, "Solarize": 256.0}


class AugmentError(ValueError):
    """Stored augmentation parameters that are malformed or do not fit the image."""


@dataclass(frozen=True)
class AugmentConfig:
    """How augmentations are sampled (DataCompDR defaults: torchvision RandomResizedCrop + RandAugment at 224)."""

    size: int = 224  # teacher crop size the RandAugment translations are measured in
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    num_ops: int = 2
    magnitude: int = 9
    num_bins: int = 31
    rand_augment_p: float = 1.0

    def to_json(self) -> dict[str, Any]:
        """The config as recorded in the dataset card."""
        return {
            "random_resized_crop": {"size": self.size, "scale": list(self.scale), "ratio": list(self.ratio)},
            "rand_augment": {
                "num_ops": self.num_ops,
                "magnitude": self.magnitude,
                "num_magnitude_bins": self.num_bins,
                "p": self.rand_augment_p,
                "interpolation": "nearest",
                "fill": 0,
            },
            "order": ["to_rgb", "random_resized_crop", "rand_augment", "to_tensor", "normalize"],
        }


@dataclass(frozen=True)
class AugParams:
    """One stored augmentation: crop box (top, left, height, width) and RandAugment ops, either may be None."""

    crop: tuple[int, int, int, int] | None
    ops: tuple[tuple[int, float], ...] | None

    def to_json(self) -> list[Any]:
        """The ``paug.json`` entry: ``[[i, j, h, w], [[op, magnitude], ...]]`` with null for skipped parts."""
        return [
            None if self.crop is None else list(self.crop),
            None if self.ops is None else [[op, magnitude] for op, magnitude in self.ops],
        ]

    @classmethod
    def from_json(cls, entry: Any) -> AugParams:
        """Parse and validate one ``paug.json`` entry (untrusted input); raises AugmentError."""
        if entry is None:
            return cls(None, None)
        if not isinstance(entry, list) or len(entry) < 1:
            raise AugmentError(f"augmentation entry is not a list: {str(entry)[:80]}")
        crop_raw = entry[0]
        ops_raw = entry[1] if len(entry) > 1 else None
        crop = None
        if crop_raw is not None:
            if not (isinstance(crop_raw, list) and len(crop_raw) == 4 and all(_is_int(v) for v in crop_raw)):
                raise AugmentError(f"crop box must be four integers [top, left, height, width], got {crop_raw!r}")
            top, left, height, width = (int(v) for v in crop_raw)
            if top < 0 or left < 0 or height <= 0 or width <= 0:
                raise AugmentError(f"crop box {crop_raw!r} has a negative offset or an empty size")
            crop = (top, left, height, width)
        ops = None
        if ops_raw is not None:
            if not isinstance(ops_raw, list) or len(ops_raw) > 16:
                raise AugmentError(f"RandAugment ops must be a short list, got {str(ops_raw)[:80]}")
            parsed = []
            for op in ops_raw:
                if not (isinstance(op, list) and len(op) == 2 and _is_int(op[0]) and _is_number(op[1])):
                    raise AugmentError(f"RandAugment op must be [index, magnitude], got {op!r}")
                index, magnitude = int(op[0]), float(op[1])
                if not 0 <= index < len(OP_NAMES):
                    raise AugmentError(f"RandAugment op index {index} is not in 0..{len(OP_NAMES) - 1}")
                if not math.isfinite(magnitude) or abs(magnitude) > _MAX_ABS.get(OP_NAMES[index], 1e4):
                    raise AugmentError(f"RandAugment {OP_NAMES[index]} magnitude {magnitude} is out of range")
                parsed.append((index, magnitude))
            ops = tuple(parsed)
        return cls(crop, ops)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bins(start: float, end: float, num_bins: int) -> list[float]:
    # torchvision builds the table with float32 linspace; keep float32 values so stored magnitudes match its form.
    return [float(np.float32(start + (end - start) * k / (num_bins - 1))) for k in range(num_bins)]


def magnitude_table(size: int, num_bins: int) -> dict[str, list[float] | float]:
    """RandAugment magnitudes per op for a ``size`` x ``size`` image (torchvision's augmentation space)."""
    translate = 150.0 / 331.0 * size
    posterize = [float(8 - int(np.round(k / ((num_bins - 1) / 4)))) for k in range(num_bins)]
    return {
        "Identity": 0.0,
        "ShearX": _bins(0.0, 0.3, num_bins),
        "ShearY": _bins(0.0, 0.3, num_bins),
        "TranslateX": _bins(0.0, translate, num_bins),
        "TranslateY": _bins(0.0, translate, num_bins),
        "Rotate": _bins(0.0, 30.0, num_bins),
        "Brightness": _bins(0.0, 0.9, num_bins),
        "Color": _bins(0.0, 0.9, num_bins),
        "Contrast": _bins(0.0, 0.9, num_bins),
        "Sharpness": _bins(0.0, 0.9, num_bins),
        "Posterize": posterize,
        "Solarize": _bins(255.0, 0.0, num_bins),
        "AutoContrast": 0.0,
        "Equalize": 0.0,
    }


def sample_crop(width: int, height: int, rng: np.random.Generator, config: AugmentConfig) -> tuple[int, int, int, int]:
    """A RandomResizedCrop box (top, left, height, width): ten tries at a random area and aspect, else a centre crop."""
    area = width * height
    log_lo, log_hi = math.log(config.ratio[0]), math.log(config.ratio[1])
    for _ in range(10):
        target_area = area * rng.uniform(config.scale[0], config.scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(config.ratio):
        w, h = width, int(round(width / min(config.ratio)))
    elif in_ratio > max(config.ratio):
        w, h = int(round(height * max(config.ratio))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def sample_ops(rng: np.random.Generator, config: AugmentConfig) -> tuple[tuple[int, float], ...] | None:
    """RandAugment ops as (index, signed magnitude); None when RandAugment is skipped (probability 1 - p)."""
    if config.rand_augment_p < 1.0 and rng.random() > config.rand_augment_p:
        return None
    table = magnitude_table(config.size, config.num_bins)
    ops = []
    for _ in range(config.num_ops):
        index = int(rng.integers(len(OP_NAMES)))
        name = OP_NAMES[index]
        values = table[name]
        magnitude = values[config.magnitude] if isinstance(values, list) else 0.0
        if name in _SIGNED and rng.integers(2):
            magnitude = -magnitude
        ops.append((index, magnitude))
    return tuple(ops)


def sample_params(width: int, height: int, rng: np.random.Generator, config: AugmentConfig) -> AugParams:
    """One random augmentation of a ``width`` x ``height`` image."""
    return AugParams(sample_crop(width, height, rng, config), sample_ops(rng, config))


def _inverse_affine(
    center: tuple[float, float], angle: float, translate: tuple[float, float], shear: tuple[float, float]
) -> list[float]:
    """Output-to-input affine matrix (Pillow's AFFINE data) of rotation + shear about ``center``, then translation."""
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    m = [d, -b, 0.0, -c, a, 0.0]  # inverse of [[a, b], [c, d]] (its determinant is 1)
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty)
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty)
    m[2] += cx
    m[5] += cy
    return m


def _affine(
    image: Image.Image, center: tuple[float, float], translate: tuple[float, float], shear: tuple[float, float]
):
    matrix = _inverse_affine(center, 0.0, translate, shear)
    fill = (0,) * len(image.getbands())
    return image.transform(image.size, Image.Transform.AFFINE, matrix, Image.Resampling.NEAREST, fillcolor=fill)


def apply_op(image: Image.Image, index: int, magnitude: float) -> Image.Image:
    """Apply RandAugment op ``index`` with ``magnitude`` to an RGB image (torchvision's PIL semantics)."""
    name = OP_NAMES[index]
    width, height = image.size
    if name == "ShearX":
        return _affine(image, (0.0, 0.0), (0.0, 0.0), (math.degrees(math.atan(magnitude)), 0.0))
    if name == "ShearY":
        return _affine(image, (0.0, 0.0), (0.0, 0.0), (0.0, math.degrees(math.atan(magnitude))))
    if name == "TranslateX":
        return _affine(image, (width * 0.5, height * 0.5), (float(int(magnitude)), 0.0), (0.0, 0.0))
    if name == "TranslateY":
        return _affine(image, (width * 0.5, height * 0.5), (0.0, float(int(magnitude))), (0.0, 0.0))
    if name == "Rotate":
        fill = (0,) * len(image.getbands())
        return image.rotate(magnitude, Image.Resampling.NEAREST, expand=False, fillcolor=fill)
    if name == "Brightness":
        return ImageEnhance.Brightness(image).enhance(1.0 + magnitude)
    if name == "Color":
        return ImageEnhance.Color(image).enhance(1.0 + magnitude)
    if name == "Contrast":
        return ImageEnhance.Contrast(image).enhance(1.0 + magnitude)
    if name == "Sharpness":
        return ImageEnhance.Sharpness(image).enhance(1.0 + magnitude)
    if name == "Posterize":
        return ImageOps.posterize(image, int(magnitude))
    if name == "Solarize":
        return ImageOps.solarize(image, magnitude)
    if name == "AutoContrast":
        return ImageOps.autocontrast(image)
    if name == "Equalize":
        return ImageOps.equalize(image)
    return image  # Identity


def centre_view(image: Image.Image, size: int, interpolation: str) -> Image.Image:
    """Shorter side to ``size``, centre crop: the view used where a stored crop box is null."""
    width, height = image.size
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    image = image.resize((new_w, new_h), RESAMPLE[interpolation])
    left, top = int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def apply_params(image: Image.Image, params: AugParams, size: int, interpolation: str = "bicubic") -> Image.Image:
    """Replay stored parameters on the original RGB ``image``: a ``size`` x ``size`` RGB view.

    The crop box is in original-image pixels, so the same parameters give the same view at any resolution;
    RandAugment translations are applied in stored pixels at every resolution, as DataCompDR training does.
    """
    if interpolation not in RESAMPLE:
        raise AugmentError(f"unknown interpolation {interpolation!r} (known: {', '.join(RESAMPLE)})")
    if params.crop is None:
        view = centre_view(image, size, interpolation)
    else:
        top, left, height, width = params.crop
        if top + height > image.height or left + width > image.width:
            raise AugmentError(
                f"crop box {list(params.crop)} lies outside the {image.width}x{image.height} image "
                "(parameters stored for a different image?)"
            )
        view = image.crop((left, top, left + width, top + height)).resize((size, size), RESAMPLE[interpolation])
    for index, magnitude in params.ops or ():
        view = apply_op(view, index, magnitude)
    return view


def normalize(view: Image.Image, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """An RGB view as float32 CHW ``(pixel / 255 - mean) / std``, computed exactly as core's preprocessing does."""
    mean_a = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    std_a = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
    pixels = np.asarray(view, dtype=np.float32)
    return (pixels.transpose(2, 0, 1) / np.float32(255.0) - mean_a) / std_a


def sample_rng(seed: int, key: str, purpose: str) -> np.random.Generator:
    """A generator that depends only on (seed, sample key, purpose): the same on every rank and every run."""
    digest = hashlib.sha256(f"{seed}\x00{purpose}\x00{key}".encode()).digest()
    return np.random.default_rng(np.frombuffer(digest, dtype="<u4").tolist())
