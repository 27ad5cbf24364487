"""The main window's menus and their keyboard shortcuts (listed for users in dialogs.SHORTCUTS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu

from desktop.dialogs import show_shortcuts_dialog
from desktop.models_window import show_models_window

if TYPE_CHECKING:
    from desktop.main_window import MainWindow


def build_menus(window: MainWindow) -> dict[str, QAction]:
    """Create File, Edit, Photo, View and Help; returns the actions other code enables, checks or triggers."""
    actions: dict[str, QAction] = {}

    def add(
        menu: QMenu, key: str, text: str, slot: Callable[..., object], shortcut: QKeySequence | str | None = None
    ) -> QAction:
        act = QAction(text, window)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(slot)
        menu.addAction(act)
        actions[key] = act
        return act

    controller, bar = window.controller, window.menuBar()
    file_menu = bar.addMenu("&File")
    add(file_menu, "add_folder", "Add &Folder…", window.choose_folder, QKeySequence.Open)
    add(file_menu, "add_photos", "Add &Photos…", window.choose_files, "Ctrl+Shift+O")
    file_menu.addSeparator()
    add(file_menu, "rescan", "&Rescan Library", lambda: controller.rescan(), QKeySequence.Refresh)
    add(file_menu, "rescan_folder", "Rescan &Selected Folder", window.rescan_selected_folder, "Shift+F5")
    add(file_menu, "remove_folder", "Re&move Selected Folder…", window.remove_selected_folder, "Ctrl+Shift+Del")
    file_menu.addSeparator()
    add(file_menu, "models", "Mo&dels…", lambda: show_models_window(window), "Ctrl+Shift+M")
    file_menu.addSeparator()
    add(file_menu, "quit", "&Quit", window.close, QKeySequence.Quit)

    edit_menu = bar.addMenu("&Edit")
    add(edit_menu, "find", "&Find", window.focus_search, QKeySequence.Find)
    add(edit_menu, "clear_search", "&Clear Search", lambda: window.search_edit.clear(), "Ctrl+Backspace")
    add(edit_menu, "show_all", "Show &All Photos", window.show_all_photos, "Ctrl+Shift+A")

    photo_menu = bar.addMenu("&Photo")
    add(photo_menu, "open_photo", "&View Photo", window.open_current_photo)  # Enter in the grid
    add(photo_menu, "similar", "Find &Similar Photos", window.find_similar_to_current, "Ctrl+Shift+F")
    add(photo_menu, "open_file", "&Open in Default App", window.open_current_file, "Ctrl+Return")
    add(photo_menu, "show_file", "Show in File &Manager", window.show_current_in_folder, "Ctrl+Shift+R")
    photo_menu.addSeparator()
    add(photo_menu, "teach", "&Teach a Concept…", window.teach_selected)

    view_menu = bar.addMenu("&View")
    sidebar = add(view_menu, "sidebar", "&Sidebar", window.set_sidebar_visible, "F9")
    sidebar.setCheckable(True)
    view_menu.addSeparator()
    for key, label, sort, shortcut in (
        ("sort_relevance", "Sort by &Best Match", "relevance", "Ctrl+1"),
        ("sort_date", "Sort by &Date", "date", "Ctrl+2"),
    ):
        add(view_menu, key, label, lambda _=False, sort=sort: window.set_sort(sort), shortcut).setCheckable(True)
    view_menu.addSeparator()
    add(view_menu, "zoom_in", "Zoom &In", lambda: window.zoom(+24), QKeySequence.ZoomIn)
    add(view_menu, "zoom_out", "Zoom &Out", lambda: window.zoom(-24), QKeySequence.ZoomOut)
    add(view_menu, "zoom_reset", "&Actual Size", lambda: window.zoom(0), "Ctrl+0")
    view_menu.addSeparator()
    add(view_menu, "errors", "&Unreadable Files…", window.show_errors, "Ctrl+E")

    help_menu = bar.addMenu("&Help")
    add(help_menu, "shortcuts", "&Keyboard Shortcuts", lambda: show_shortcuts_dialog(window), QKeySequence.HelpContents)
    return actions
