"""Camera RAW decoding on real DNG files made from real photos: embedded previews, demosaic fallback, errors, search."""

from __future__ import annotations

import calendar
import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import cli
from core.errors import ImageDecodeError
from core.preprocess import decode_photo, load_image
from tests.photo_corpus import load_photo, materialize
from tests.support.raw_sample import write_dng

TAKEN = calendar.timegm((2021, 7, 14, 16, 30, 5, 0, 0, 0))  # the DateTimeOriginal write_dng stores by default
CAMERA = "PhotoSeek Test Bayer 12"
MakeBytes = Callable[[Path, Image.Image], bytes]  # (scratch folder, photo) -> file contents


@pytest.fixture(scope="module")
def cat() -> Image.Image:
    return load_photo("chelsea_cat")  # 451 x 300


@pytest.fixture(scope="module")
def big_cat(cat: Image.Image) -> Image.Image:
    """Twice the size, so that a half-size demosaic (451 x 300) still covers a 256-pixel model input."""
    return cat.resize((cat.width * 2, cat.height * 2), Image.Resampling.BICUBIC)


def luminance_correlation(a: Image.Image, b: Image.Image) -> float:
    """Pearson correlation of two images' luminance, both shrunk to the same small grid (same aspect needed)."""
    grid = (96, 64) if a.width >= a.height else (64, 96)
    la, lb = (np.asarray(im.convert("L").resize(grid, Image.Resampling.BOX), dtype=np.float64).ravel() for im in (a, b))
    return float(np.corrcoef(la, lb)[0, 1])


def colour_ratios(image: Image.Image) -> np.ndarray:
    """Mean red / green and blue / green: a camera's uncorrected channel gains shift these a lot."""
    mean = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    return np.array([mean[0] / mean[1], mean[2] / mean[1]])


@pytest.mark.parametrize("thumbnail_side", [None, 128], ids=["raw-in-ifd0", "thumbnail-ifd0-raw-subifd"])
def test_embedded_preview_is_returned_pixel_for_pixel(
    tmp_path: Path, cat: Image.Image, thumbnail_side: int | None
) -> None:
    sample = write_dng(tmp_path / "cat.dng", cat, preview_side=400, thumbnail_side=thumbnail_side)
    image, meta = decode_photo(sample.path, min_side=256)
    embedded = Image.open(io.BytesIO(sample.preview_jpeg)).convert("RGB")
    assert image.mode == "RGB" and image.size == embedded.size == (400, 266)
    np.testing.assert_array_equal(np.asarray(image), np.asarray(embedded))
    # The stored size is the sensor image's, not the preview's; date and camera come from the DNG's own tags.
    assert (meta.width, meta.height) == sample.raw_size == (450, 300)
    assert meta.taken_at == TAKEN and meta.camera == CAMERA


@pytest.mark.parametrize(
    ("orientation", "turn"),
    [(3, Image.Transpose.ROTATE_180), (6, Image.Transpose.ROTATE_270), (8, Image.Transpose.ROTATE_90)],
)
def test_preview_is_turned_by_the_raw_orientation(
    tmp_path: Path, cat: Image.Image, orientation: int, turn: Image.Transpose
) -> None:
    sample = write_dng(tmp_path / "turned.dng", cat, preview_side=451, orientation=orientation)
    image, meta = decode_photo(sample.path, min_side=256)
    embedded = Image.open(io.BytesIO(sample.preview_jpeg)).convert("RGB")
    np.testing.assert_array_equal(np.asarray(image), np.asarray(embedded.transpose(turn)))
    expected = (300, 450) if orientation in (6, 8) else (450, 300)
    assert (meta.width, meta.height) == expected


def test_no_preview_is_demosaiced_to_the_photo(tmp_path: Path, cat: Image.Image, big_cat: Image.Image) -> None:
    sample = write_dng(tmp_path / "bare.dng", big_cat)
    assert sample.preview_jpeg is None and sample.thumbnail is None
    image, meta = decode_photo(sample.path, min_side=256)
    assert image.mode == "RGB" and image.size == (451, 300)  # half the 902 x 600 sensor: binned, not interpolated
    assert luminance_correlation(image, cat) > 0.95
    # The camera's white balance was applied: colours match the photo, not the sensor's green-heavy raw response.
    assert np.all(np.abs(np.log(colour_ratios(image) / colour_ratios(cat))) < 0.15)
    assert (meta.width, meta.height) == (902, 600) and meta.taken_at == TAKEN and meta.camera == CAMERA
    # Asking for more than half the sensor gives a full-resolution demosaic.
    full = load_image(sample.path, min_side=400)
    assert full.size == (902, 600) and luminance_correlation(full, cat) > 0.95


def test_demosaic_applies_the_raw_orientation(tmp_path: Path, big_cat: Image.Image) -> None:
    sample = write_dng(tmp_path / "portrait.dng", big_cat, orientation=6)
    image, meta = decode_photo(sample.path, min_side=256)
    assert image.size == (300, 451) and (meta.width, meta.height) == (600, 902)
    upright = big_cat.transpose(Image.Transpose.ROTATE_270)  # orientation 6: turn 90 degrees clockwise
    assert luminance_correlation(image, upright) > 0.95
    assert luminance_correlation(image, big_cat.transpose(Image.Transpose.ROTATE_90)) < 0.5


@pytest.mark.parametrize(("orientation", "turn"), [(1, None), (6, Image.Transpose.ROTATE_270)])
def test_small_thumbnail_is_used_only_when_big_enough(
    tmp_path: Path, cat: Image.Image, big_cat: Image.Image, orientation: int, turn: Image.Transpose | None
) -> None:
    sample = write_dng(tmp_path / "thumb.dng", big_cat, thumbnail_side=160, orientation=orientation)
    assert sample.thumbnail is not None and sample.thumbnail.size == (160, 106)
    # A 256-pixel model input must not be upscaled from a 106-pixel thumbnail: the sensor data is developed.
    developed = load_image(sample.path, min_side=256)
    upright_cat = cat if turn is None else cat.transpose(turn)
    assert developed.size == upright_cat.size and luminance_correlation(developed, upright_cat) > 0.95
    # A small grid thumbnail is served by the embedded (uncompressed RGB) one, turned upright like the photo.
    small = load_image(sample.path, min_side=100)
    expected = sample.thumbnail if turn is None else sample.thumbnail.transpose(turn)
    np.testing.assert_array_equal(np.asarray(small), np.asarray(expected))


def test_unreadable_preview_falls_back_to_the_sensor_data(
    tmp_path: Path, cat: Image.Image, big_cat: Image.Image
) -> None:
    sample = write_dng(tmp_path / "broken_preview.dng", big_cat, preview_side=600)
    data = sample.path.read_bytes()
    start, length = data.index(sample.preview_jpeg), len(sample.preview_jpeg)
    damaged = sample.preview_jpeg[: length // 3] + bytes(length - length // 3)  # JPEG cut off after a third
    sample.path.write_bytes(data[:start] + damaged + data[start + length :])
    image = load_image(sample.path, min_side=256)
    assert image.size == (451, 300) and luminance_correlation(image, cat) > 0.95


def test_missing_capture_date_stays_unknown(tmp_path: Path, cat: Image.Image) -> None:
    # LibRaw stamps "1970:01:01" into previews of undated files; that must not become a date.
    sample = write_dng(tmp_path / "undated.dng", cat, preview_side=451, taken=None)
    _, meta = decode_photo(sample.path, min_side=256)
    assert meta.taken_at is None and meta.camera == CAMERA


@pytest.mark.parametrize("preview_side", [400, None], ids=["preview", "no-preview"])
def test_metadata_when_the_tags_lie_after_the_image_data(
    tmp_path: Path, big_cat: Image.Image, preview_side: int | None
) -> None:
    # Directories written after 1 MB of sensor data lie past the head read for tags: LibRaw's own parse fills in.
    sample = write_dng(tmp_path / "tail.dng", big_cat, preview_side=preview_side, ifds_last=True)
    assert sample.path.read_bytes()[4:8] != b"\x08\x00\x00\x00"  # IFD0 is not right after the header
    image, meta = decode_photo(sample.path, min_side=256)
    assert (meta.width, meta.height) == (902, 600) and meta.taken_at == TAKEN
    if preview_side is not None:  # the camera name then comes from the EXIF LibRaw writes into the preview
        assert meta.camera == CAMERA
    assert luminance_correlation(image, big_cat) > 0.95


def _truncated_dng(folder: Path, photo: Image.Image, name: str) -> Path:
    sample = write_dng(folder / "whole.dng", photo)
    cut = folder / name
    cut.write_bytes(sample.path.read_bytes()[: os.path.getsize(sample.path) // 2])  # sensor data cut in half
    return cut


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("random.nef", lambda folder, photo: np.random.default_rng(0).bytes(20_000), "not a RAW file"),
        ("empty.dng", lambda folder, photo: b"", "truncated or unreadable"),
        ("notes.cr2", lambda folder, photo: b"shopping list: milk, eggs\n" * 40, "not a RAW file"),
        ("header_only.dng", lambda folder, photo: b"II*\x00\x08\x00\x00\x00", "truncated or unreadable"),
        ("half.dng", lambda folder, photo: _truncated_dng(folder, photo, "cut.dng").read_bytes(), "truncated"),
        ("half.nef", lambda folder, photo: _truncated_dng(folder, photo, "cut.nef").read_bytes(), "truncated"),
    ],
)
def test_broken_raw_files_give_a_clear_reason(
    tmp_path: Path, cat: Image.Image, name: str, make: MakeBytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(make(tmp_path, cat))
    with pytest.raises(ImageDecodeError, match=reason) as caught:
        decode_photo(path, min_side=256)
    assert "LibRaw:" in str(caught.value)  # the library's own words are kept for the record


def test_missing_raw_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError, match="file not found"):
        decode_photo(tmp_path / "gone.nef", min_side=256)


def test_without_rawpy_raw_files_say_what_to_install(
    tmp_path: Path, cat: Image.Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = write_dng(tmp_path / "cat.dng", cat, preview_side=400)
    monkeypatch.setitem(sys.modules, "rawpy", None)  # makes `import rawpy` fail as on an install without it
    with pytest.raises(ImageDecodeError, match="pip install rawpy"):
        decode_photo(sample.path, min_side=256)


def test_index_and_search_finds_the_cat_dng(
    library: Path, tmp_path: Path, big_cat: Image.Image, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "card"
    materialize(folder, ["astronaut", "motorcycle", "rocket_launch_pad", "chinese_pagoda"])
    write_dng(folder / "DSC_0001.dng", big_cat)  # no preview: indexed through the demosaic
    write_dng(folder / "DSC_0002.dng", load_photo("coffee"), preview_side=600)  # indexed through its preview
    (folder / "DSC_0003.NEF").write_bytes(b"\x00" * 4096)  # a card read that went wrong
    assert cli.main(["index", str(folder), "--library", str(library), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["indexed"] == 6 and report["failed"] == 1
    [(failed_path, reason)] = report["failures"]
    assert Path(failed_path).name == "DSC_0003.NEF" and "not a RAW file" in reason

    assert cli.main(["search", "a cat", "--top", "3", "--json", "--library", str(library)]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert Path(hits[0]["path"]).name == "DSC_0001.dng"
    # The RAW files' own camera and date were stored: the filters find exactly them.
    assert cli.main(["search", "camera:photoseek year:2021", "--json", "--library", str(library)]) == 0
    found = sorted(Path(h["path"]).name for h in json.loads(capsys.readouterr().out))
    assert found == ["DSC_0001.dng", "DSC_0002.dng"]


def test_raw_and_jpeg_of_one_shot_answer_as_one_photo(
    library: Path, tmp_path: Path, big_cat: Image.Image, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "card"
    materialize(folder, ["coffee", "astronaut", "rocket_launch_pad"])
    big_cat.save(folder / "IMG_0007.JPG", quality=92)  # the camera wrote both files of one shot
    write_dng(folder / "IMG_0007.dng", big_cat)
    write_dng(folder / "lone.dng", load_photo("chinese_pagoda"))  # a RAW without a JPEG stays a photo of its own
    assert cli.main(["index", str(folder), "--library", str(library), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["indexed"] == 6  # both files are indexed (tags, sidecars, metadata)

    # --top: every photo ranked, so the RAW without a twin shows up even though it is no cat.
    assert cli.main(["search", "a cat", "--top", "10", "--json", "--library", str(library)]) == 0
    hits = json.loads(capsys.readouterr().out)
    names = [Path(h["path"]).name for h in hits]
    assert names[0] == "IMG_0007.JPG" and "IMG_0007.dng" not in names and "lone.dng" in names
    assert Path(hits[0]["raw"]).name == "IMG_0007.dng" and all(h["raw"] is None for h in hits[1:])
    assert cli.main(["search", "a cat", "--library", str(library)]) == 0
    assert "IMG_0007.JPG  (+ IMG_0007.dng)" in capsys.readouterr().out

    # Like the RAW: its JPEG twin is the same shot, so neither file comes back.
    assert cli.main(["similar", str(folder / "IMG_0007.dng"), "--json", "--library", str(library)]) == 0
    similar = {Path(h["path"]).name for h in json.loads(capsys.readouterr().out)}
    assert similar and not similar & {"IMG_0007.JPG", "IMG_0007.dng"}
    assert cli.main(["similar", str(folder / "coffee.jpg"), "--json", "--library", str(library)]) == 0
    similar = [Path(h["path"]).name for h in json.loads(capsys.readouterr().out)]
    assert "IMG_0007.JPG" in similar and "IMG_0007.dng" not in similar
