"""Image decoding and preprocessing: the reference's pixels exactly, every odd image mode to RGB."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.errors import ImageDecodeError
from core.model_card import PreprocessSpec, ViewSpec
from core.pixels import to_rgb
from core.preprocess import decode_side, load_image, preprocess, resize_view
from tests.support.golden import golden_file


@pytest.mark.parametrize("size", [256, 224])
@pytest.mark.parametrize("name", ["landscape_320x240", "portrait_200x300", "small_100x90"])
def test_view_matches_reference_resize_and_crop_exactly(name: str, size: int) -> None:
    golden = np.load(golden_file("preprocess-golden.npz"))
    image = Image.fromarray(golden[f"input/{name}"])
    ours = np.asarray(resize_view(image, size, ViewSpec("shortest", 1.0), "bilinear")).transpose(2, 0, 1)
    np.testing.assert_array_equal(ours, golden[f"v1_{size}/{name}"])


def test_preprocess_normalises_each_view() -> None:
    spec = PreprocessSpec(
        64, "bicubic", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), (ViewSpec("shortest", 0.875), ViewSpec("squash"))
    )
    image = Image.new("RGB", (300, 100), (255, 0, 128))
    out = preprocess(image, spec)
    assert out.shape == (2, 3, 64, 64) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0], (1.0 - 0.5) / 0.25, atol=1e-5)
    np.testing.assert_allclose(out[:, 1], (0.0 - 0.5) / 0.25, atol=1e-5)
    assert decode_side(spec) == 73  # floor(64 / 0.875): no view needs a bigger decode


@pytest.mark.parametrize("mode", ["L", "LA", "P", "PA", "RGBA", "CMYK", "I;16", "I", "F", "1", "YCbCr"])
def test_every_mode_becomes_rgb(mode: str) -> None:
    image = Image.new("RGB", (8, 6), (200, 100, 50)).convert(mode)
    rgb = to_rgb(image)
    assert rgb.mode == "RGB" and rgb.size == (8, 6)


def test_sixteen_bit_greyscale_keeps_contrast(tmp_path) -> None:
    ramp = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 256).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)  # uint16 array -> 16-bit greyscale PNG
    rgb = np.asarray(load_image(path))
    assert rgb.min() == 0 and rgb.max() >= 250  # scaled, not clipped to white


def test_transparent_palette_composites_on_white() -> None:
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0] * 256)
    image.info["transparency"] = 0
    assert to_rgb(image).getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path) -> None:
    image = Image.new("RGB", (40, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when shown
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert load_image(path).size == (20, 40)


def test_draft_decode_keeps_requested_side(tmp_path) -> None:
    path = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (90, 120, 150)).save(path, quality=80)
    small = load_image(path, min_side=256)
    assert min(small.size) >= 256 and small.size[0] <= 1000  # DCT-scaled, not a full decode


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not a readable image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "not a readable image"),
        (b"hello", "not a readable image"),
    ],
)
def test_unreadable_files_raise_clear_errors(tmp_path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageDecodeError, match=reason):
        load_image(path)


def test_truncated_jpeg_is_refused(tmp_path) -> None:
    path = tmp_path / "cut.jpg"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImageDecodeError):
        load_image(path)


def test_decompression_bomb_is_refused(tmp_path) -> None:
    # A real PNG header claiming 100k x 100k pixels, with almost no data behind it.
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with pytest.raises(ImageDecodeError, match="too large"):
        load_image(path)
