"""The sidebar (folders with counts, rescan, remove), the tags panel, sorting and "Find similar", end to end on
real photos and the real starter model (offscreen Qt)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QDialog, QTreeWidget

from core.index_db import PhotoIndex
from core.tagging import Tagger
from tests.desktop.support import (
    WAIT_MS,
    answer_next_message_box,
    cli_search,
    click_row,
    corpus_size,
    drop_paths,
    names,
    wait_for_query,
)


def grid_scores(window) -> list[float]:
    return [window.grid_model.score(row) for row in range(window.grid_model.rowCount())]


def test_sidebar_folders_filter_find_similar_rescan_and_remove(
    qtbot, make_window, indexed: tuple[Path, Path], indexed_library: Path, tmp_path: Path
) -> None:
    photos = indexed[0]
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copyfile(photos / "chelsea_cat.jpg", extra / "kitty.jpg")
    shutil.copyfile(photos / "coffee.jpg", extra / "espresso.jpg")
    (extra / "notes.jpg").write_text("not a photo")
    window = make_window(indexed_library, watch=False)  # this test changes the folder itself: no watcher
    wait_for_query(qtbot, window, "")
    sidebar = window.sidebar
    assert sidebar.isVisibleTo(window)
    assert sidebar.folder_row_text(str(photos)) == ("photos", str(corpus_size()))

    with qtbot.waitSignal(window.controller.index_finished, timeout=WAIT_MS):
        drop_paths(window, [extra])
    qtbot.waitUntil(lambda: sidebar.folder_row_text(str(extra)) == ("extra", "2"), timeout=WAIT_MS)
    assert sidebar.folder_row_text("") == ("All Photos", str(corpus_size() + 2))

    # The unreadable file is listed in the UI with core's reason (Ctrl+E opens the list).
    with PhotoIndex(indexed_library) as index:
        errors = index.errors()
    assert [Path(p).name for p, _ in errors] == ["notes.jpg"]
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key_E, Qt.ControlModifier)
    qtbot.waitUntil(lambda: window.findChild(QDialog, "errorsDialog") is not None, timeout=WAIT_MS)
    table = window.findChild(QDialog, "errorsDialog").findChild(QTreeWidget, "table")
    rows = [(table.topLevelItem(i).text(0), table.topLevelItem(i).text(1)) for i in range(table.topLevelItemCount())]
    assert rows == errors
    window.findChild(QDialog, "errorsDialog").close()

    # Selecting a folder filters the grid; typed text searches within it.
    click_row(qtbot, sidebar.folders, "extra")
    qtbot.waitUntil(lambda: window.photo_list.state.folder == str(extra), timeout=WAIT_MS)
    assert sorted(names(window)) == ["espresso", "kitty"] and "in extra" in window.header.text()
    window.search_edit.setText("a cat")
    window.run_search()
    qtbot.waitUntil(lambda: window.photo_list.query == "a cat", timeout=WAIT_MS)
    assert names(window) == ["kitty"] and "1 match for “a cat” in extra" in window.header.text()  # not the espresso

    # Find similar from the grid's context menu: the identical original comes first, the photo itself is left
    # out, and the folder and text filters are cleared (similar looks across the whole library).
    window.grid.customContextMenuRequested.emit(window.grid.visualRect(window.grid_model.index(0)).center())
    action = next(a for a in window.grid.context_menu.actions() if a.text() == "Find Similar Photos")
    window.grid.context_menu.close()
    action.trigger()
    qtbot.waitUntil(lambda: window.photo_list.state.similar_to == str(extra / "kitty.jpg"), timeout=WAIT_MS)
    assert names(window)[0] == "chelsea_cat" and grid_scores(window)[0] > 0.99
    assert "kitty" not in names(window) and len(names(window)) == corpus_size() + 1
    assert window.search_edit.text() == "" and sidebar.folder is None and "look like kitty.jpg" in window.header.text()

    # Rescan one folder: a deleted photo is forgotten.
    (extra / "espresso.jpg").unlink()
    click_row(qtbot, sidebar.folders, "extra")
    with qtbot.waitSignal(window.controller.index_finished, timeout=WAIT_MS) as finished:
        sidebar.rescan_button.click()
    assert finished.args[0].kind == "rescan" and finished.args[0].report.removed == 1
    qtbot.waitUntil(lambda: sidebar.folder_row_text(str(extra)) == ("extra", "1"), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: names(window) == ["kitty"], timeout=WAIT_MS)

    # Removing asks first: Cancel keeps the folder, Remove forgets it and its photos (the files stay).
    answer_next_message_box(qtbot, "Cancel")
    sidebar.remove_button.click()
    assert not window.controller.indexing and sidebar.folder_row_text(str(extra)) is not None
    answer_next_message_box(qtbot, "Remove")
    with qtbot.waitSignal(window.controller.index_finished, timeout=WAIT_MS) as finished:
        sidebar.remove_button.click()
    assert finished.args[0].kind == "remove" and finished.args[0].report.removed == 1
    qtbot.waitUntil(lambda: sidebar.folder_row_text(str(extra)) is None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.grid_model.rowCount() == corpus_size(), timeout=WAIT_MS)
    assert window.photo_list.state.folder is None and (extra / "kitty.jpg").is_file()
    with PhotoIndex(indexed_library) as index:
        assert index.folders() == [str(photos)] and index.photo_count() == corpus_size()


def test_clicking_a_tag_filters_the_grid_and_clicking_again_clears_it(
    qtbot, make_window, indexed_library: Path, capsys
) -> None:
    window = make_window(indexed_library, watch=False)
    wait_for_query(qtbot, window, "")
    with PhotoIndex(indexed_library) as index:
        tagger = Tagger(index)
        counts = tagger.tag_counts()
        path_of = dict(index.photos_after(0))
        top_tag = counts[0][0]
        carrying = {tag: sorted(path_of[i] for i in tagger.photo_ids_with(tag)) for tag in ("cat", top_tag)}
    assert window.sidebar.tag_rows() == counts
    assert 1 < len(carrying[top_tag]) < corpus_size()

    click_row(qtbot, window.sidebar.tags, "cat")
    qtbot.waitUntil(lambda: window.photo_list.state.tag == "cat", timeout=WAIT_MS)
    assert sorted(window.grid_model.paths()) == carrying["cat"] and "chelsea_cat" in names(window)
    assert "tagged “cat”" in window.header.text() and not window.grid_model.has_scores

    # Another tag replaces it, and combines with the typed text: the matches among the tagged photos only, as
    # the CLI finds them (the cutoff applies within the filter).
    click_row(qtbot, window.sidebar.tags, top_tag)
    window.search_edit.setText("a photo")
    window.run_search()
    qtbot.waitUntil(
        lambda: window.photo_list.state.tag == top_tag and window.photo_list.query == "a photo", timeout=WAIT_MS
    )
    assert window.grid_model.paths() == cli_search(capsys, indexed_library, f'tag:"{top_tag}" a photo')
    assert set(window.grid_model.paths()) <= set(carrying[top_tag]) and window.grid_model.rowCount()
    assert grid_scores(window) == sorted(grid_scores(window), reverse=True)

    # Clicking the chosen tag again clears the filter (the text stays).
    click_row(qtbot, window.sidebar.tags, top_tag)
    qtbot.waitUntil(lambda: window.photo_list.state.tag is None, timeout=WAIT_MS)
    assert window.grid_model.paths() == cli_search(capsys, indexed_library, "a photo")
    assert window.sidebar.tags.selectedItems() == []

    # The tags list can be narrowed by typing.
    window.sidebar.tag_filter.setText("ca")
    assert {tag for tag, _ in window.sidebar.tag_rows()} == {tag for tag, _ in counts if "ca" in tag}

    # F9 hides and shows the sidebar.
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key_F9)
    assert not window.sidebar.isVisibleTo(window)
    qtbot.keyClick(window, Qt.Key_F9)
    assert window.sidebar.isVisibleTo(window)


def test_sorting_by_relevance_or_date(qtbot, make_window, indexed_library: Path, settings_file: Path) -> None:
    window = make_window(indexed_library, watch=False)
    wait_for_query(qtbot, window, "")
    newest_first = sorted(window.grid_model.paths(), key=lambda p: -os.stat(p).st_mtime)
    assert window.grid_model.paths() == newest_first  # browsing is by date, newest first
    assert not window.sort_combo.isEnabled()

    window.search_edit.setText("a photo")
    window.run_search()
    wait_for_query(qtbot, window, "a photo")
    best_first = window.grid_model.paths()
    assert 1 < len(best_first) < corpus_size() and window.sort_combo.isEnabled()
    assert grid_scores(window) == sorted(grid_scores(window), reverse=True)

    window.activateWindow()
    qtbot.keyClick(window, Qt.Key_2, Qt.ControlModifier)  # Ctrl+2: by date, the same matches
    qtbot.waitUntil(lambda: window.photo_list.state.sort == "date", timeout=WAIT_MS)
    paths = window.grid_model.paths()
    assert paths == sorted(best_first, key=lambda p: -os.stat(p).st_mtime)
    assert window.grid_model.has_scores and window.header.text().startswith(f"{len(paths)} matches")
    assert "newest first" in window.header.text()
    assert window.sort_combo.currentData() == "date" and window.menu_actions["sort_date"].isChecked()

    index = window.sort_combo.findData("relevance")
    window.sort_combo.setCurrentIndex(index)
    window.sort_combo.activated.emit(index)  # what a user's pick sends
    qtbot.waitUntil(lambda: window.photo_list.state.sort == "relevance", timeout=WAIT_MS)
    assert window.grid_model.paths() == best_first
    qtbot.keyClick(window, Qt.Key_2, Qt.ControlModifier)
    window.close()
    assert QSettings(str(settings_file), QSettings.IniFormat).value("search/sort") == "date"
