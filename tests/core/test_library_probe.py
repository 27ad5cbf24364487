"""A read-only look at a library (core.library_probe): its indexed photos found and decoded by this installation,
a damaged one named, and not one byte of the library changed (real photos, real index, tiny real model)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.index_db import read_listing
from core.library import Library
from core.library_probe import probe_library
from tests.photo_corpus import materialize


def library_files(library: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in library.iterdir() if p.is_file()}


@pytest.fixture()
def indexed(tmp_path: Path, tiny_package_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(library, photo folder): three photos indexed in a folder, one more added by itself."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    library = tmp_path / "library"
    shutil.copytree(tiny_package_dir, library / "models" / "tiny")
    photos = materialize(tmp_path / "photos", ["chelsea_cat", "coffee", "astronaut"], max_side=128)
    single = materialize(tmp_path / "loose", ["rocket_launch_pad"], max_side=128)["rocket_launch_pad"]
    report = Library(library).index([next(iter(photos.values())).parent, single])
    assert report.indexed == 4
    return library, next(iter(photos.values())).parent


def test_every_indexed_photo_is_found_and_nothing_is_written(indexed: tuple[Path, Path]) -> None:
    library, folder = indexed
    before = library_files(library)
    probe = probe_library(library)
    assert probe is not None and probe.folders == [str(folder.resolve())]
    assert (probe.indexed, probe.present, probe.found) == (4, 4, 4)
    assert probe.not_found == [] and probe.unreadable == []
    assert library_files(library) == before  # no WAL, no shared-memory file, no migration


def test_photos_this_installation_cannot_read_are_named(indexed: tuple[Path, Path]) -> None:
    library, _ = indexed
    photos = read_listing(library)[1]
    for path in photos:  # damaged after indexing, e.g. by a disk error
        Path(path).write_bytes(b"\xff\xd8\xff but the rest is not a picture")
    probe = probe_library(library)
    assert probe.found == 4  # still found: finding goes by name
    assert len(probe.unreadable) == 1  # one photo per file type is decoded, and all four are JPEGs
    path, reason = probe.unreadable[0]
    assert path in photos and reason


def test_a_library_without_an_index_is_left_alone(tmp_path: Path) -> None:
    assert probe_library(tmp_path / "none") is None and read_listing(tmp_path / "none") is None
    assert not (tmp_path / "none").exists()
