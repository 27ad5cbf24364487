"""What the main window remembers between sessions: geometry, sidebar, sort, thumbnail size."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray

from desktop.photo_grid import DEFAULT_THUMB
from desktop.query_state import SORTS

if TYPE_CHECKING:
    from desktop.main_window import MainWindow

SIDEBAR_WIDTH = 220
OLD_MIN_SCORE_KEY = "search/min_score_steps"  # the min-score slider's, before searches stopped at their own cutoff


def restore_window_settings(window: MainWindow) -> None:
    """Put the window back as the user left it (defaults on the first run)."""
    settings = window.settings
    geometry = settings.value("window/geometry")
    if isinstance(geometry, QByteArray) and not geometry.isEmpty():
        window.restoreGeometry(geometry)
    else:
        window.resize(1100, 720)
    state = settings.value("window/state")
    if isinstance(state, QByteArray):
        window.restoreState(state)
    splitter = settings.value("window/splitter")
    if not (isinstance(splitter, QByteArray) and window.splitter.restoreState(splitter)):
        window.splitter.setSizes([SIDEBAR_WIDTH, max(1, window.width() - SIDEBAR_WIDTH)])
    window.menu_actions["sidebar"].setChecked(str(settings.value("window/sidebar", "true")).lower() == "true")
    window.set_sidebar_visible(window.menu_actions["sidebar"].isChecked())
    window.grid_model.set_thumb_size(int(settings.value("grid/thumb_size", DEFAULT_THUMB)))
    sort = str(settings.value("search/sort", SORTS[0]))
    window.set_sort(sort if sort in SORTS else SORTS[0])


def save_window_settings(window: MainWindow) -> None:
    """Remember the window's state for the next session."""
    settings = window.settings
    settings.setValue("window/geometry", window.saveGeometry())
    settings.setValue("window/state", window.saveState())
    settings.setValue("window/splitter", window.splitter.saveState())
    settings.setValue("window/sidebar", "true" if window.menu_actions["sidebar"].isChecked() else "false")
    settings.remove(OLD_MIN_SCORE_KEY)
    settings.setValue("search/sort", window.controller.state.sort)
    settings.setValue("grid/thumb_size", window.grid_model.thumb_size)
    settings.sync()
