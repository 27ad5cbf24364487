"""Camera RAW files through LibRaw (rawpy): the embedded preview when it is big enough, else a fast demosaic."""

from __future__ import annotations

import calendar
import io
import warnings
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

from core.errors import ImageDecodeError
from core.metadata import PhotoMeta, read_metadata
from core.pixels import MAX_PIXELS, to_rgb

if TYPE_CHECKING:
    import rawpy

# What LibRaw reads from the cameras people still use: Canon, Nikon, Sony, Fujifilm, Olympus/OM, Panasonic, Pentax,
# Samsung, Leica, Hasselblad, Phase One, Kodak, Minolta, Epson, and DNG from phones and converters.
RAW_EXTENSIONS = frozenset(
    {".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf", ".rw2", ".pef", ".srw"}
    | {".rwl", ".3fr", ".iiq", ".kdc", ".dcr", ".mrw", ".erf"}
)

# LibRaw's flip code (bit 0: mirror, bit 1: upside down, bit 2: transposed) as the EXIF orientation that undoes it.
_FLIP_TO_ORIENTATION = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}
_ORIENTATION = 0x0112
# TIFF-based RAW files (DNG, NEF, CR2, ARW, PEF...) keep camera, date and GPS tags near the start of the file.
_RAW_HEAD_BYTES = 256 * 1024
_LIBRAW_REASONS = {
    "LibRawFileUnsupportedError": "unsupported camera RAW format, or not a RAW file",
    "LibRawIOError": "truncated or unreadable camera RAW file",
    "LibRawDataError": "corrupt camera RAW data",
    "LibRawTooBigError": "camera RAW image too large to decode",
    "LibRawUnsufficientMemoryError": "not enough memory to decode the camera RAW image",
}


def _rawpy() -> ModuleType:
    """The rawpy module, imported late so that a missing rawpy only breaks RAW files."""
    try:
        import rawpy
    except ImportError:
        raise ImageDecodeError("camera RAW support is not installed (pip install rawpy)") from None
    return rawpy


def _libraw_failure(exc: Exception) -> ImageDecodeError:
    message = exc.args[0] if exc.args else ""
    if isinstance(message, bytes):  # rawpy passes LibRaw's C message through as bytes
        message = message.decode("utf-8", "replace")
    reason = _LIBRAW_REASONS.get(type(exc).__name__, "camera RAW decoding failed")
    return ImageDecodeError(f"{reason} (LibRaw: {message or type(exc).__name__})")


def _raw_preview(raw: rawpy.RawPy, need: int) -> tuple[Image.Image, PhotoMeta] | None:
    """The embedded preview, upright, with its EXIF metadata; None when missing, unreadable or under `need` px."""
    librawpy = _rawpy()
    try:
        thumb = raw.extract_thumb()
    except librawpy.LibRawError:  # none, an unsupported kind, or unreadable: the caller demosaics instead
        return None
    try:
        if thumb.format == librawpy.ThumbFormat.JPEG:
            # LibRaw adds an EXIF block to a preview that has none: the RAW's make, model, date and orientation.
            image = Image.open(io.BytesIO(thumb.data))
        else:
            pixels = np.asarray(thumb.data)
            image = Image.fromarray(pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels)
        if min(image.size) < need:
            return None  # a small thumbnail would be upscaled: a demosaic is worth its cost
        exif = image.getexif()
        if _ORIENTATION not in exif:  # previews are stored as the sensor saw them
            exif[_ORIENTATION] = _FLIP_TO_ORIENTATION.get(raw.sizes.flip, 1)
        meta = read_metadata(image)
        if image.format == "JPEG":
            image.draft("RGB", (need, need))
        image.load()
        return to_rgb(ImageOps.exif_transpose(image)), meta
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None  # a broken preview does not make the RAW data unreadable


def _raw_demosaic(raw: rawpy.RawPy, need: int) -> Image.Image:
    """The RAW data developed to 8-bit sRGB with the camera's white balance; LibRaw applies the orientation."""
    librawpy = _rawpy()
    sizes = raw.sizes
    half = min(sizes.width, sizes.height) // 2 >= need  # 2x2 binning: no interpolation, 4x fewer pixels
    pixels_out = sizes.width * sizes.height // (4 if half else 1)
    if pixels_out > MAX_PIXELS:
        raise ImageDecodeError(f"image too large (over {MAX_PIXELS:,} pixels): {sizes.width}x{sizes.height} RAW")
    rgb = raw.postprocess(
        half_size=half,
        demosaic_algorithm=None if half else librawpy.DemosaicAlgorithm.LINEAR,  # fast; model inputs are small
        use_camera_wb=True,
        no_auto_bright=False,
        output_bps=8,
    )
    return to_rgb(Image.fromarray(rgb[..., 0] if rgb.shape[2] == 1 else rgb))


def _libraw_taken(raw: rawpy.RawPy) -> float | None:
    """LibRaw's capture time as camera local time read as UTC (as core.metadata stores it), None when unknown."""
    try:
        stamp: datetime = raw.other.timestamp  # LibRaw's mktime of the camera's clock, turned back by rawpy
        if stamp.timestamp() <= 0:  # LibRaw found no date
            return None
        return float(calendar.timegm(stamp.timetuple()))
    except (ValueError, OverflowError, OSError):  # out-of-range clocks; Windows refuses dates before 1970
        return None


def _raw_metadata(head: bytes, size: tuple[int, int], preview_meta: PhotoMeta | None, taken: float | None) -> PhotoMeta:
    """Metadata from the RAW container's own EXIF, completed by the preview's and LibRaw's capture time."""
    carrier = Image.new("L", (1, 1))
    carrier.info["exif"] = head  # TIFF-based RAW files start with a TIFF header, as EXIF blocks do
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pillow's "corrupt EXIF" when tags lie past the head
        own = read_metadata(carrier)  # formats that are not TIFF inside, or tags past the head, yield no fields
    other = preview_meta or PhotoMeta(*size)
    # The preview's date is left out: LibRaw stamps previews it fills in with 1970 when it found no date.
    taken = own.taken_at if own.taken_at is not None else taken
    gps = (own.gps_lat, own.gps_lon) if own.gps_lat is not None else (other.gps_lat, other.gps_lon)
    return PhotoMeta(size[0], size[1], taken, own.camera or other.camera, *gps)


def decode_raw(path: Path, min_side: int | None) -> tuple[Image.Image, PhotoMeta]:
    """A camera RAW file: its embedded preview when big enough and readable, else a fast demosaic of the data.

    Without `min_side`, the result is at least half the sensor resolution (what the half-size demosaic gives).
    """
    librawpy = _rawpy()
    with path.open("rb") as file:  # missing, unreadable or directory: the caller maps the OSError to a reason
        head = file.read(_RAW_HEAD_BYTES)
    try:
        with librawpy.imread(str(path)) as raw:
            sizes = raw.sizes
            size = (sizes.height, sizes.width) if sizes.flip & 4 else (sizes.width, sizes.height)
            need = min_side if min_side is not None else min(size) // 2
            preview = _raw_preview(raw, need)
            image = preview[0] if preview is not None else _raw_demosaic(raw, need)
            taken = _libraw_taken(raw)
    except librawpy.LibRawError as exc:
        raise _libraw_failure(exc) from exc
    return image, _raw_metadata(head, size, preview[1] if preview is not None else None, taken)
