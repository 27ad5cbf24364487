"""The thumbnail cache on real photos: size, orientation, reuse, invalidation, failures, threads."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import ImageDecodeError
from core.thumbnails import ThumbnailCache
from tests.photo_corpus import load_photo, materialize


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return materialize(tmp_path_factory.mktemp("thumb-photos"), ["chelsea_cat", "coffee", "astronaut"])


def test_thumbnail_fits_the_box_and_keeps_the_aspect_ratio(tmp_path: Path, photos: dict[str, Path]) -> None:
    cache = ThumbnailCache(tmp_path / "lib")
    source = Image.open(photos["chelsea_cat"])
    thumb_path = cache.get(photos["chelsea_cat"], size=128)
    assert thumb_path.is_file() and thumb_path.is_relative_to(tmp_path / "lib" / "thumbnails")
    thumb = Image.open(thumb_path)
    assert thumb.format == "JPEG" and thumb.mode == "RGB"
    assert max(thumb.size) == 128
    assert abs(thumb.width / thumb.height - source.width / source.height) < 0.02
    # It still looks like the photo: compare with a plain Pillow downscale of the original.
    reference = source.convert("RGB").resize(thumb.size, Image.Resampling.BICUBIC)
    diff = np.abs(np.asarray(thumb, np.float32) - np.asarray(reference, np.float32)).mean()
    assert diff < 8.0


def test_thumbnail_is_made_once_and_remade_when_the_photo_changes(tmp_path: Path, photos: dict[str, Path]) -> None:
    cache = ThumbnailCache(tmp_path / "lib")
    photo = tmp_path / "cat.jpg"
    photo.write_bytes(photos["chelsea_cat"].read_bytes())
    first = cache.get(photo, size=96)
    made_at = first.stat().st_mtime_ns
    assert cache.get(photo, size=96) == first and first.stat().st_mtime_ns == made_at

    # Another size is another file.
    assert cache.get(photo, size=64) != first

    # The user replaces the photo with another picture: a new thumbnail that shows the new content.
    photo.write_bytes(photos["coffee"].read_bytes())
    os.utime(photo, ns=(made_at + 10**9, made_at + 10**9))
    second = cache.get(photo, size=96)
    assert second != first
    coffee = Image.open(photos["coffee"])
    assert Image.open(second).size[0] / Image.open(second).size[1] == pytest.approx(
        coffee.width / coffee.height, abs=0.02
    )


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = load_photo("coffee", max_side=300)  # landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the stored pixels are sideways
    photo = tmp_path / "rotated.jpg"
    image.save(photo, format="JPEG", exif=exif)
    thumb = Image.open(ThumbnailCache(tmp_path / "lib").get(photo, size=100))
    assert image.width > image.height and thumb.height > thumb.width


def test_small_photos_are_not_enlarged(tmp_path: Path) -> None:
    photo = tmp_path / "small.png"
    load_photo("chelsea_cat", max_side=40).save(photo)
    thumb = Image.open(ThumbnailCache(tmp_path / "lib").get(photo, size=256))
    assert max(thumb.size) == 40


def test_unreadable_and_missing_files_raise_a_clear_error(tmp_path: Path) -> None:
    cache = ThumbnailCache(tmp_path / "lib")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff this is not a jpeg")
    with pytest.raises(ImageDecodeError, match="not a readable image"):
        cache.get(broken)
    with pytest.raises(ImageDecodeError, match="file not found"):
        cache.get(tmp_path / "gone.jpg")
    with pytest.raises(ValueError):
        cache.path_for(broken, size=0)
    assert not list((tmp_path / "lib").rglob("*.jpg"))  # nothing half-written was left behind


def test_concurrent_requests_for_one_photo_give_one_valid_file(tmp_path: Path, photos: dict[str, Path]) -> None:
    cache = ThumbnailCache(tmp_path / "lib")
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: cache.get(photos["astronaut"], size=80), range(8)))
    assert len(set(results)) == 1
    Image.open(results[0]).verify()
    assert [p.name for p in (tmp_path / "lib").rglob("*") if p.is_file()] == [results[0].name]
    assert cache.size_on_disk() == results[0].stat().st_size
