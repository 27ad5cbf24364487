"""The window's text searches stop where the matches stop, as `python -m core search` without --top does (core's
query-adaptive cutoff), and the results header shows the photos below the cutoff on request (real widgets, real
photos, the starter model)."""

from __future__ import annotations

import os
from pathlib import Path

from core.library import Library
from core.search import MAX_MATCHES, SearchRequest
from desktop.main_window import MainWindow
from desktop.photo_grid import MAX_THUMB
from tests.desktop.support import WAIT_MS, cli_search, corpus_size, wait_for_query


def newest_first(paths: list[str]) -> list[str]:
    return sorted(paths, key=lambda path: -os.stat(path).st_mtime)


def search(qtbot, window: MainWindow, text: str) -> None:
    window.search_edit.setText(text)
    window.run_search()
    wait_for_query(qtbot, window, text)


def test_the_window_shows_and_counts_what_the_cli_finds(qtbot, make_window, indexed_library: Path, capsys) -> None:
    window = make_window(indexed_library, watch=False)
    wait_for_query(qtbot, window, "")
    found = {}
    for query in ("a cat", "a photo", "dog -leash", "a cat -cat", "a sailboat"):
        search(qtbot, window, query)
        found[query] = cli_search(capsys, indexed_library, query)
        assert window.grid_model.paths() == found[query], query
        count = len(found[query])
        header = window.header.text()
        assert header.startswith(f"{count} match" if count else "No matches") and f"for “{query}”" in header, header
        assert window.header.weaker_button.isVisibleTo(window) and not window.header.fewer_button.isVisibleTo(window)
    assert 1 < len(found["a photo"]) < corpus_size() and len(found["a sailboat"]) <= 2
    # A negative moves the cutoff, not only the ranking: the cat photo is no longer a match for "a cat -cat".
    cat = next(path for path in found["a cat"] if Path(path).stem == "chelsea_cat")
    assert cat not in found["a cat -cat"]


def test_weaker_matches_extend_the_list_below_the_cutoff(qtbot, make_window, indexed_library: Path) -> None:
    window = make_window(indexed_library, watch=False)
    window.controller.weaker_page = 5
    header, grid = window.header, window.grid_model
    search(qtbot, window, "a sailboat")  # nothing like it in the corpus
    matches = grid.paths()
    assert len(matches) <= 2 and header.weaker_button.isVisibleTo(window)
    ranked = Library(indexed_library).search(SearchRequest("a sailboat", top=corpus_size())).hits
    below = [hit.path for hit in ranked if hit.path not in matches]  # best first

    header.weaker_button.click()
    qtbot.waitUntil(lambda: grid.rowCount() == len(matches) + 5, timeout=WAIT_MS)
    assert grid.paths() == matches + below[:5] and window.photo_list.query == "a sailboat"
    assert ("5 closest photos" if not matches else "then 5 weaker photos") in header.text()
    assert header.fewer_button.isVisibleTo(window) and header.weaker_button.text() == "Show more weaker matches"

    # Pressing again extends further, where the user is (the list does not jump back to its top), until every
    # photo is shown and the control goes.
    grid.set_thumb_size(MAX_THUMB)  # one photo a row: the list scrolls
    bar = window.grid.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=WAIT_MS)
    bar.setValue(bar.maximum())
    position = bar.value()
    header.weaker_button.click()
    qtbot.waitUntil(lambda: grid.rowCount() > len(matches) + 5, timeout=WAIT_MS)
    assert bar.value() == position > 0
    while header.weaker_button.isVisibleTo(window):
        shown = grid.rowCount()
        header.weaker_button.click()
        qtbot.waitUntil(lambda: grid.rowCount() > shown, timeout=WAIT_MS)  # noqa: B023 (waited on at once)
    assert grid.paths() == matches + below and grid.rowCount() == corpus_size()

    # Sorting by date keeps the matches first and the weaker photos after them, each part newest first.
    window.set_sort("date")
    qtbot.waitUntil(lambda: window.photo_list.state.sort == "date", timeout=WAIT_MS)
    by_date = grid.paths()
    assert by_date == newest_first(matches) + newest_first(below) and "newest first" in header.text()
    window.set_sort("relevance")
    qtbot.waitUntil(lambda: window.photo_list.state.sort == "relevance", timeout=WAIT_MS)
    assert grid.paths() == matches + below

    # "Matches only" goes back to the matches; a new query starts with its matches only.
    header.fewer_button.click()
    qtbot.waitUntil(lambda: grid.rowCount() == len(matches), timeout=WAIT_MS)
    assert grid.paths() == matches and not header.fewer_button.isVisibleTo(window)
    header.weaker_button.click()
    qtbot.waitUntil(lambda: grid.rowCount() > len(matches), timeout=WAIT_MS)
    search(qtbot, window, "a cat")
    assert window.photo_list.state.weaker == 0 and grid.rowCount() == window.photo_list.matches < corpus_size()


def test_find_similar_lists_the_closest_photos_without_weaker_controls(
    qtbot, make_window, indexed_library: Path
) -> None:
    window = make_window(indexed_library, watch=False)
    wait_for_query(qtbot, window, "")
    cat = next(path for path in window.grid_model.paths() if Path(path).stem == "chelsea_cat")
    window.find_similar(cat)
    qtbot.waitUntil(lambda: window.photo_list.state.similar_to == cat, timeout=WAIT_MS)
    assert window.grid_model.rowCount() == corpus_size() - 1  # every other photo, most alike first
    assert window.header.text().startswith(f"{corpus_size() - 1} photos that look like chelsea_cat")
    assert not window.header.weaker_button.isVisibleTo(window) and not window.header.fewer_button.isVisibleTo(window)


def test_a_search_at_its_cap_says_more_may_match() -> None:
    from desktop.query_state import PhotoList, QueryState
    from desktop.results_header import describe_search

    def line(matches: int) -> str:
        paths = [f"/p/{i}.jpg" for i in range(matches)]
        return describe_search(PhotoList("a dog", paths, [0.5] * matches, QueryState(text="a dog"), matches), "")

    assert line(MAX_MATCHES).startswith(f"The best {MAX_MATCHES:,} matches for “a dog”")
    assert line(MAX_MATCHES - 1).startswith(f"{MAX_MATCHES - 1:,} matches for “a dog”")
