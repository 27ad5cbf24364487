"""Keyboard shortcuts that belong to one widget."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QWidget


def widget_shortcut(key: QKeySequence | Qt.Key | str, widget: QWidget, slot: Callable[[], object]) -> QShortcut:
    """A shortcut active only while `widget` has focus.

    Set with setContext: PySide6 reads a `context=` keyword on the constructor as a property and then resets it,
    leaving a window-wide shortcut that steals the key (e.g. Down) from every other widget.
    """
    shortcut = QShortcut(QKeySequence(key), widget)
    shortcut.setContext(Qt.WidgetShortcut)
    shortcut.activated.connect(slot)
    return shortcut
