"""Editing tags in the photo view persists across a restart; "Find Similar" from the photo view (offscreen Qt,
real photos, real starter model)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from core.index_db import PhotoIndex
from core.library import Library
from core.tagging import Tagger
from tests.desktop.support import WAIT_MS, names, wait_for_query


def open_cat(qtbot, window) -> str:
    """Search "a cat", open the first result in the photo view and wait for its tags; returns its path."""
    window.search_edit.setText("a cat")
    window.run_search()
    wait_for_query(qtbot, window, "a cat")
    assert names(window)[0] == "chelsea_cat"
    window.grid.setFocus()
    window.grid.select_row(0)
    qtbot.keyClick(window.grid, Qt.Key_Return)
    view = window.photo_view
    qtbot.waitUntil(lambda: view.isVisible() and bool(view.tag_editor.tags()), timeout=WAIT_MS)
    return view.path


def test_editing_tags_in_the_photo_view_persists_across_a_restart(qtbot, make_window, indexed_library: Path) -> None:
    window = make_window(indexed_library, watch=False)
    path = open_cat(qtbot, window)
    with PhotoIndex(indexed_library) as index:
        before = Tagger(index).tags_of(path)
    model_tags = [t.tag for t in before if t.source != "user"]
    assert "cat" in model_tags and len(model_tags) >= 2
    editor = window.photo_view.tag_editor
    assert [row[0] for row in editor.tags()] == [t.tag for t in before]
    assert all(row[2] == "model starter" for row in editor.tags())
    keep, reject = "cat", next(t for t in model_tags if t != "cat")

    # Add a tag of our own (Ctrl+T, type, Enter).
    qtbot.keyClick(window.photo_view, Qt.Key_T, Qt.ControlModifier)
    assert editor.add_edit.hasFocus()
    qtbot.keyClicks(editor.add_edit, "Sofa  Afternoon")
    with qtbot.waitSignal(window.controller.photo_tags, timeout=WAIT_MS):
        qtbot.keyClick(editor.add_edit, Qt.Key_Return)
    assert ("sofa afternoon", "—", "you") in editor.tags()

    # Confirm the model's "cat" and remove another model tag (Del in the list).
    assert editor.select(keep) and editor.confirm_button.isEnabled()
    with qtbot.waitSignal(window.controller.photo_tags, timeout=WAIT_MS):
        editor.confirm_button.click()
    score_of = {t.tag: t.score for t in before}
    assert (keep, f"{score_of[keep]:.2f}", "model starter, confirmed") in editor.tags()
    assert editor.select(keep) and not editor.confirm_button.isEnabled()  # confirmed once is enough
    assert editor.select(reject)
    editor.list.setFocus()
    with qtbot.waitSignal(window.controller.photo_tags, timeout=WAIT_MS):
        qtbot.keyClick(editor.list, Qt.Key_Delete)
    assert reject not in [row[0] for row in editor.tags()]
    # The tags panel counts the new tag.
    qtbot.waitUntil(lambda: ("sofa afternoon", 1) in window.sidebar.tag_rows(), timeout=WAIT_MS)
    window.close()

    # A new window on the same library shows the edits; the rejected tag stays gone.
    again = make_window(indexed_library, watch=False)
    assert open_cat(qtbot, again) == path
    rows = again.photo_view.tag_editor.tags()
    assert rows[0] == ("sofa afternoon", "—", "you")
    assert (keep, "model starter, confirmed") in [(tag, by) for tag, _, by in rows]
    assert reject not in [tag for tag, _, _ in rows]
    with PhotoIndex(indexed_library) as index:
        states = {t.tag: (t.source, t.state) for t in Tagger(index).tags_of(path, include_rejected=True)}
    assert states["sofa afternoon"] == ("user", "confirmed") and states[keep] == ("starter", "confirmed")
    assert states[reject] == ("starter", "rejected")


def test_find_similar_from_the_photo_view(qtbot, make_window, indexed_library: Path) -> None:
    window = make_window(indexed_library, watch=False)
    path = open_cat(qtbot, window)
    window.photo_view.similar_button.click()
    qtbot.waitUntil(lambda: window.photo_list.state.similar_to == path, timeout=WAIT_MS)
    assert not window.photo_view.isVisible()
    expected = Library(indexed_library).search_engine().similar(Path(path), top=window.controller.search_top)
    assert window.grid_model.paths() == [h.path for h in expected] and path not in window.grid_model.paths()
    assert window.grid_model.score(0) == max(h.score for h in expected)
    # Typing a query leaves "similar" mode.
    window.search_edit.setText("an espresso cup")
    window.run_search()
    wait_for_query(qtbot, window, "an espresso cup")
    assert window.photo_list.state.similar_to is None and names(window)[0] == "coffee"
