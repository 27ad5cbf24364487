"""Real camera-RAW test files made on the fly: a real photo mosaicked to a Bayer sensor image and written as a DNG.

Nothing is stored in the repository and nothing is downloaded. The DNG is a plain little-endian TIFF laid out as
cameras and Adobe's converter do: IFD0 carries the DNG and camera tags and either the raw CFA image itself or a
small RGB thumbnail with the raw image in a SubIFD; an optional JPEG preview sits in another SubIFD, and the capture
time is in an EXIF IFD. The photo is turned back into linear light, tinted by a warm light, scaled by camera-like
channel gains, sampled through an RGGB filter and stored as 12-bit values in 16-bit words above a black level, so
LibRaw has to do real work (black level, white balance, colour matrix, demosaic, gamma) to get it back.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# TIFF field types
_BYTE, _ASCII, _SHORT, _LONG, _RATIONAL, _SRATIONAL = 1, 2, 3, 4, 5, 10
_TYPE_SIZE = {_BYTE: 1, _ASCII: 1, _SHORT: 2, _LONG: 4, _RATIONAL: 8, _SRATIONAL: 8}
_TYPE_CODE = {_BYTE: "B", _SHORT: "H", _LONG: "I"}

BLACK_LEVEL = 256
WHITE_LEVEL = 4095  # 12-bit sensor data stored in 16-bit words
# Camera channel sensitivities relative to green, which the colour matrix describes.
CAMERA_GAINS = (0.55, 1.0, 0.7)
# The scene was lit warmer than the D65 the colour matrix is calibrated for: only the as-shot white balance
# (AsShotNeutral = gains x light) gives the photo's colours back; a daylight balance leaves an orange cast.
LIGHT_TINT = (1.3, 1.0, 0.6)
# XYZ (D65) -> linear sRGB, the standard IEC 61966-2-1 matrix; our "camera" is linear sRGB times CAMERA_GAINS.
_XYZ_TO_SRGB = np.array(
    [[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]], dtype=np.float64
)


@dataclass(frozen=True)
class RawSample:
    """A DNG written by write_dng, with the pieces a test compares against."""

    path: Path
    preview_jpeg: bytes | None  # the embedded JPEG preview exactly as stored, if any
    thumbnail: Image.Image | None  # the uncompressed IFD0 thumbnail, if any
    raw_size: tuple[int, int]  # (width, height) of the CFA image as stored, before orientation


def srgb_to_linear(pixels: np.ndarray) -> np.ndarray:
    """8-bit sRGB values to linear light in [0, 1] (the inverse sRGB transfer curve)."""
    v = pixels.astype(np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def mosaic_rggb(photo: Image.Image) -> np.ndarray:
    """The photo as an RGGB Bayer sensor image: uint16, values between BLACK_LEVEL and WHITE_LEVEL, even size."""
    rgb = np.asarray(photo.convert("RGB"))
    height, width = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    linear = srgb_to_linear(rgb[:height, :width]) * np.asarray(CAMERA_GAINS) * np.asarray(LIGHT_TINT)
    sensor = np.empty((height, width), dtype=np.float64)
    sensor[0::2, 0::2] = linear[0::2, 0::2, 0]  # R
    sensor[0::2, 1::2] = linear[0::2, 1::2, 1]  # G
    sensor[1::2, 0::2] = linear[1::2, 0::2, 1]  # G
    sensor[1::2, 1::2] = linear[1::2, 1::2, 2]  # B
    return np.round(BLACK_LEVEL + sensor * (WHITE_LEVEL - BLACK_LEVEL)).astype(np.uint16)


def _rational(value: float, signed: bool) -> tuple[int, int]:
    denominator = 10000
    numerator = int(round(value * denominator))
    if not signed and numerator < 0:
        raise ValueError(f"unsigned rational cannot hold {value}")
    return numerator, denominator


def _field_bytes(kind: int, values: object) -> tuple[int, bytes]:
    """(count, little-endian payload) of one TIFF field."""
    if kind == _ASCII:
        data = str(values).encode("ascii") + b"\x00"
        return len(data), data
    items = list(values) if isinstance(values, (list, tuple)) else [values]  # type: ignore[call-overload]
    if kind in (_RATIONAL, _SRATIONAL):
        code = "i" if kind == _SRATIONAL else "I"
        parts = [struct.pack(f"<{code}{code}", *_rational(float(v), kind == _SRATIONAL)) for v in items]
        return len(items), b"".join(parts)
    return len(items), struct.pack(f"<{len(items)}{_TYPE_CODE[kind]}", *items)


class _Ifd:
    """One image file directory: tags, plus the blobs its StripOffsets point to."""

    def __init__(self) -> None:
        self.fields: dict[int, tuple[int, object]] = {}
        self.strip: bytes | None = None  # this IFD's image data (one strip)
        self.children: list[_Ifd] = []  # SubIFDs (tag 330)
        self.exif: _Ifd | None = None  # EXIF IFD (tag 34665)

    def set(self, tag: int, kind: int, values: object) -> None:
        self.fields[tag] = (kind, values)

    def size(self) -> int:
        """Bytes of the directory and its out-of-line values; independent of where it lands."""
        total = 2 + 12 * len(self.fields) + 4
        for kind, values in self.fields.values():
            _, data = _field_bytes(kind, values)
            if len(data) > 4:
                total += len(data) + len(data) % 2
        return total

    def encode(self, at: int) -> bytes:
        """The directory written at file offset `at`, its long values right after it."""
        tags = sorted(self.fields)
        extra = bytearray()
        extra_at = at + 2 + 12 * len(tags) + 4
        out = bytearray(struct.pack("<H", len(tags)))
        for tag in tags:
            kind, values = self.fields[tag]
            count, data = _field_bytes(kind, values)
            if len(data) <= 4:
                out += struct.pack("<HHI", tag, kind, count) + data.ljust(4, b"\x00")
            else:
                out += struct.pack("<HHII", tag, kind, count, extra_at + len(extra))
                extra += data + b"\x00" * (len(data) % 2)
        out += struct.pack("<I", 0)  # no next IFD: previews and raw live in SubIFDs
        return bytes(out + extra)


def _layout(root: _Ifd, ifds_last: bool) -> bytes:
    """Serialise a TIFF: header, then the directories and the image strips in either order (two passes)."""
    order: list[_Ifd] = []

    def walk(ifd: _Ifd) -> None:
        order.append(ifd)
        for child in ifd.children:
            walk(child)
        if ifd.exif is not None:
            walk(ifd.exif)

    walk(root)
    # Placeholder pointers have the final sizes, so directory sizes are known before any offset is.
    for ifd in order:
        if ifd.strip is not None:
            ifd.set(273, _LONG, 0)
            ifd.set(279, _LONG, len(ifd.strip))
        if ifd.children:
            ifd.set(330, _LONG, [0] * len(ifd.children))
        if ifd.exif is not None:
            ifd.set(34665, _LONG, 0)
    directories = [("ifd", ifd, ifd.size()) for ifd in order]
    strips = [("strip", ifd, len(ifd.strip)) for ifd in order if ifd.strip is not None]
    chunks = strips + directories if ifds_last else directories + strips
    positions: dict[tuple[str, int], int] = {}
    cursor = 8
    for kind, ifd, size in chunks:
        cursor += cursor % 2  # TIFF offsets are word-aligned
        positions[(kind, id(ifd))] = cursor
        cursor += size
    for ifd in order:
        if ifd.strip is not None:
            ifd.set(273, _LONG, positions[("strip", id(ifd))])
        if ifd.children:
            ifd.set(330, _LONG, [positions[("ifd", id(c))] for c in ifd.children])
        if ifd.exif is not None:
            ifd.set(34665, _LONG, positions[("ifd", id(ifd.exif))])
    out = bytearray(b"II*\x00" + struct.pack("<I", positions[("ifd", id(root))]))
    for kind, ifd, _ in chunks:
        at = positions[(kind, id(ifd))]
        out += b"\x00" * (at - len(out))
        out += ifd.encode(at) if kind == "ifd" else (ifd.strip or b"")
    return bytes(out)


def _image_tags(ifd: _Ifd, width: int, height: int, subfile: int) -> None:
    ifd.set(254, _LONG, subfile)  # NewSubFileType: 0 main image, 1 reduced-resolution preview
    ifd.set(256, _LONG, width)
    ifd.set(257, _LONG, height)
    ifd.set(259, _SHORT, 1)  # Compression: none
    ifd.set(278, _LONG, height)  # RowsPerStrip: the whole image is one strip
    ifd.set(284, _SHORT, 1)  # PlanarConfiguration: chunky


def _raw_ifd(sensor: np.ndarray) -> _Ifd:
    ifd = _Ifd()
    height, width = sensor.shape
    _image_tags(ifd, width, height, 0)
    ifd.set(258, _SHORT, 16)
    ifd.set(262, _SHORT, 32803)  # PhotometricInterpretation: CFA
    ifd.set(277, _SHORT, 1)
    ifd.set(33421, _SHORT, [2, 2])  # CFARepeatPatternDim
    ifd.set(33422, _BYTE, [0, 1, 1, 2])  # CFAPattern: R G / G B
    ifd.set(50710, _BYTE, [0, 1, 2])  # CFAPlaneColor
    ifd.set(50711, _SHORT, 1)  # CFALayout: rectangular
    ifd.set(50714, _LONG, BLACK_LEVEL)
    ifd.set(50717, _LONG, WHITE_LEVEL)
    ifd.strip = sensor.astype("<u2").tobytes()
    return ifd


def _rgb_ifd(image: Image.Image) -> _Ifd:
    """An uncompressed 8-bit RGB thumbnail directory."""
    ifd = _Ifd()
    _image_tags(ifd, image.width, image.height, 1)
    ifd.set(258, _SHORT, [8, 8, 8])
    ifd.set(262, _SHORT, 2)  # RGB
    ifd.set(277, _SHORT, 3)
    ifd.strip = np.asarray(image.convert("RGB"), dtype=np.uint8).tobytes()
    return ifd


def _jpeg_ifd(image: Image.Image, jpeg: bytes) -> _Ifd:
    ifd = _Ifd()
    _image_tags(ifd, image.width, image.height, 1)
    ifd.set(258, _SHORT, [8, 8, 8])
    ifd.set(259, _SHORT, 7)  # Compression: JPEG
    ifd.set(262, _SHORT, 6)  # YCbCr, as baseline JPEG stores it
    ifd.set(277, _SHORT, 3)
    ifd.set(50970, _LONG, 2)  # PreviewColorSpace: sRGB
    ifd.strip = jpeg
    return ifd


def _shrunk(photo: Image.Image, long_side: int) -> Image.Image:
    copy = photo.convert("RGB")
    copy.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    return copy


def write_dng(
    path: Path,
    photo: Image.Image,
    *,
    preview_side: int | None = None,
    thumbnail_side: int | None = None,
    orientation: int = 1,
    make: str = "PhotoSeek",
    model: str = "Test Bayer 12",
    taken: str | None = "2021:07:14 16:30:05",
    ifds_last: bool = False,
) -> RawSample:
    """Write `photo` as a DNG at `path` and return what was embedded.

    `preview_side`: long side of an embedded baseline JPEG preview (None: no JPEG preview).
    `thumbnail_side`: long side of a small uncompressed RGB thumbnail in IFD0 (None: IFD0 holds the raw image).
    `orientation`: EXIF/TIFF orientation (1-8) in IFD0; previews and raw data are stored unrotated, as cameras do.
    `taken`: DateTimeOriginal ("YYYY:MM:DD HH:MM:SS") in the EXIF IFD, or None to leave it out.
    `ifds_last`: write the image data first and every directory after it, as some TIFF writers do.
    """
    sensor = mosaic_rggb(photo)
    raw = _raw_ifd(sensor)
    preview_jpeg = thumbnail = None
    if thumbnail_side is not None:
        thumbnail = _shrunk(photo, thumbnail_side)
        root = _rgb_ifd(thumbnail)
        root.children.append(raw)
    else:
        root = raw
    if preview_side is not None:
        preview = _shrunk(photo, preview_side)
        buffer = io.BytesIO()
        preview.save(buffer, format="JPEG", quality=90)
        preview_jpeg = buffer.getvalue()
        root.children.append(_jpeg_ifd(preview, preview_jpeg))
    color_matrix = np.diag(CAMERA_GAINS) @ _XYZ_TO_SRGB  # XYZ -> camera native values
    root.set(271, _ASCII, make)
    root.set(272, _ASCII, model)
    root.set(274, _SHORT, orientation)
    root.set(305, _ASCII, "PhotoSeek tests/support/raw_sample.py")
    root.set(50706, _BYTE, [1, 4, 0, 0])  # DNGVersion
    root.set(50707, _BYTE, [1, 1, 0, 0])  # DNGBackwardVersion
    root.set(50708, _ASCII, f"{make} {model}")  # UniqueCameraModel
    root.set(50721, _SRATIONAL, color_matrix.ravel().tolist())  # ColorMatrix1
    as_shot = [g * t for g, t in zip(CAMERA_GAINS, LIGHT_TINT, strict=True)]
    root.set(50728, _RATIONAL, as_shot)  # AsShotNeutral: how a neutral grey looked to the sensor
    root.set(50778, _SHORT, 21)  # CalibrationIlluminant1: D65
    if taken is not None:
        root.set(306, _ASCII, taken)
        root.exif = _Ifd()
        root.exif.set(36867, _ASCII, taken)  # DateTimeOriginal
    path = Path(path)
    path.write_bytes(_layout(root, ifds_last))
    return RawSample(path, preview_jpeg, thumbnail, (sensor.shape[1], sensor.shape[0]))
