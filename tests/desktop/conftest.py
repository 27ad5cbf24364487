"""Fixtures of the desktop tests: a settings file, a window factory, and the corpus indexed once per session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from desktop.app import create_main_window
from desktop.main_window import MainWindow
from tests.desktop.support import DATED_FROM, WAIT_MS, corpus_size, photo_folder


@pytest.fixture()
def settings_file(tmp_path: Path) -> Path:
    return tmp_path / "settings.ini"


@pytest.fixture()
def make_window(qtbot, settings_file: Path) -> Iterator[Callable[..., MainWindow]]:
    """Factory: an open main window over a library, shown, with the library opened."""
    windows: list[MainWindow] = []

    def make(library: Path, **kwargs: object) -> MainWindow:
        settings = QSettings(str(settings_file), QSettings.IniFormat)
        # No start-up catch-up unless a test asks: each test's index_finished must be its own job's.
        kwargs.setdefault("catch_up", False)
        window = create_main_window(library, settings, **kwargs)
        windows.append(window)
        with qtbot.waitSignal(window.controller.ready, timeout=WAIT_MS):
            window.show()
        return window

    yield make
    for window in windows:
        window.close()  # saves settings and waits for the workers, so nothing runs after the test


@pytest.fixture(scope="session")
def indexed(tmp_path_factory: pytest.TempPathFactory, starter_package_dir: Path) -> tuple[Path, Path]:
    """(photo folder, index database file): the corpus photos indexed once per test session with the starter
    (the database also keeps core's tag-vocabulary embeddings, so tests that copy it skip that work; the
    embeddings themselves lie beside it, in `vectors/`)."""
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
    shutil.copytree(indexed[1].with_name("vectors"), library / "vectors")  # the embedding store
    shutil.copyfile(indexed[1].with_name("settings.json"), library / "settings.json")  # core's serving model
    return library
