"""A folder whose indexing did not finish says so in the sidebar, with how many photos are left, until a run
finishes it: after Cancel, and after a process that died mid-run (real photos, starter model, offscreen Qt)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from core.incomplete_folders import IncompleteFolders
from core.index_db import PhotoIndex
from desktop.index_jobs import photos_left
from desktop.main_window import MainWindow
from tests.desktop.support import WAIT_MS, corpus_size, drop_paths, photo_folder
from tests.support.paths import REPO

# What a run killed before its first batch leaves behind: the folder in the library, the run's mark, no photos.
KILLED_RUN = """
import os, sys
from core.incomplete_folders import IncompleteFolders
from core.index_db import PhotoIndex
with PhotoIndex(sys.argv[1]) as index:
    index.add_folders([sys.argv[2]])
IncompleteFolders(sys.argv[1]).begin([sys.argv[2]])
os._exit(9)
"""


def folder_rows(window: MainWindow) -> list[str]:
    tree = window.sidebar.folders
    return [tree.topLevelItem(row).text(0) for row in range(1, tree.topLevelItemCount())]  # after "All Photos"


def wait_until_finished(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.controller.indexing, timeout=WAIT_MS * 3)


def test_a_cancelled_folder_shows_what_is_left_until_reopening_finishes_it(
    qtbot, make_window, library: Path, tmp_path: Path
) -> None:
    folder = photo_folder(tmp_path / "photos", copies=3, max_side=256)
    window = make_window(library, watch=False)
    window.controller.index_progress.connect(
        lambda progress: progress.done > 0 and window.progress.cancel_button.click()
    )
    with qtbot.waitSignal(window.controller.index_finished, timeout=WAIT_MS) as finished:
        drop_paths(window, [folder])
    left = photos_left(finished.args[0].report)
    assert finished.args[0].cancelled and left > 0
    qtbot.waitUntil(lambda: folder_rows(window) == [f"photos (incomplete, {left} left)"], timeout=WAIT_MS)
    tip = window.sidebar.folders.topLevelItem(1).toolTip(0)
    assert f"{left} photos not indexed yet" in tip and "Rescan finishes it now" in tip
    window.close()

    window = make_window(library, watch=False, catch_up=True)
    assert folder_rows(window) == [f"photos (incomplete, {left} left)"]  # still, while the catch-up runs
    wait_until_finished(qtbot, window)
    qtbot.waitUntil(lambda: folder_rows(window) == ["photos"], timeout=WAIT_MS)
    assert IncompleteFolders(library).read() == [] and not (library / "incomplete.json").exists()
    with PhotoIndex(library) as index:
        assert index.photo_count() == 3 * corpus_size()


def test_a_run_whose_process_was_killed_counts_as_incomplete(qtbot, make_window, library: Path, tmp_path: Path) -> None:
    folder = str(photo_folder(tmp_path / "photos", max_side=256).resolve())
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(library), folder], cwd=REPO, check=False)
    assert killed.returncode == 9
    window = make_window(library, watch=False)
    assert folder_rows(window) == [f"photos (incomplete, {corpus_size()} left)"]
    window.close()

    window = make_window(library, watch=False, catch_up=True)
    wait_until_finished(qtbot, window)
    qtbot.waitUntil(lambda: folder_rows(window) == ["photos"], timeout=WAIT_MS)
    with PhotoIndex(library) as index:
        assert index.photo_count() == corpus_size()
