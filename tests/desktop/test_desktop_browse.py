"""Browsing the whole library: a RAW+JPEG pair shows as its JPEG, like search; the library comes as photo ids newest
first, and the grid reads the paths of the pages it shows only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
    order = service.browse()
    names = {Path(p).name for p in service.paths_by_id(order.ids)}
    assert names == {"coffee.jpg", "chinese_pagoda.jpg", "IMG_0007.JPG", "lone.dng"} and len(order.ids) == 4
    assert {Path(p).name for p in service.photo_paths()[0]} == names
    assert order.last_id == max(service.lib.photos_after(0))[0]


def test_the_grid_reads_the_paths_of_the_pages_it_shows_only(qtbot) -> None:
    from desktop.grid_rows import PAGE_ROWS, PAGES_KEPT, LibraryRows
    from desktop.photo_grid import PhotoGridModel
    from desktop.thumbnail_loader import ThumbnailLoader

    ids = np.arange(1_000_000, 0, -1, dtype=np.int64)  # a million photos, newest (highest id) first
    asked: list[np.ndarray] = []

    def read_paths(page: np.ndarray) -> list[str | None]:
        asked.append(page)
        return [None if i == 999_990 else f"/photos/{i}.jpg" for i in page]  # one photo removed meanwhile

    rows = LibraryRows(ids, read_paths)
    model = PhotoGridModel(ThumbnailLoader())  # no thumbnails asked for: only the model's path methods are used
    model.set_rows(rows)
    assert model.rowCount() == 1_000_000 and not asked  # nothing read before a row is shown
    assert model.path(0) == "/photos/1000000.jpg" and model.path(10) == "" and model.path(PAGE_ROWS - 1)
    assert len(asked) == 1 and len(asked[0]) == PAGE_ROWS
    assert model.path(999_999) == "/photos/1.jpg" and len(asked) == 2  # a jump to the end reads its page only
    assert model.row_of("/photos/1.jpg") == 999_999 and model.row_of("/photos/5000.jpg") is None
    for page in range(PAGES_KEPT + 1):
        model.path(page * PAGE_ROWS + 1)
    assert model.row_of("/photos/1000000.jpg") is None  # the oldest pages read are let go
    shown = model.path(PAGES_KEPT * PAGE_ROWS + 1)
    model.append_photos(["/photos/new.jpg", shown])  # indexed while browsing; the second is on screen already
    assert model.rowCount() == 1_000_001 and model.path(1_000_000) == "/photos/new.jpg"
    assert model.row_of("/photos/new.jpg") == 1_000_000
