"""Background indexing from the window: a responsive GUI thread, Cancel, and switching the model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.index_db import PhotoIndex
from core.library import Library
from core.model_store import ModelStore
from tests.desktop.support import (
    STALL_LIMIT_S,
    WAIT_MS,
    Heartbeat,
    corpus_size,
    drop_paths,
    names,
    photo_folder,
    wait_for_query,
)


def _store_key(library: Path, model_id: str) -> str:
    """The key of the store holding a model's photo embeddings."""
    with PhotoIndex(library) as index:
        return index.vectors.key_for(ModelStore(library).find(model_id).card)


def test_gui_thread_never_stalls_while_indexing_200_photos(qtbot, make_window, library: Path, tmp_path: Path) -> None:
    copies = -(-200 // corpus_size())  # enough copies of the real photos for at least 200 files
    photos = photo_folder(tmp_path / "photos", copies=copies, max_side=256)
    total = copies * corpus_size()
    window = make_window(library)
    wait_for_query(qtbot, window, "")
    searched_while_indexing: list[bool] = []

    def search_midway(progress: object) -> None:
        # Once photos are committed, a search runs beside the indexer (and must not freeze the window either).
        if progress.done >= total // 3 and not searched_while_indexing:
            searched_while_indexing.append(True)
            window.search_edit.setText("a cat")
            window.run_search()

    window.controller.index_progress.connect(search_midway)
    with Heartbeat() as beat:
        with qtbot.waitSignal(window.controller.index_finished, timeout=WAIT_MS * 3) as finished:
            drop_paths(window, [photos])
            progress_seen = window.progress.detail.text()
        assert finished.args[0].report.indexed == total
        qtbot.waitUntil(lambda: window.photo_list.query == "a cat", timeout=WAIT_MS)
    assert beat.ticks > 100, "the heartbeat hardly ran"
    print(f"indexed {total} photos; longest GUI stall {beat.longest * 1000:.0f} ms over {beat.ticks} ticks")
    assert beat.longest < STALL_LIMIT_S, f"the GUI thread stalled for {beat.longest * 1000:.0f} ms"
    assert searched_while_indexing and names(window)[0].startswith("chelsea_cat")
    assert progress_seen == "Looking for photos…"


def test_cancelling_indexing_stops_cleanly(qtbot, make_window, library: Path, tmp_path: Path) -> None:
    photos = photo_folder(tmp_path / "photos", copies=4, max_side=256)
    total = 4 * corpus_size()
    window = make_window(library)

    def cancel_after_first_batch(progress: object) -> None:
        if progress.done > 0 and window.progress.cancel_button.isEnabled():
            window.progress.cancel_button.click()

    window.controller.index_progress.connect(cancel_after_first_batch)
    with qtbot.waitSignal(window.controller.index_finished, timeout=WAIT_MS) as finished:
        drop_paths(window, [photos])
    outcome = finished.args[0]
    assert outcome.error is None and outcome.cancelled
    assert 0 < outcome.report.indexed < total
    assert not window.controller.indexing and not window.progress.isVisibleTo(window)
    # The status line says it stopped, with numbers that add up to what the drop asked for (not "done").
    stopped = re.fullmatch(r"Stopped: (\d+) indexed, (\d+) left", window.statusBar().currentMessage())
    assert stopped, window.statusBar().currentMessage()
    indexed, left = int(stopped[1]), int(stopped[2])
    assert indexed == outcome.report.indexed and left > 0 and indexed + left == total
    notice = window.message_bar.text.text()
    assert notice.startswith("Indexing stopped:") and f"the {left} left" in notice
    assert window.message_bar.isVisibleTo(window)
    with PhotoIndex(library) as index:  # every finished batch is kept, nothing half-written
        assert index.photo_count() == outcome.report.indexed
        assert len(index.embedded_ids(_store_key(library, "starter"))) == outcome.report.indexed
    qtbot.waitUntil(lambda: window.count_label.text() == f"{outcome.report.indexed} photos", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "index" not in [job.name for job in window.controller.runner.running()], timeout=WAIT_MS)


def test_a_drop_says_the_model_is_loading_until_the_first_photos_are_indexed(
    qtbot, make_window, library: Path, tmp_path: Path
) -> None:
    photos = photo_folder(tmp_path / "photos", max_side=256)
    window = make_window(library, watch=False)
    details: list[str] = []  # the progress line after each beat (the window's own slot runs first)
    window.controller.index_progress.connect(lambda _: details.append(window.progress.detail.text()))
    with qtbot.waitSignal(window.controller.index_finished, timeout=WAIT_MS):
        drop_paths(window, [photos])
        # One message at a time: the drag's "Drop to add…" gives way to the progress panel.
        assert window.statusBar().currentMessage() == ""
        assert window.progress.isVisibleTo(window)
    total = corpus_size()
    loading = f"Loading the model… · {total} photos to index"
    assert details[:2] == ["Looking for photos…", loading]
    counted = details[2:]
    assert counted and all(re.match(rf"[\d,]+ / {total} photos", line) for line in counted), details
    assert counted[-1].startswith(f"{total} / {total} photos")

    # The model stays loaded: the next job of this session counts from its first beat.
    more = photo_folder(tmp_path / "more", max_side=200)
    details.clear()
    with qtbot.waitSignal(window.controller.index_finished, timeout=WAIT_MS):
        drop_paths(window, [more])
    assert details[1] == f"0 / {total} photos" and not any("Loading" in line for line in details)


@pytest.fixture()
def second_model(library: Path, starter_package_dir: Path) -> str:
    """Another installed package ("starter-b"): the starter's files under a new id, with bilinear resizing, so its
    photo embeddings are its own (a model with the starter's very image side would share the starter's)."""
    package = library / "models" / "starter-b"
    package.mkdir()
    for item in starter_package_dir.iterdir():
        if item.name != "model_card.json":
            (package / item.name).symlink_to(item)
    card = json.loads((starter_package_dir / "model_card.json").read_text())
    card["id"], card["name"] = "starter-b", "Starter B"
    card["preprocess"]["interpolation"] = "bilinear"
    (package / "model_card.json").write_text(json.dumps(card))
    return "starter-b"


def test_switching_the_model_reembeds_the_library(qtbot, make_window, indexed_library: Path, second_model: str) -> None:
    window = make_window(indexed_library)
    assert [window.model_combo.itemData(i) for i in range(window.model_combo.count())] == ["starter", "starter-b"]
    with PhotoIndex(indexed_library) as index:
        assert not index.embedded_ids(_store_key(indexed_library, second_model))

    with qtbot.waitSignal(window.controller.index_finished, timeout=WAIT_MS) as finished:
        choice = window.model_combo.findData(second_model)
        window.model_combo.setCurrentIndex(choice)
        window.model_combo.activated.emit(choice)  # what a user's pick sends
        assert window.progress.isVisibleTo(window) and "starter-b" in window.progress.title.toolTip()
        # The old model keeps answering while the new one embeds.
        qtbot.waitUntil(lambda: ModelStore(indexed_library).active_id() == second_model, timeout=WAIT_MS)
        assert Library(indexed_library).serving_model_id() == "starter"
    outcome = finished.args[0]
    assert outcome.kind == "reembed" and outcome.error is None and outcome.report.indexed == corpus_size()
    with PhotoIndex(indexed_library) as index:
        second, first = (_store_key(indexed_library, model_id) for model_id in (second_model, "starter"))
        assert len(index.embedded_ids(second)) == corpus_size() == len(index.embedded_ids(first))
    assert Library(indexed_library).serving_model_id() == second_model
    qtbot.waitUntil(lambda: window.model_label.text() == "Model: starter-b", timeout=WAIT_MS)
    assert window.model_combo.currentData() == second_model

    window.search_edit.setText("a cat")
    window.run_search()
    wait_for_query(qtbot, window, "a cat")
    assert names(window)[0] == "chelsea_cat"
