"""Helpers shared by the desktop tests: real photo folders, drops, waiting for the grid, a GUI heartbeat
(fixtures: conftest.py)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox, QTreeWidget

from core import cli
from desktop.main_window import MainWindow
from tests.photo_corpus import available_photos, materialize

STALL_LIMIT_S = 0.100  # the longest the GUI thread may stall while work runs (issue goals)
WAIT_MS = 120_000  # indexing on a loaded 2-core machine can be slow; a hang still fails
DATED_FROM = 1_600_000_000.0  # the `indexed` photos' file dates: one a day from here, in name order


def photo_folder(dest: Path, copies: int = 1, max_side: int = 384) -> Path:
    """A folder of real photos (every corpus photo whose package is installed), `copies` times each under new names."""
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


def cli_search(capsys, library: Path, query: str) -> list[str]:
    """The paths `python -m core search QUERY --json` prints (no --top: the matches), in order; run in this process."""
    capsys.readouterr()
    assert cli.main(["search", query, "--library", str(library), "--json"]) == 0
    return [hit["path"] for hit in json.loads(capsys.readouterr().out)]


def answer_next_message_box(qtbot, button_text: str) -> None:
    """Click `button_text` in the next modal message box (the test cannot click while exec() runs)."""

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, click)
            return
        button = next(b for b in box.buttons() if b.text().replace("&", "") == button_text)
        button.click()

    QTimer.singleShot(0, click)


class Heartbeat:
    """A 10 ms timer on the GUI thread; the longest gap between its ticks is the longest stall."""

    def __init__(self) -> None:
        self.timer = QTimer(interval=10)
        self.timer.timeout.connect(self._tick)
        self.last = 0.0
        self.longest = 0.0
        self.ticks = 0

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.ticks:
            self.longest = max(self.longest, now - self.last)
        self.last, self.ticks = now, self.ticks + 1

    def __enter__(self) -> Heartbeat:
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.stop()
