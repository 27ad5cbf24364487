"""Small dialogs: choosing folders or photos to add, the files that could not be indexed, the keyboard shortcuts,
removing a folder."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QMessageBox,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.pathtext import display
from desktop.file_actions import reveal_or_explain

SHORTCUTS = (
    ("Ctrl+O", "Add a folder of photos"),
    ("Ctrl+Shift+O", "Add single photos"),
    ("Drag and drop", "Drop folders or photos anywhere on the window to add them"),
    ("Ctrl+F", "Search"),
    ("Enter", "Search now (in the search box) / open the selected photo (in the grid)"),
    ("Esc", "Clear the search box / leave the tag field, then close the photo view"),
    ("Down", "From the search box into the grid"),
    ("Arrow keys", "Move through the grid"),
    ("Ctrl+1 / Ctrl+2", "Sort search results by best match / by date"),
    ("Ctrl+Shift+A", "Show all photos (clear the search, folder and tag filters)"),
    ("Ctrl+Shift+F", "Find photos similar to the selected one"),
    ("Ctrl+Enter", "Open the photo in the default app"),
    ("Ctrl+Shift+R", "Show the photo in the file manager"),
    ("Left / Right", "Previous / next photo in the photo view (in the tag field: once it is empty)"),
    ("Ctrl+T", "Add a tag (photo view)"),
    ("Del / Enter", "Remove / confirm the selected tag (photo view)"),
    ("Enter / Space", "Filter by the selected tag; again to stop (tags list)"),
    ("F5 / Shift+F5", "Rescan the library / the selected folder"),
    ("Del", "Remove the selected folder from the library (folders list)"),
    ("Ctrl+Shift+M", "Models: get MobileCLIP, import, install, switch and remove models"),
    ("F9", "Show or hide the sidebar"),
    ("Ctrl+E", "Files that could not be indexed, and why"),
    ("Ctrl++ / Ctrl+- / Ctrl+0", "Bigger / smaller / default thumbnails"),
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
    tree.setObjectName("table")
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
    shown = [(display(path), reason) for path, reason in rows]  # Qt text cannot hold the raw bytes of a name
    dialog = _table_dialog(parent, "Unreadable files", intro, ("File", "Reason"), shown)
    dialog.setObjectName("errorsDialog")
    tree = dialog.findChild(QTreeWidget, "table")
    reveal = QPushButton("Show in File Manager")
    reveal.setEnabled(False)
    tree.currentItemChanged.connect(lambda item, _: reveal.setEnabled(item is not None))
    reveal.clicked.connect(
        lambda: tree.currentItem() and reveal_or_explain(dialog, rows[tree.indexOfTopLevelItem(tree.currentItem())][0])
    )
    dialog.findChild(QDialogButtonBox).addButton(reveal, QDialogButtonBox.ActionRole)
    dialog.show()
    return dialog


def confirm_remove_folder(parent: QWidget, folder: str, photo_count: int) -> bool:
    """Ask before forgetting a folder's photos (their tags and embeddings go too; the files stay)."""
    box = QMessageBox(parent)
    box.setObjectName("confirmRemoveFolder")
    box.setIcon(QMessageBox.Question)
    box.setWindowTitle("Remove folder")
    box.setText(f"Remove “{display(folder)}” from the library?")
    box.setInformativeText(
        f"PhotoSeek forgets its {photo_count:,} photo{'s' if photo_count != 1 else ''}, with their tags. "
        "The files stay where they are; add the folder again to bring them back."
    )
    remove = box.addButton("Remove", QMessageBox.DestructiveRole)
    box.addButton(QMessageBox.Cancel)
    box.setDefaultButton(QMessageBox.Cancel)
    box.exec()
    return box.clickedButton() is remove


def show_shortcuts_dialog(parent: QWidget) -> QDialog:
    """The keyboard shortcuts (non-modal)."""
    dialog = _table_dialog(parent, "Keyboard shortcuts", "", ("Keys", "Action"), list(SHORTCUTS))
    dialog.show()
    return dialog


def ask_for_folder(parent: QWidget, settings: QSettings) -> list[Path]:
    """A folder of photos the user picks ([] when cancelled); the dialog opens where the last one was."""
    start = str(settings.value("dialogs/last_folder", str(Path.home())))
    folder = QFileDialog.getExistingDirectory(parent, "Add a folder of photos", start)
    if not folder:
        return []
    settings.setValue("dialogs/last_folder", folder)
    return [Path(folder)]


def ask_for_photos(parent: QWidget, settings: QSettings) -> list[Path]:
    """Single photos the user picks ([] when cancelled)."""
    start = str(settings.value("dialogs/last_folder", str(Path.home())))
    files, _ = QFileDialog.getOpenFileNames(
        parent, "Add photos", start, "Photos (*.jpg *.jpeg *.png *.webp *.tif *.tiff *.gif *.bmp);;All files (*)"
    )
    return [Path(f) for f in files]
