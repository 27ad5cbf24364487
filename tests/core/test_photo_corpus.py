"""The real-photo corpus: catalogue sanity, and materialize writing faithful, decodable RGB files."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.tagging import default_vocabulary
from tests.photo_corpus import (
    ROOTS_ENV,
    all_photos,
    available_photos,
    load_photo,
    materialize,
    photo_path,
)
from tests.photo_corpus_tags import HELD_OUT, QUERY_GROUPS, TAGS, groups_of, tags_of

SKIMAGE_NAMES = [p.name for p in all_photos() if p.source.startswith("PyPI scikit-image:")]


def _source_pixels(name: str) -> np.ndarray:
    """The shipped file decoded straight from disk (not through the corpus loader), as an RGB array."""
    path = photo_path(name)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            gray = np.asarray(arrays["data"], dtype=np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    with Image.open(path) as image:
        assert image.getexif().get(0x0112, 1) == 1, "a rotated source would need its size swapped here"
        return np.asarray(image.convert("RGB"))


def _thumb(pixels: np.ndarray, side: int = 32) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).resize((side, side), Image.Resampling.BOX), dtype=np.float32)


def test_catalogue_is_well_formed() -> None:
    photos = all_photos()
    names = [p.name for p in photos]
    assert 20 <= len(photos) <= 120
    assert len(set(names)) == len(names)
    assert len({p.caption for p in photos}) == len(photos)
    for photo in photos:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", photo.name), photo.name
        assert len(photo.caption.split()) >= 2, photo.name
        assert 1 <= len(photo.labels) <= 3, photo.name
        assert all(label and label == label.strip().lower() for label in photo.labels), photo.name
        assert re.match(r"(PyPI|Debian) [\w.+-]+: \S+\.(png|jpg|npz)$", photo.source), photo.source
    available = available_photos()
    assert available == [p for p in photos if p in available]  # same order, subset


def test_every_photo_has_tags_from_the_default_vocabulary() -> None:
    vocabulary = set(default_vocabulary())
    for photo in all_photos():
        assert photo.tags == tags_of(photo.name)
        assert len(set(photo.tags)) == len(photo.tags), photo.name
        assert set(photo.tags) <= vocabulary, (photo.name, set(photo.tags) - vocabulary)
    assert set(TAGS) == {p.name for p in all_photos()}  # no tags for a photo the catalogue lacks
    assert HELD_OUT < set(TAGS)  # the held-out photos are catalogue photos, and not all of them


def test_query_groups_cover_the_hard_kinds_of_photo() -> None:
    groups = {name: groups_of(tags_of(name)) for name in TAGS}
    assert groups["navy_officer_portrait"] == ["people"]
    assert set(groups["ball_toss_office"]) == {"people", "black and white", "indoor"}
    assert groups["milky_way_sea"] == ["night / dusk"]
    assert groups["red_apple"] == ["other"]
    for group in QUERY_GROUPS:
        assert sum(group in g for g in groups.values()) >= 5, group


def test_an_unpacked_wheel_under_a_root_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ultralytics is no dependency: its photos are found in a wheel unpacked under PHOTOSEEK_CORPUS_ROOTS.
    folder = tmp_path / "ultralytics" / "assets"
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 6), (200, 30, 30)).save(folder / "bus.jpg")
    monkeypatch.setenv(ROOTS_ENV, str(tmp_path))
    assert photo_path("bus_street") == folder / "bus.jpg"
    assert "bus_street" in {p.name for p in available_photos()}


def test_skimage_photos_are_available() -> None:
    available = {p.name for p in available_photos()}
    assert len(SKIMAGE_NAMES) >= 10
    assert set(SKIMAGE_NAMES) <= available
    for name in SKIMAGE_NAMES:
        assert photo_path(name).is_file()


def test_materialize_jpeg_writes_the_real_photos(tmp_path: Path) -> None:
    names = [p.name for p in available_photos()]
    out = tmp_path / "photos"
    written = materialize(out, names)
    assert list(written) == names
    assert sorted(out.iterdir()) == sorted(written.values())
    for name, path in written.items():
        assert path.suffix == ".jpg"
        source = _source_pixels(name)
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert image.mode == "RGB"
            assert image.size == (source.shape[1], source.shape[0]), name
            pixels = np.asarray(image)
        # Same picture: JPEG at quality 92 stays within a few grey levels on a coarse grid.
        assert np.abs(_thumb(pixels) - _thumb(source)).mean() < 4.0, name


def test_materialize_defaults_to_every_available_photo(tmp_path: Path) -> None:
    names = [p.name for p in available_photos()]
    written = materialize(tmp_path, fmt="jpeg", max_side=48)
    assert list(written) == names


def test_png_is_a_lossless_rgb_copy(tmp_path: Path) -> None:
    names = ["chelsea_cat", "cameraman", "coffee"]  # RGB and grayscale sources
    written = materialize(tmp_path, names, fmt="png")
    for name in names:
        with Image.open(written[name]) as image:
            assert image.format == "PNG"
            assert image.mode == "RGB"
            pixels = np.asarray(image)
        np.testing.assert_array_equal(pixels, _source_pixels(name))
    gray = np.asarray(Image.open(written["cameraman"]))
    np.testing.assert_array_equal(gray[:, :, 0], gray[:, :, 2])


def test_max_side_shrinks_large_photos_and_keeps_small_ones(tmp_path: Path) -> None:
    names = ["astronaut", "chelsea_cat", "rocket_launch_pad", "coffee"]  # 512x512, 451x300, 640x427, 600x400
    for limit in (400, 2000):
        written = materialize(tmp_path / str(limit), names, max_side=limit)
        for name in names:
            height, width = _source_pixels(name).shape[:2]
            with Image.open(written[name]) as image:
                got_w, got_h = image.size
            assert max(got_w, got_h) == min(limit, max(width, height)), name
            assert abs(got_w / got_h - width / height) < 0.01, name
            if limit >= max(width, height):
                assert (got_w, got_h) == (width, height)


def test_available_photos_are_all_different() -> None:
    # Catches two names pointing at one file: distinct photos here differ by >= 12 grey levels on this grid.
    names = [p.name for p in available_photos()]
    thumbs = {name: _thumb(np.asarray(load_photo(name, max_side=96).convert("L"))) for name in names}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(thumbs[a] - thumbs[b]).mean() > 5.0, (a, b)


def test_bad_requests_raise_and_write_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(KeyError, match="no_such_photo"):
        materialize(out, ["chelsea_cat", "no_such_photo"])
    with pytest.raises(ValueError, match="format"):
        materialize(out, ["chelsea_cat"], fmt="gif")
    with pytest.raises(ValueError, match="max_side"):
        materialize(out, ["chelsea_cat"], max_side=0)
    assert not out.exists()


def test_missing_package_is_named(tmp_path: Path) -> None:
    available = available_photos()
    missing = [p for p in all_photos() if p not in available]
    if not missing:
        pytest.skip("every catalogued package is installed here")
    package = missing[0].source.split(":")[0].split(" ", 1)[1]
    with pytest.raises(FileNotFoundError, match=re.escape(package)):
        photo_path(missing[0].name)
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError):
        materialize(out, ["chelsea_cat", missing[0].name])
    assert not out.exists()


def test_unpacked_debian_roots_are_searched_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A folder laid out like `dpkg -x opencv-doc_*.deb ROOT`, holding a real photo file at one catalogued path.
    entry = next(p for p in all_photos() if p.name == "toys_and_shells")
    relpath = entry.source.split(": ", 1)[1]
    root = tmp_path / "unpacked"
    (root / relpath).parent.mkdir(parents=True)
    shutil.copyfile(photo_path("chelsea_cat"), root / relpath)
    monkeypatch.setenv(ROOTS_ENV, str(root))
    assert photo_path("toys_and_shells") == root / relpath
    assert "toys_and_shells" in {p.name for p in available_photos()}
