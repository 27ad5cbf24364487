"""Opening the window catches up with the disk: an interrupted run resumes, photos added or deleted while the
app was closed are picked up, without pressing anything (real photos, real starter model, offscreen Qt)."""

from __future__ import annotations

from pathlib import Path

from core.index_db import PhotoIndex
from tests.desktop.support import WAIT_MS, corpus_size, drop_paths, names, photo_folder, wait_for_query
from tests.photo_corpus import materialize


def indexed_paths(library: Path) -> set[str]:
    with PhotoIndex(library) as index:
        return {Path(path).name for _, path in index.photos_after(0)}


def test_reopening_resumes_and_picks_up_what_changed_while_closed(
    qtbot, make_window, library: Path, tmp_path: Path
) -> None:
    folder = photo_folder(tmp_path / "photos", copies=3, max_side=256)
    total = 3 * corpus_size()
    window = make_window(library, watch=False)
    window.controller.index_progress.connect(
        lambda progress: progress.done > 0 and window.progress.cancel_button.click()
    )
    with qtbot.waitSignal(window.controller.index_finished, timeout=WAIT_MS) as finished:
        drop_paths(window, [folder])
    assert finished.args[0].cancelled and finished.args[0].report.indexed < total  # quit mid-index
    window.close()

    # While the app is closed: a new photo arrives, an indexed one is deleted.
    new = materialize(tmp_path / "new", ["chelsea_cat"], max_side=256)["chelsea_cat"]
    new.rename(folder / "arrived_cat.jpg")
    deleted = sorted(indexed_paths(library))[0]
    (folder / deleted).unlink()

    window = make_window(library, watch=False, catch_up=True)
    assert window.controller.indexing and window.progress.isVisibleTo(window)  # the same panel as a drop
    assert window.progress.title.toolTip() == "Catching up with changes on disk"
    assert window.progress.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not window.controller.indexing, timeout=WAIT_MS * 3)
    expected = {path.name for path in folder.iterdir()}
    assert len(expected) == total and indexed_paths(library) == expected
    qtbot.waitUntil(lambda: window.count_label.text() == f"{total} photos", timeout=WAIT_MS)
    window.search_edit.setText("a cat")
    window.run_search()
    wait_for_query(qtbot, window, "a cat")
    assert set(names(window)[:4]) == {"arrived_cat", "chelsea_cat", "chelsea_cat_copy1", "chelsea_cat_copy2"}


def test_a_missing_folder_is_not_caught_up_so_its_photos_are_kept(
    qtbot, make_window, library: Path, tmp_path: Path
) -> None:
    folder = materialize(tmp_path / "drive" / "photos", ["coffee", "astronaut"], max_side=256)["coffee"].parent
    window = make_window(library, watch=False)
    with qtbot.waitSignal(window.controller.index_finished, timeout=WAIT_MS):
        drop_paths(window, [folder])
    window.close()
    folder.parent.rename(tmp_path / "unplugged")  # the drive is gone

    window = make_window(library, watch=False, catch_up=True)
    assert not window.controller.indexing  # nothing queued: a rescan would have forgotten the drive's photos
    assert indexed_paths(library) == {"coffee.jpg", "astronaut.jpg"}
