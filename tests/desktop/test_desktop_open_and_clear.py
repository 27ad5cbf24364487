"""Small things a user notices: "Open in Default App" with no app set up says so, and the search box's clear button
leaves with the text after Show All and Find Similar (offscreen Qt, real photos, real starter model)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMessageBox, QToolButton, QWidget

from tests.desktop.support import WAIT_MS, wait_for_query

FADE_MS = 5_000  # the clear button fades out in a fraction of a second


def nothing_opened_box(parent: QWidget) -> QMessageBox:
    """The "Cannot open" message shown over `parent` (it opens at once, without blocking)."""
    box = parent.findChild(QMessageBox, "cannotOpenBox")
    assert box is not None and box.isVisible(), "the user was not told that nothing opened the file"
    return box


def test_open_in_default_app_without_an_app_tells_the_user(qtbot, make_window, indexed_library: Path) -> None:
    # Offscreen Qt has no app for any file: QDesktopServices.openUrl returns False, as on a desktop without one.
    assert QGuiApplication.platformName() == "offscreen"
    window = make_window(indexed_library, watch=False)
    wait_for_query(qtbot, window, "")

    window.open_photo(0)
    view = window.photo_view
    qtbot.waitUntil(view.isVisible, timeout=WAIT_MS)
    qtbot.mouseClick(view.open_button, Qt.LeftButton)
    box = nothing_opened_box(view)
    assert box.text() == f"No app is set up to open “{view.path}”."
    assert view.isVisible()  # the photo stays on screen behind the message
    box.button(QMessageBox.Ok).click()
    qtbot.waitUntil(lambda: view.findChild(QMessageBox, "cannotOpenBox") is None, timeout=WAIT_MS)
    view.close()

    # The same from the main window's Photo menu, for the photo selected in the grid.
    window.grid.select_row(1)
    window.menu_actions["open_file"].trigger()
    box = nothing_opened_box(window)
    assert box.text() == f"No app is set up to open “{window.grid_model.path(1)}”."


def test_the_clear_button_leaves_with_the_text_after_show_all_and_find_similar(
    qtbot, make_window, indexed_library: Path
) -> None:
    window = make_window(indexed_library, watch=False)
    wait_for_query(qtbot, window, "")
    clear_button = window.search_edit.findChild(QToolButton)  # the box's own clear button

    def type_a_query() -> None:
        window.search_edit.setFocus()
        qtbot.keyClicks(window.search_edit, "a cat")
        wait_for_query(qtbot, window, "a cat")
        qtbot.waitUntil(clear_button.isVisible, timeout=FADE_MS)

    type_a_query()
    window.menu_actions["show_all"].trigger()
    wait_for_query(qtbot, window, "")
    assert window.search_edit.text() == ""
    qtbot.waitUntil(lambda: not clear_button.isVisible(), timeout=FADE_MS)

    type_a_query()
    window.grid.select_row(0)
    window.menu_actions["similar"].trigger()
    qtbot.waitUntil(lambda: window.photo_list.state.similar_to is not None, timeout=WAIT_MS)
    assert window.search_edit.text() == ""
    qtbot.waitUntil(lambda: not clear_button.isVisible(), timeout=FADE_MS)
