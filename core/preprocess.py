"""Image decoding and model preprocessing, driven by the model card (never hard-coded here)."""

from __future__ import annotations

import errno
import math
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from core.errors import ImageDecodeError
from core.metadata import PhotoMeta, read_metadata
from core.model_card import PreprocessSpec, ViewSpec
from core.pixels import MAX_PIXELS, to_rgb
from core.raw import RAW_EXTENSIONS, decode_raw

_RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


try:  # HEIC/HEIF (iPhone photos) through libheif; optional so a minimal install still runs
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIF_SUPPORTED = True
except ImportError:
    HEIF_SUPPORTED = False


def decode_photo(path: Path, min_side: int | None = None) -> tuple[Image.Image, PhotoMeta]:
    """Decode a photo as RGB with EXIF orientation applied, and read its metadata in the same pass.

    With `min_side`, JPEGs are decoded at a reduced DCT scale that still leaves both sides at least
    `min_side` pixels: several times faster than a full decode for camera-sized photos. Camera RAW files
    give their embedded preview, or a fast demosaic of the sensor data when it has none big enough.
    Raises ImageDecodeError with the reason when the file is not a readable picture.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if path.suffix.lower() in RAW_EXTENSIONS:
                return decode_raw(path, min_side)
            with Image.open(path) as image:
                meta = read_metadata(image)
                if min_side is not None and image.format == "JPEG":
                    image.draft("RGB", (min_side, min_side))
                image.load()
                return to_rgb(ImageOps.exif_transpose(image)), meta
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"image too large (over {MAX_PIXELS:,} pixels): {exc}") from exc
    except FileNotFoundError:
        raise ImageDecodeError("broken symbolic link" if path.is_symlink() else "file not found") from None
    except PermissionError:
        raise ImageDecodeError("permission denied") from None
    except IsADirectoryError:
        raise ImageDecodeError("is a directory") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageDecodeError("symbolic link loop") from None
        raise ImageDecodeError(f"not a readable image: {exc}") from exc
    except (ValueError, SyntaxError, EOFError) as exc:  # Pillow reports broken files with these
        raise ImageDecodeError(f"not a readable image: {exc}") from exc


def load_image(path: Path, min_side: int | None = None) -> Image.Image:
    """Decode a photo as RGB with EXIF orientation applied (see decode_photo)."""
    return decode_photo(path, min_side)[0]


def resize_view(image: Image.Image, size: int, view: ViewSpec, interpolation: str) -> Image.Image:
    """Resize and crop one view to size x size (torchvision Resize + CenterCrop semantics, in Pillow)."""
    resample = _RESAMPLE[interpolation]
    if view.resize == "squash":
        return image.resize((size, size), resample)
    scale_size = math.floor(size / view.crop_fraction)
    width, height = image.size
    if width <= height:
        new_w, new_h = scale_size, int(scale_size * height / width)
    else:
        new_w, new_h = int(scale_size * width / height), scale_size
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), resample)
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def normalisation(spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) per channel: a pixel value x becomes x * scale - offset, i.e. (x / 255 - mean) / std."""
    # One multiply and one subtract, in place, on the HWC array: half the time of the textbook form, and within
    # float32 rounding of it.
    std = np.asarray(spec.std, dtype=np.float32)
    return np.float32(1.0) / (np.float32(255.0) * std), np.asarray(spec.mean, dtype=np.float32) / std


def preprocess(image: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """All views of one RGB image as float32 [views, 3, size, size], normalised as the card says."""
    scale, offset = normalisation(spec)
    views = np.empty((len(spec.views), 3, spec.size, spec.size), dtype=np.float32)
    for i, view in enumerate(spec.views):
        pixels = np.asarray(resize_view(image, spec.size, view, spec.interpolation), dtype=np.float32)
        pixels *= scale
        pixels -= offset
        views[i] = pixels.transpose(2, 0, 1)
    return views


def decode_side(spec: PreprocessSpec) -> int:
    """The smallest side a decoded image needs so that no view upsamples it."""
    return max(spec.size if v.resize == "squash" else math.floor(spec.size / v.crop_fraction) for v in spec.views)
