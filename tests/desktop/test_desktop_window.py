"""The main window end to end on real photos and the real starter model (offscreen Qt)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QSlider

from core.index_db import PhotoIndex
from desktop.controller import PhotoList
from desktop.photo_grid import ScoreRole, ThumbStateRole
from tests.desktop.support import WAIT_MS, corpus_size, drop_paths, names, photo_folder, wait_for_query


def test_empty_library_invites_a_drop_and_names_the_model(make_window, library: Path) -> None:
    window = make_window(library)
    assert window.pages.currentWidget() is window.empty
    assert "Drop a folder of photos here" in window.empty.title.text()
    assert window.empty.add_button.isVisibleTo(window) and not window.empty.model_notice.isVisibleTo(window)
    assert window.count_label.text() == "0 photos"
    assert window.model_label.text() == "Model: starter" and "PhotoSeek Starter" in window.model_label.toolTip()
    assert window.model_combo.currentData() == "starter"


def test_dropping_a_folder_indexes_it_and_fills_the_grid(qtbot, make_window, library: Path, tmp_path: Path) -> None:
    photos = photo_folder(tmp_path / "photos")
    (photos / "notes.jpg").write_text("not a photo")  # one broken file: reported, never fatal
    window = make_window(library)
    with qtbot.waitSignal(window.controller.index_finished, timeout=WAIT_MS) as finished:
        drop_paths(window, [photos])
        assert window.progress.isVisibleTo(window) and window.progress.cancel_button.isEnabled()
    outcome = finished.args[0]
    assert outcome.error is None and outcome.report.indexed == corpus_size() and outcome.report.failed == 1

    qtbot.waitUntil(lambda: window.grid_model.rowCount() == corpus_size(), timeout=WAIT_MS)
    assert window.pages.currentWidget() is not window.empty
    assert sorted(window.grid_model.paths()) == sorted(str(p) for p in photos.iterdir() if p.name != "notes.jpg")
    assert not window.progress.isVisibleTo(window)
    qtbot.waitUntil(lambda: window.count_label.text() == f"{corpus_size()} photos", timeout=WAIT_MS)
    # The broken file is shown in the UI, not only logged.
    assert window.message_bar.isVisibleTo(window) and "could not be read" in window.message_bar.text.text()
    # The count above may be the live count of the grid; the errors arrive with the library's refresh after the job.
    qtbot.waitUntil(lambda: window.errors_button.isVisibleTo(window), timeout=WAIT_MS)
    assert "1 unreadable" in window.errors_button.text()
    with PhotoIndex(library) as index:
        assert index.photo_count() == corpus_size() and [Path(p).name for p, _ in index.errors()] == ["notes.jpg"]

    # Thumbnails arrive off the GUI thread for the visible rows and are cached on disk.
    first = window.grid_model.index(0)
    qtbot.waitUntil(lambda: first.data(ThumbStateRole) == "ready", timeout=WAIT_MS)
    assert max(first.data(Qt.DecorationRole).width(), first.data(Qt.DecorationRole).height()) <= 320
    assert any((library / "thumbnails").rglob("*.jpg"))


def test_typing_a_query_puts_the_matching_photo_first(qtbot, make_window, indexed_library: Path) -> None:
    window = make_window(indexed_library)
    wait_for_query(qtbot, window, "")
    assert window.grid_model.rowCount() == corpus_size()

    calls: list[str] = []
    original = window.controller.search
    window.controller.search = lambda text: (calls.append(text), original(text))[1]
    window.focus_search()
    qtbot.keyClicks(window.search_edit, "a cat")
    wait_for_query(qtbot, window, "a cat")
    assert calls == ["a cat"]  # debounced: one search for five key presses
    assert names(window)[0] == "chelsea_cat"
    scores = [window.grid_model.index(r).data(ScoreRole) for r in range(window.grid_model.rowCount())]
    assert scores == sorted(scores, reverse=True) and 0 < len(scores) < corpus_size()  # the search stops
    assert window.header.text().startswith(f"{len(scores)} match") and "for “a cat”" in window.header.text()

    # Enter searches at once.
    window.search_edit.clear()
    qtbot.keyClicks(window.search_edit, "an espresso cup")
    qtbot.keyClick(window.search_edit, Qt.Key_Return)
    assert not window.search_pending
    wait_for_query(qtbot, window, "an espresso cup")
    assert names(window)[0] == "coffee"
    matches = window.grid_model.rowCount()
    window.header.weaker_button.click()  # the photos below the cutoff too: rows to move through
    qtbot.waitUntil(lambda: window.grid_model.rowCount() > max(matches, 2), timeout=WAIT_MS)

    # Down moves from the search box into the grid; Esc in the box clears it and browses the whole library again.
    window.focus_search()
    qtbot.keyClick(window.search_edit, Qt.Key_Down)
    assert window.grid.hasFocus() and window.grid.current_row() == 0
    # In the grid the arrows move through the photos and Esc leaves the search alone (the search box's keys
    # are its own, not the window's).
    qtbot.keyClick(window.grid, Qt.Key_Right)
    assert window.grid.current_row() == 1
    qtbot.keyClick(window.grid, Qt.Key_Down)
    assert window.grid.current_row() > 1
    qtbot.keyClick(window.grid, Qt.Key_Escape)
    assert window.search_edit.text() == "an espresso cup"
    window.focus_search()
    qtbot.keyClick(window.search_edit, Qt.Key_Escape)
    assert window.search_edit.text() == ""
    wait_for_query(qtbot, window, "")
    assert window.grid_model.rowCount() == corpus_size() and window.header.text().startswith("All photos")


def test_photo_view_shows_the_photo_and_steps_through_results(qtbot, make_window, indexed_library: Path) -> None:
    window = make_window(indexed_library)
    window.search_edit.setText("a flower")
    window.run_search()
    wait_for_query(qtbot, window, "a flower")
    matches = window.grid_model.rowCount()
    window.header.weaker_button.click()  # the photos below the cutoff follow the matches, to step through
    qtbot.waitUntil(lambda: window.grid_model.rowCount() > matches, timeout=WAIT_MS)
    window.grid.setFocus()
    window.grid.select_row(0)
    qtbot.keyClick(window.grid, Qt.Key_Return)  # Enter opens the selected photo
    view = window.photo_view
    assert view.isVisible() and Path(view.path).stem == "orange_dahlia"
    qtbot.waitUntil(lambda: view.facts["Pixels"].text() != "…", timeout=WAIT_MS)
    width, height = view.facts["Pixels"].text().replace(",", "").split(" × ")
    from PIL import Image

    assert (int(width), int(height)) == Image.open(view.path).size
    assert view.facts["Score"].text() == f"{window.grid_model.index(0).data(ScoreRole):.3f}"
    assert view.picture.pixmap() is not None and not view.picture.pixmap().isNull()
    assert not view.prev_button.isEnabled() and view.next_button.isEnabled()

    qtbot.keyClick(view, Qt.Key_Right)
    assert view.path == window.grid_model.path(1) and window.grid.current_row() == 1
    assert view.facts["Position"].text() == f"2 of {window.grid_model.rowCount()}"
    qtbot.keyClick(view, Qt.Key_Left)
    assert view.path == window.grid_model.path(0)


def test_a_grown_library_list_keeps_the_scroll_position(qtbot, make_window, library: Path) -> None:
    window = make_window(library)
    wait_for_query(qtbot, window, "")
    paths = [f"/photos/IMG_{i:05d}.jpg" for i in range(3000)]
    window.controller.photos.emit(PhotoList("", paths[:2000], None))
    bar = window.grid.verticalScrollBar()
    bar.setValue(bar.maximum() // 2)
    position = bar.value()
    resets: list[bool] = []
    window.grid_model.modelReset.connect(lambda: resets.append(True))
    window.controller.photos.emit(PhotoList("", paths, None))  # e.g. the list after indexing finished
    assert window.grid_model.rowCount() == 3000 and not resets and bar.value() == position
    window.controller.photos.emit(PhotoList("", paths[1:], None))  # something was removed: a real reset
    assert resets and window.grid_model.rowCount() == 2999
    window.controller.photos.emit(PhotoList("", [], None))  # leave nothing for the thumbnail loader to chase


def test_settings_and_geometry_persist(qtbot, make_window, library: Path, settings_file: Path) -> None:
    old = QSettings(str(settings_file), QSettings.IniFormat)
    old.setValue("search/min_score_steps", 31)  # the min-score slider's, from before searches stopped by themselves
    old.sync()
    window = make_window(library)
    assert window.findChild(QSlider) is None and not hasattr(window, "score_slider")  # the slider is gone
    window.resize(760, 590)  # the offscreen screen is 800 x 800; restoring clamps to it
    window.zoom(+24)
    size = window.grid_model.thumb_size
    window.close()
    saved = QSettings(str(settings_file), QSettings.IniFormat)
    assert saved.value("search/min_score_steps") is None and saved.value("grid/thumb_size") in (size, str(size))

    again = make_window(library)
    assert (again.width(), again.height()) == (760, 590)
    assert again.grid_model.thumb_size == size != 160


def test_without_a_model_or_a_trainer_the_window_says_why_and_what_to_do(
    qtbot, make_window, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr("desktop.library_service.trainer_available", lambda: False)  # as in the packaged app
    window = make_window(tmp_path / "bare-library")
    notice = window.empty.model_notice
    models = str(tmp_path / "bare-library" / "models")
    assert notice.isVisibleTo(window) and "cannot build one" in notice.text()
    assert "reinstall PhotoSeek" in notice.text() and models in notice.text()
    assert "python" not in notice.text() and "pip" not in notice.text()  # nothing to type in a terminal
    assert not window.empty.build_button.isVisibleTo(window)
    assert window.model_label.text() == "Model: none installed" and not window.search_edit.isEnabled()

    photos = photo_folder(tmp_path / "photos")
    drop_paths(window, [photos])
    message = window.message_bar.text.text()
    assert window.message_bar.isVisibleTo(window) and "cannot build one" in message and "python" not in message
    assert not window.controller.indexing


def test_with_the_trainer_installed_it_offers_to_build_the_model(
    make_window, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr("desktop.library_service.trainer_available", lambda: True)
    window = make_window(tmp_path / "bare-library")
    assert window.empty.build_button.isVisibleTo(window)
    assert "build its starter model now" in window.empty.model_notice.text()
