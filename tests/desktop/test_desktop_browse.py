"""The desktop library service's browse list: a RAW+JPEG pair shows as its JPEG, like search."""

from __future__ import annotations

from pathlib import Path

from tests.photo_corpus import load_photo, materialize
from tests.support.raw_sample import write_dng


def test_browsing_shows_a_raw_and_jpeg_pair_as_its_jpeg(library: Path, tmp_path: Path) -> None:
    from desktop.library_service import LibraryService

    folder = tmp_path / "card"
    materialize(folder, ["coffee", "chinese_pagoda"])
    cat = load_photo("chelsea_cat")
    cat.save(folder / "IMG_0007.JPG", quality=92)
    write_dng(folder / "IMG_0007.dng", cat)
    write_dng(folder / "lone.dng", load_photo("astronaut"))
    service = LibraryService(library)
    assert service.index([folder]).indexed == 5
    names = {Path(p).name for p in service.browse()[0]}
    assert names == {"coffee.jpg", "chinese_pagoda.jpg", "IMG_0007.JPG", "lone.dng"}
    assert {Path(p).name for p in service.photo_paths()[0]} == names
