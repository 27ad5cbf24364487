"""HEIC photos, content sniffing, moves, and watched folders kept current."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.library import Library
from core.scanning import scan
from tests.photo_corpus import load_photo, materialize
from tests.support.waiting import wait_for


def test_heic_and_extensionless_photos_are_indexed(library: Path, tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    folder = tmp_path / "phone"
    folder.mkdir()
    pillow_heif.from_pillow(load_photo("chelsea_cat")).save(folder / "IMG_0001.HEIC", quality=90)
    load_photo("coffee").save(folder / "exported_without_extension", format="JPEG")
    (folder / "notes").write_text("not a photo")
    assert sorted(Path(p.path).name for p in scan([folder])) == ["IMG_0001.HEIC", "exported_without_extension"]
    lib = Library(library)
    report = lib.index([folder])
    assert report.indexed == 2 and report.failed == 0
    assert Path(lib.search_engine().search("a cat")[0].path).name == "IMG_0001.HEIC"


def test_moved_photo_keeps_its_embedding_and_tags(library: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    paths = materialize(folder, ["chelsea_cat", "coffee"])
    lib = Library(library)
    lib.index([folder])
    with lib.open_index() as index:
        before = {p: s.photo_id for p, s in index.file_states().items()}
    (folder / "2024").mkdir()
    moved = folder / "2024" / "renamed_cat.jpg"
    shutil.move(paths["chelsea_cat"], moved)
    report = lib.index([folder])
    assert report.moved == 1 and report.indexed == 0 and report.removed == 0
    with lib.open_index() as index:
        after = {p: s.photo_id for p, s in index.file_states().items()}
    assert after[str(moved.resolve())] == before[str(paths["chelsea_cat"].resolve())]


def test_watcher_indexes_new_photos_and_forgets_deleted_ones(library: Path, tmp_path: Path) -> None:
    folder = tmp_path / "watched"
    materialize(folder, ["coffee"])
    lib = Library(library)
    lib.index([folder])
    reports = []
    with lib.watcher(reports.append, debounce_s=0.3):
        new = materialize(folder, ["chelsea_cat"])["chelsea_cat"]
        assert wait_for(lambda: any(r.indexed for r in reports))
        assert Path(lib.search_engine().search("a cat")[0].path) == new.resolve()
        (folder / "coffee.jpg").unlink()

        def coffee_gone() -> bool:
            with lib.open_index() as index:
                return not any(p.endswith("coffee.jpg") for p in index.file_states())

        assert wait_for(coffee_gone)
