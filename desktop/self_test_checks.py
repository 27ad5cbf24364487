"""The self-test's checks after indexing, through the real window as a user would meet them: the grid's
thumbnails, the photo view, the photo's auto-tags, a tag edit; and a read-only look at the user's real library
(are its photos found and readable by this build?) that must leave it exactly as it was."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from desktop.main_window import MainWindow

EDIT_TAG = "photoseek self-test"
THUMB_SIDE = 128


class SelfTestError(RuntimeError):
    """A step of the self-test did not do what it should."""


def wait_until(condition: Callable[[], bool], timeout_ms: int, what: str) -> None:
    """Run the event loop until `condition()` holds (looking every 25 ms, idle in between: the workers need the CPU)."""
    from PySide6.QtCore import QDeadlineTimer, QEventLoop, QTimer

    deadline, loop = QDeadlineTimer(timeout_ms), QEventLoop()
    while not condition():
        if deadline.hasExpired():
            raise SelfTestError(f"timed out after {timeout_ms / 1000:.0f} s waiting for {what}")
        QTimer.singleShot(25, loop.quit)
        loop.exec()


def check_thumbnails(window: MainWindow, timeout_ms: int) -> int:
    """Every photo in the grid gets its thumbnail; returns how many."""
    loader, paths = window.controller.loader, window.grid_model.paths()
    wait_until(
        lambda: all(loader.pixmap(p, THUMB_SIDE) is not None or loader.has_failed(p) for p in paths),
        timeout_ms,
        "the thumbnails",
    )
    broken = [Path(p).name for p in paths if loader.has_failed(p)]
    if broken:
        raise SelfTestError(f"no thumbnail for {', '.join(broken)}")
    return len(paths)


def check_weaker_matches(window: MainWindow, photos: int, timeout_ms: int) -> int:
    """The search stopped where its matches stop (not every photo is a cat) and "Show weaker matches" brings the
    other photos below them; returns how many matched."""
    matches = window.grid_model.rowCount()
    if not 0 < matches < photos or not window.header.weaker_button.isVisibleTo(window):
        raise SelfTestError(f"the search listed {matches} of {photos} photos and offered no weaker ones: no cutoff")
    window.header.weaker_button.click()
    wait_until(lambda: window.grid_model.rowCount() == photos, timeout_ms, "the weaker matches")
    return matches


def check_photo_view_and_tags(window: MainWindow, timeout_ms: int) -> list[str]:
    """Open the first photo: its preview shows, it carries auto-tags, and a tag added and removed in the view's
    tag field is saved each time. Returns the photo's auto-tags."""
    from core.tagging import USER

    seen: dict[str, list] = {}
    window.controller.photo_tags.connect(lambda path, tags: seen.__setitem__(path, tags))
    window.open_photo(0)
    view, path = window.photo_view, window.photo_view.path
    wait_until(lambda: not view.picture.pixmap().isNull(), timeout_ms, "the photo view's picture")
    wait_until(lambda: path in seen, timeout_ms, "the photo's tags")
    auto = [tag.tag for tag in seen[path] if tag.source != USER]
    if not auto:
        raise SelfTestError(f"{Path(path).name} has no auto-tags")

    seen.pop(path)
    view.tag_editor.add_edit.setText(EDIT_TAG)
    view.tag_editor.add_typed()  # what Enter in "Add a tag…" does
    wait_until(lambda: path in seen, timeout_ms, "the added tag to be saved")
    if not any(tag.tag == EDIT_TAG and tag.source == USER for tag in seen[path]):
        raise SelfTestError(f"the tag added in the photo view was not saved: {[t.tag for t in seen[path]]}")
    seen.pop(path)
    window.controller.remove_tag(path, EDIT_TAG)
    wait_until(lambda: path in seen, timeout_ms, "the tag to be removed")
    if any(tag.tag == EDIT_TAG for tag in seen[path]):
        raise SelfTestError("the tag removed in the photo view is still there")
    view.close()
    return auto


def check_real_library(library: Path) -> str:
    """Would this build find and read the photos of the user's real library? Read-only: raises if the library's
    files changed while it looked."""
    from core.library_probe import probe_library

    before = _fingerprint(library)
    probe = probe_library(library)
    if _fingerprint(library) != before:
        raise SelfTestError(f"looking at the library {library} changed it")
    if probe is None:
        return "library=none-yet"
    if probe.not_found:
        missing = ", ".join(probe.not_found[:3]) + ("…" if len(probe.not_found) > 3 else "")
        raise SelfTestError(f"{len(probe.not_found)} indexed photos of {library} are on disk but not found: {missing}")
    if probe.unreadable:
        path, reason = probe.unreadable[0]
        raise SelfTestError(f"this build cannot read {path} of the library {library}: {reason}")
    return f"library_photos={probe.found}/{probe.present}"


def _fingerprint(library: Path) -> list[tuple[str, int, int]]:
    """(name, size, mtime) of the library's own files: index, its WAL, settings, marks. Not SQLite's shared-memory
    -shm file: readers of a database that another process has open take a read lock in it, which holds no data."""
    if not library.is_dir():
        return []
    files = (e for e in os.scandir(library) if e.is_file() and not e.name.endswith("-shm"))
    return sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in files)
