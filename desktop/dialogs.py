"""Small dialogs: the list of files that could not be indexed, and the keyboard shortcuts."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

SHORTCUTS = (
    ("Ctrl+O", "Add a folder of photos"),
    ("Ctrl+Shift+O", "Add single photos"),
    ("Drag and drop", "Drop folders or photos anywhere on the window to add them"),
    ("Ctrl+F", "Search"),
    ("Enter", "Search now (in the search box) / open the selected photo (in the grid)"),
    ("Esc", "Close the photo view"),
    ("Arrow keys", "Move through the grid"),
    ("Left / Right", "Previous / next photo in the photo view"),
    ("Ctrl+Enter", "Open the photo in the default app (photo view)"),
    ("Ctrl++ / Ctrl+- / Ctrl+0", "Bigger / smaller / default thumbnails"),
    ("F5", "Rescan the library for new, changed and deleted photos"),
    ("Ctrl+Q", "Quit"),
)


def _table_dialog(parent: QWidget, title: str, intro: str, headers: tuple[str, str], rows: list) -> QDialog:
    dialog = QDialog(parent)
    dialog.setWindowTitle(title)
    dialog.resize(760, 420)
    layout = QVBoxLayout(dialog)
    label = QLabel(intro)
    label.setWordWrap(True)
    layout.addWidget(label)
    tree = QTreeWidget()
    tree.setHeaderLabels(list(headers))
    tree.setRootIsDecorated(False)
    tree.setAlternatingRowColors(True)
    tree.addTopLevelItems([QTreeWidgetItem([str(a), str(b)]) for a, b in rows])
    tree.resizeColumnToContents(0)
    layout.addWidget(tree)
    buttons = QDialogButtonBox(QDialogButtonBox.Close)
    buttons.rejected.connect(dialog.reject)
    layout.addWidget(buttons)
    return dialog


def show_errors_dialog(parent: QWidget, rows: list[tuple[str, str]]) -> QDialog:
    """List the files that could not be indexed and why (non-modal)."""
    intro = (
        f"{len(rows):,} file{'s' if len(rows) != 1 else ''} could not be indexed. They are retried when they change."
        if rows
        else "Every file in the library could be read."
    )
    dialog = _table_dialog(parent, "Unreadable files", intro, ("File", "Reason"), rows)
    dialog.setObjectName("errorsDialog")
    dialog.show()
    return dialog


def show_shortcuts_dialog(parent: QWidget) -> QDialog:
    """The keyboard shortcuts (non-modal)."""
    dialog = _table_dialog(parent, "Keyboard shortcuts", "", ("Keys", "Action"), list(SHORTCUTS))
    dialog.show()
    return dialog
