"""Photo metadata from EXIF: when it was taken, with which camera, where, and its full size."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass

from PIL import Image

_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_DATETIME_ORIGINAL = 0x9003
_DATETIME = 0x0132
_MAKE = 0x010F
_MODEL = 0x0110


@dataclass(frozen=True)
class PhotoMeta:
    """What the index stores about a photo besides its embedding. Sizes are after EXIF rotation."""

    width: int
    height: int
    taken_at: float | None = None  # seconds since the epoch, camera local time read as UTC
    camera: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None


def _parse_exif_time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return float(calendar.timegm(time.strptime(value.strip().rstrip("\x00")[:19], "%Y:%m:%d %H:%M:%S")))
    except (ValueError, OverflowError):
        return None


def _gps_degrees(values: object, ref: object) -> float | None:
    try:
        degrees, minutes, seconds = (float(v) for v in values)  # type: ignore[union-attr]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    result = degrees + minutes / 60.0 + seconds / 3600.0
    return -result if ref in ("S", "W") else result


def _camera(make: object, model: object) -> str | None:
    make_s = make.strip().strip("\x00") if isinstance(make, str) else ""
    model_s = model.strip().strip("\x00") if isinstance(model, str) else ""
    if make_s and model_s.lower().startswith(make_s.split()[0].lower()):
        return model_s  # "Canon" + "Canon EOS 5D" -> "Canon EOS 5D"
    return " ".join(p for p in (make_s, model_s) if p) or None


def read_metadata(image: Image.Image) -> PhotoMeta:
    """Metadata of an opened (not yet transposed) image; missing or broken EXIF fields become None."""
    width, height = image.size
    try:
        exif = image.getexif()
    except Exception:  # broken EXIF blocks raise all sorts of errors; metadata is optional
        return PhotoMeta(width, height)
    if exif.get(0x0112) in (5, 6, 7, 8):  # orientations that swap width and height
        width, height = height, width
    try:
        details = exif.get_ifd(_EXIF_IFD)
        gps = exif.get_ifd(_GPS_IFD)
    except Exception:
        details, gps = {}, {}
    taken = _parse_exif_time(details.get(_DATETIME_ORIGINAL)) or _parse_exif_time(exif.get(_DATETIME))
    lat = _gps_degrees(gps.get(2), gps.get(1)) if gps else None
    lon = _gps_degrees(gps.get(4), gps.get(3)) if gps else None
    return PhotoMeta(width, height, taken, _camera(exif.get(_MAKE), exif.get(_MODEL)), lat, lon)
