"""The photo view's keyboard around the "Add a tag…" field: Enter adds and stays, Left/Right page through photos
unless the field has text to edit, Escape leaves the field and a second Escape closes the view (real key events on
the real window, offscreen Qt, real photos)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from desktop.main_window import MainWindow
from desktop.photo_view import PhotoView
from tests.desktop.support import WAIT_MS, wait_for_query


def open_first_photo(qtbot, window: MainWindow) -> PhotoView:
    """Browse the library, open its first photo with Enter in the grid and wait for the photo's tags to load (the
    photo may have none: the model gives only the tags it is sure of)."""
    wait_for_query(qtbot, window, "")
    window.grid.setFocus()
    window.grid.select_row(0)
    with qtbot.waitSignal(window.controller.photo_tags, timeout=WAIT_MS):
        qtbot.keyClick(window.grid, Qt.Key_Return)
    view = window.photo_view
    assert view.isVisible()
    return view


def test_enter_in_the_tag_field_adds_the_tag_and_keeps_the_view_open(qtbot, make_window, indexed_library: Path) -> None:
    window = make_window(indexed_library, watch=False)
    view = open_first_photo(qtbot, window)
    first = view.path
    field = view.tag_editor.add_edit
    qtbot.keyClick(view, Qt.Key_T, Qt.ControlModifier)
    assert field.hasFocus()
    qtbot.keyClicks(field, "garden")
    with qtbot.waitSignal(window.controller.photo_tags, timeout=WAIT_MS):
        qtbot.keyClick(field, Qt.Key_Return)
    assert ("garden", "—", "you") in view.tag_editor.tags()
    assert view.isVisible() and view.path == first
    assert field.hasFocus() and field.text() == ""  # ready for the next tag

    # A second tag the same way, then the view is still there.
    qtbot.keyClicks(field, "summer")
    with qtbot.waitSignal(window.controller.photo_tags, timeout=WAIT_MS):
        qtbot.keyClick(field, Qt.Key_Enter, Qt.KeypadModifier)
    assert {"garden", "summer"} <= {tag for tag, _, _ in view.tag_editor.tags()}
    assert view.isVisible() and view.path == first


def test_arrows_edit_text_in_the_tag_field_and_page_photos_otherwise(qtbot, make_window, indexed_library: Path) -> None:
    window = make_window(indexed_library, watch=False)
    view = open_first_photo(qtbot, window)
    paths = window.grid_model.paths()
    field = view.tag_editor.add_edit
    qtbot.keyClick(view, Qt.Key_T, Qt.ControlModifier)

    # Text in the focused field: the arrows move its cursor and the photo stays.
    qtbot.keyClicks(field, "sea")
    qtbot.keyClick(field, Qt.Key_Left)
    assert field.cursorPosition() == 2 and view.path == paths[0]
    qtbot.keyClick(field, Qt.Key_Right)
    assert field.cursorPosition() == 3 and view.path == paths[0]

    # The empty field (still focused): the arrows page, as PageDown / PageUp do.
    field.clear()
    qtbot.keyClick(field, Qt.Key_Right)
    assert view.path == paths[1] and view.isVisible()
    qtbot.keyClick(field, Qt.Key_PageDown)
    assert view.path == paths[2]
    qtbot.keyClick(field, Qt.Key_Left)
    assert view.path == paths[1]
    assert field.hasFocus()  # paging does not throw the user out of the field

    # Focus elsewhere in the view (the tags list): the arrows page too.
    view.tag_editor.list.setFocus()
    qtbot.keyClick(view.tag_editor.list, Qt.Key_Right)
    assert view.path == paths[2]
    assert window.grid.current_row() == 2  # the grid follows the photo view


def test_escape_leaves_the_tag_field_first_and_then_closes_the_view(qtbot, make_window, indexed_library: Path) -> None:
    window = make_window(indexed_library, watch=False)
    view = open_first_photo(qtbot, window)
    paths = window.grid_model.paths()
    field = view.tag_editor.add_edit
    qtbot.keyClick(view, Qt.Key_T, Qt.ControlModifier)
    qtbot.keyClicks(field, "half typed")

    qtbot.keyClick(field, Qt.Key_Escape)
    assert view.isVisible() and field.text() == "" and not field.hasFocus()
    assert view.tag_editor.list.hasFocus()
    assert "half typed" not in {tag for tag, _, _ in view.tag_editor.tags()}
    qtbot.keyClick(view.focusWidget(), Qt.Key_Right)  # out of the field, the arrows page
    assert view.path == paths[1]

    qtbot.keyClick(view.focusWidget(), Qt.Key_Escape)
    qtbot.waitUntil(lambda: not view.isVisible(), timeout=WAIT_MS)

    # An empty, focused field also takes the first Escape.
    window.open_photo(0)
    qtbot.waitUntil(view.isActiveWindow, timeout=WAIT_MS)
    qtbot.keyClick(view, Qt.Key_T, Qt.ControlModifier)
    assert field.hasFocus()
    qtbot.keyClick(field, Qt.Key_Escape)
    assert view.isVisible() and not field.hasFocus()
    qtbot.keyClick(view.focusWidget(), Qt.Key_Escape)
    qtbot.waitUntil(lambda: not view.isVisible(), timeout=WAIT_MS)
