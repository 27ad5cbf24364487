"""Helpers and fixtures shared by the desktop tests (no tests here): real photo folders, a window factory, drops."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QTreeWidget

from desktop.app import create_main_window
from desktop.main_window import MainWindow
from tests.photo_corpus import available_photos, load_photo, materialize
from tests.raw_sample import write_dng

WAIT_MS = 120_000  # indexing on a loaded 2-core machine can be slow; a hang still fails
DATED_FROM = 1_600_000_000.0  # the `indexed` photos' file dates: one a day from here, in name order


def photo_folder(dest: Path, copies: int = 1, max_side: int = 384) -> Path:
    """A folder of real photos (every corpus photo available here), `copies` times each under new names."""
    written = materialize(dest, max_side=max_side)
    for i in range(1, copies):
        for name, path in written.items():
            shutil.copyfile(path, dest / f"{name}_copy{i}{path.suffix}")
    return dest


def corpus_size() -> int:
    return len(available_photos())


def drop_paths(window: MainWindow, paths: list[Path]) -> None:
    """Drag `paths` over the window and drop them, as a file manager would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(window.rect().center())
    enter = QDragEnterEvent(pos.toPoint(), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted(), "the window refused the drag"
    drop = QDropEvent(pos, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(window, drop)
    assert drop.isAccepted(), "the window refused the drop"


@pytest.fixture()
def settings_file(tmp_path: Path) -> Path:
    return tmp_path / "settings.ini"


@pytest.fixture()
def make_window(qtbot, settings_file: Path) -> Iterator[Callable[..., MainWindow]]:
    """Factory: an open main window over a library, shown, with the library opened."""
    windows: list[MainWindow] = []

    def make(library: Path, **kwargs: object) -> MainWindow:
        settings = QSettings(str(settings_file), QSettings.IniFormat)
        window = create_main_window(library, settings, **kwargs)
        windows.append(window)
        with qtbot.waitSignal(window.controller.ready, timeout=WAIT_MS):
            window.show()
        return window

    yield make
    for window in windows:
        window.close()  # saves settings and waits for the workers, so nothing runs after the test


def wait_for_query(qtbot, window: MainWindow, query: str) -> None:
    """Wait until the grid shows the answer to `query` ("" = the whole library)."""
    qtbot.waitUntil(
        lambda: window.results_received and window.photo_list.query == query and not window.search_pending,
        timeout=WAIT_MS,
    )


def click_row(qtbot, tree: QTreeWidget, text: str) -> None:
    """Click the row of a list (QTreeWidget) whose first column reads `text`, as a user would."""
    items = tree.findItems(text, Qt.MatchExactly, 0)
    assert items, f"no row {text!r} in {tree.objectName()}"
    tree.scrollToItem(items[0])
    qtbot.mouseClick(tree.viewport(), Qt.LeftButton, pos=tree.visualItemRect(items[0]).center())


def names(window: MainWindow) -> list[str]:
    """File names of the grid's rows, in order."""
    return [Path(p).stem for p in window.grid_model.paths()]


@pytest.fixture(scope="session")
def indexed(tmp_path_factory: pytest.TempPathFactory, starter_package_dir: Path) -> tuple[Path, Path]:
    """(photo folder, index database file): the corpus photos indexed once per test session with the starter
    (the database also keeps core's tag-vocabulary embeddings, so tests that copy it skip that work)."""
    from desktop.library_service import LibraryService

    root = tmp_path_factory.mktemp("indexed")
    photos = photo_folder(root / "photos")
    for day, path in enumerate(sorted(photos.iterdir())):  # one photo a day, in name order (sort-by-date tests)
        os.utime(path, (DATED_FROM + day * 86_400, DATED_FROM + day * 86_400))
    (root / "lib" / "models").mkdir(parents=True)
    (root / "lib" / "models" / "starter").symlink_to(starter_package_dir, target_is_directory=True)
    report = LibraryService(root / "lib").index([photos])
    assert report.indexed == corpus_size() and report.failed == 0
    return photos, root / "lib" / "index.sqlite3"


@pytest.fixture()
def indexed_library(library: Path, indexed: tuple[Path, Path]) -> Path:
    """The `library` fixture with the corpus already indexed in it."""
    shutil.copyfile(indexed[1], library / "index.sqlite3")
    shutil.copyfile(indexed[1].with_name("settings.json"), library / "settings.json")  # core's serving model
    return library


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
