"""The sidebar: library folders with photo counts (select to filter, rescan, remove) and tags with counts
(click to filter, click again to clear). It only shows and asks; the window decides what happens."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QFont, QKeyEvent, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QSplitter,
    QStyle,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.pathtext import display

NO_INCOMPLETE: Mapping[str, object] = {}  # set_folders without incomplete folders (a shared empty default)
ValueRole = Qt.UserRole + 1  # an item's row in CountList._values (its folder path or tag; "" for "All Photos")


class CountList(QTreeWidget):
    """A flat two-column list: a name and a right-aligned count. Return/Space/Delete are forwarded as signals."""

    # Values stay in Python and travel as objects: Qt text would drop the raw bytes of a folder name that is not UTF-8.
    activated_key = Signal(object)  # the current item's value, for Return or Space
    delete_key = Signal(object)

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self.setColumnCount(2)
        self.setHeaderHidden(True)
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setSelectionMode(QAbstractItemView.SingleSelection)
        self.setFrameShape(QTreeWidget.NoFrame)
        self.viewport().setBackgroundRole(QPalette.Window)  # a sidebar reads as part of the window, not a page
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeToContents)
        self._values: list[str] = []

    def clear(self) -> None:
        super().clear()
        self._values.clear()

    def value_of(self, item: QTreeWidgetItem) -> str:
        """What selecting `item` means (a folder path or a tag)."""
        return self._values[item.data(0, ValueRole)]

    def add_row(self, label: str, count: int | None, value: str, tooltip: str = "") -> QTreeWidgetItem:
        """Append a row showing `label` and `count`; `value` is what selecting it means."""
        item = QTreeWidgetItem([label, "" if count is None else f"{count:,}"])
        item.setData(0, ValueRole, len(self._values))
        self._values.append(value)
        item.setTextAlignment(1, Qt.AlignRight | Qt.AlignVCenter)
        item.setForeground(1, self.palette().brush(QPalette.PlaceholderText))
        if tooltip:
            item.setToolTip(0, tooltip)
        self.addTopLevelItem(item)
        return item

    def item_for(self, value: str) -> QTreeWidgetItem | None:
        for row in range(self.topLevelItemCount()):
            item = self.topLevelItem(row)
            if self.value_of(item) == value:
                return item
        return None

    def values(self) -> list[str]:
        """Every row's value, in order."""
        return [self.value_of(self.topLevelItem(row)) for row in range(self.topLevelItemCount())]

    def keyPressEvent(self, event: QKeyEvent) -> None:
        item = self.currentItem()
        if item is not None and event.key() in (Qt.Key_Return, Qt.Key_Enter, Qt.Key_Space):
            self.activated_key.emit(self.value_of(item))
        elif item is not None and event.key() == Qt.Key_Delete:
            self.delete_key.emit(self.value_of(item))
        else:
            super().keyPressEvent(event)


def _column() -> tuple[QWidget, QVBoxLayout]:
    """A widget with a tight vertical layout, for one pane of the sidebar's splitter."""
    widget = QWidget()
    layout = QVBoxLayout(widget)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    return widget, layout


def describe_incomplete(name: str, tooltip: str, left: int | None) -> tuple[str, str]:
    """A folder row's name and tooltip when its indexing did not finish (`left`: photos not indexed, if counted)."""
    count = "" if left is None else f"{left:,} photo{'s' if left != 1 else ''} not indexed yet. "
    why = "Indexing this folder was stopped before it finished (Cancel, quitting, or the app was closed)."
    how = "PhotoSeek finishes it when it opens; Rescan finishes it now."
    label = f"{name} (incomplete)" if left is None else f"{name} (incomplete, {left:,} left)"
    return label, f"{tooltip}\n{why}\n{count}{how}"


def _section_label(text: str) -> QLabel:
    label = QLabel(text)
    font = QFont(label.font())
    font.setBold(True)
    label.setFont(font)
    label.setContentsMargins(6, 6, 6, 2)
    label.setForegroundRole(QPalette.PlaceholderText)
    return label


class Sidebar(QWidget):
    """Folders above, tags below. Emits what the user chose; `show_folder`/`show_tag` mirror the current filter."""

    folder_chosen = Signal(object)  # a folder path, or None for every folder
    tag_chosen = Signal(object)  # a tag, or None to stop filtering by tag
    add_folder_requested = Signal()
    rescan_requested = Signal(object)  # folder paths travel as objects (see CountList)
    remove_requested = Signal(object)
    open_folder_requested = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sidebar")
        self._folder: str | None = None
        self._tag: str | None = None
        self._tags: list[tuple[str, int]] = []
        self._watched: set[str] = set()

        self.splitter = QSplitter(Qt.Vertical)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self._build_folders())
        self.splitter.addWidget(self._build_tags())
        self.splitter.setStretchFactor(0, 1)  # a few folders, many tags
        self.splitter.setStretchFactor(1, 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)
        self._update_buttons()

    def _build_folders(self) -> QWidget:
        """The "Folders" header (with the add / rescan / remove buttons) above the folder list."""
        self.folders = CountList("folderList")
        self.folders.itemClicked.connect(lambda item: self._choose_folder(self.folders.value_of(item)))
        self.folders.activated_key.connect(self._choose_folder)
        self.folders.delete_key.connect(lambda value: value and self.remove_requested.emit(value))
        self.folders.setContextMenuPolicy(Qt.CustomContextMenu)
        self.folders.customContextMenuRequested.connect(self._folder_menu)

        style = self.style()
        self.add_button = self._tool_button(style.standardIcon(QStyle.SP_FileDialogNewFolder), "Add a folder (Ctrl+O)")
        self.add_button.clicked.connect(self.add_folder_requested)
        self.rescan_button = self._tool_button(
            style.standardIcon(QStyle.SP_BrowserReload), "Rescan the selected folder (Shift+F5)"
        )
        self.rescan_button.clicked.connect(lambda: self._folder and self.rescan_requested.emit(self._folder))
        self.remove_button = self._tool_button(
            style.standardIcon(QStyle.SP_TrashIcon), "Remove the selected folder from the library (Del)"
        )
        self.remove_button.clicked.connect(lambda: self._folder and self.remove_requested.emit(self._folder))
        folder_header = QHBoxLayout()
        folder_header.setContentsMargins(0, 0, 4, 0)
        folder_header.addWidget(_section_label("Folders"), 1)
        for button in (self.add_button, self.rescan_button, self.remove_button):
            folder_header.addWidget(button)
        top, layout = _column()
        layout.addLayout(folder_header)
        layout.addWidget(self.folders, 1)
        return top

    def _build_tags(self) -> QWidget:
        """The "Tags" label, the tag filter field and the tag list."""
        self.tag_filter = QLineEdit()
        self.tag_filter.setObjectName("tagFilter")
        self.tag_filter.setPlaceholderText("Filter tags")
        self.tag_filter.setClearButtonEnabled(True)
        self.tag_filter.textChanged.connect(lambda _: self._fill_tags())
        self.tags = CountList("tagList")
        self.tags.itemClicked.connect(lambda item: self._toggle_tag(self.tags.value_of(item)))
        self.tags.activated_key.connect(self._toggle_tag)
        bottom, layout = _column()
        layout.addWidget(_section_label("Tags"))
        layout.addWidget(self.tag_filter)
        layout.addWidget(self.tags, 1)
        return bottom

    def _tool_button(self, icon: object, tip: str) -> QToolButton:
        button = QToolButton()
        button.setIcon(icon)
        button.setToolTip(tip)
        button.setAccessibleName(tip.split(" (")[0])
        button.setAutoRaise(True)
        return button

    # --- content -------------------------------------------------------------------------------

    def set_folders(
        self, folders: Sequence[object], total: int, incomplete: Mapping[str, object] = NO_INCOMPLETE
    ) -> None:
        """Show "All Photos" and each folder (objects with path, photo_count, exists) with its count; a folder in
        `incomplete` (core IncompleteFolder by path) says that its indexing did not finish and what is left."""
        self.folders.clear()
        self.folders.add_row("All Photos", total, "", "Every photo in the library")
        for folder in folders:
            name = display(Path(folder.path).name or folder.path)
            tip = display(folder.path)
            if not folder.exists:
                name, tip = f"{name} (missing)", f"{tip}\nThis folder is not there now (an unplugged drive?)"
            elif folder.path in self._watched:
                tip = f"{tip}\nWatched: new, changed and deleted photos update the library"
            unfinished = incomplete.get(folder.path)
            if unfinished is not None:
                name, tip = describe_incomplete(name, tip, unfinished.left)
            item = self.folders.add_row(name, folder.photo_count, folder.path, tip)
            if not folder.exists:
                item.setForeground(0, self.palette().brush(QPalette.PlaceholderText))
            elif unfinished is not None:
                item.setIcon(0, self.style().standardIcon(QStyle.SP_MessageBoxWarning))
        if self._folder is not None and self.folders.item_for(self._folder) is None:
            self._folder = None  # removed
        self._select(self.folders, self._folder or "")
        self._update_buttons()

    def set_watched(self, folders: Sequence[Path | str]) -> None:
        """Remember which folders are watched (shown in their tooltips)."""
        self._watched = {str(f) for f in folders}

    def set_tags(self, tags: Sequence[tuple[str, int]]) -> None:
        """Show every tag in use with its photo count (most used first)."""
        self._tags = list(tags)
        self._fill_tags()

    def _fill_tags(self) -> None:
        needle = self.tag_filter.text().strip().lower()
        rows = [(tag, n) for tag, n in self._tags if needle in tag]
        if self._tag is not None and self._tag not in (tag for tag, _ in rows):
            rows.insert(0, (self._tag, dict(self._tags).get(self._tag, 0)))  # keep the active filter clickable
        self.tags.clear()
        for tag, count in rows:
            self.tags.add_row(tag, count, tag, f"{count:,} photo{'s' if count != 1 else ''} tagged “{tag}”")
        self._select(self.tags, self._tag)

    # --- selection -----------------------------------------------------------------------------

    @property
    def folder(self) -> str | None:
        return self._folder

    @property
    def tag(self) -> str | None:
        return self._tag

    def show_filters(self, folder: str | None, tag: str | None) -> None:
        """Mirror the grid's current folder and tag filters (e.g. after "Find similar" cleared them)."""
        self._folder = folder
        if tag != self._tag:
            self._tag = tag
            self._fill_tags()
        self._select(self.folders, folder or "")
        self._update_buttons()

    @staticmethod
    def _select(widget: CountList, value: str | None) -> None:
        widget.blockSignals(True)
        item = widget.item_for(value) if value is not None else None
        widget.clearSelection()
        if item is not None:
            widget.setCurrentItem(item)
            item.setSelected(True)
        widget.blockSignals(False)

    def _choose_folder(self, value: str) -> None:
        self._folder = value or None
        self._select(self.folders, value)
        self._update_buttons()
        self.folder_chosen.emit(self._folder)

    def _toggle_tag(self, value: str) -> None:
        self._tag = None if value == self._tag else value
        self._select(self.tags, self._tag)
        self.tag_chosen.emit(self._tag)

    def _update_buttons(self) -> None:
        for button in (self.rescan_button, self.remove_button):
            button.setEnabled(self._folder is not None)

    def _folder_menu(self, pos: QPoint) -> None:
        item = self.folders.itemAt(pos)
        folder = self.folders.value_of(item) if item is not None else ""
        if not folder:
            return
        menu = QMenu(self)
        menu.addAction("Rescan Folder", lambda: self.rescan_requested.emit(folder))
        menu.addAction("Show in File Manager", lambda: self.open_folder_requested.emit(folder))
        menu.addSeparator()
        menu.addAction("Remove from Library…", lambda: self.remove_requested.emit(folder))
        menu.popup(self.folders.viewport().mapToGlobal(pos))

    def folder_row_text(self, folder: str) -> tuple[str, str] | None:
        """(name, count) as shown for a folder, or None when it is not listed (for tests and accessibility)."""
        item = self.folders.item_for(folder)
        return None if item is None else (item.text(0), item.text(1))

    def tag_rows(self) -> list[tuple[str, int]]:
        """(tag, count) as listed now."""
        rows = []
        for row in range(self.tags.topLevelItemCount()):
            item = self.tags.topLevelItem(row)
            rows.append((self.tags.value_of(item), int(item.text(1).replace(",", "") or 0)))
        return rows
