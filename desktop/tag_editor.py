"""The photo view's tags: each tag with its score, who set it and its state; add, confirm and remove.

It only shows tags and asks for changes; the photo view sends them to the controller, which persists them
through core's Tagger and sends the photo's tags back.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, QStringListModel, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCompleter,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

TagRole = Qt.UserRole + 1
StateRole = Qt.UserRole + 2


def describe_source(source: str, state: str) -> str:
    """Who set a tag, in words: 'you', 'model starter', 'model starter, confirmed'."""
    if source == "user":
        return "you"
    return f"model {source}, confirmed" if state == "confirmed" else f"model {source}"


class _TagList(QTreeWidget):
    """The tags list; Del/Backspace and Return/Enter become `key_pressed` (other keys navigate as usual)."""

    key_pressed = Signal(int)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key_Delete, Qt.Key_Backspace, Qt.Key_Return, Qt.Key_Enter):
            self.key_pressed.emit(event.key())
        else:
            super().keyPressEvent(event)


class _AddTagEdit(QLineEdit):
    """The "Add a tag…" field, made to live inside a dialog whose keys page through photos.

    Enter stays here (a QLineEdit passes it on, and the dialog would close). An empty field does not claim
    Left/Right, so the window's shortcuts page through photos; with text in it they move the cursor.
    Escape clears the field and emits `escaped` (the editor moves focus away), so a second Escape reaches the
    dialog and closes it.
    """

    escaped = Signal()

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.ShortcutOverride and not self.text() and event.key() in (Qt.Key_Left, Qt.Key_Right):
            event.ignore()  # not accepted: the shortcut, if any, gets the key
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key_Return, Qt.Key_Enter):
            super().keyPressEvent(event)  # emits returnPressed
            event.accept()
        elif event.key() == Qt.Key_Escape:
            self.clear()
            self.escaped.emit()
            event.accept()
        else:
            super().keyPressEvent(event)


class TagEditor(QWidget):
    """A photo's tags with Add, Confirm and Remove. Del removes and Return confirms the selected tag."""

    add_requested = Signal(str)
    confirm_requested = Signal(str)
    remove_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tagEditor")
        self.list = _TagList()
        self.list.setObjectName("photoTags")
        self.list.setHeaderLabels(["Tag", "Score", "Set by"])
        self.list.setRootIsDecorated(False)
        self.list.setUniformRowHeights(True)
        self.list.setSelectionMode(QAbstractItemView.SingleSelection)
        self.list.setToolTip("Tags of this photo. Del removes the selected tag, Enter confirms a model's tag.")
        header = self.list.header()
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeToContents)
        self.list.currentItemChanged.connect(lambda *_: self._update_buttons())
        self.list.itemDoubleClicked.connect(lambda *_: self.confirm_selected())

        self.add_edit = _AddTagEdit()
        self.add_edit.setObjectName("addTagEdit")
        self.add_edit.setPlaceholderText("Add a tag…")
        self.add_edit.setToolTip("Type a tag and press Enter (Ctrl+T); Esc leaves the field")
        self.add_edit.returnPressed.connect(self.add_typed)
        self.add_edit.escaped.connect(lambda: self.list.setFocus(Qt.OtherFocusReason))
        self._completions = QStringListModel(self)
        completer = QCompleter(self._completions, self)
        completer.setCaseSensitivity(Qt.CaseInsensitive)
        completer.setFilterMode(Qt.MatchContains)
        self.add_edit.setCompleter(completer)
        self.add_button = QPushButton("Add")
        self.add_button.clicked.connect(self.add_typed)
        self.confirm_button = QPushButton("Confirm")
        self.confirm_button.setToolTip("Mark the model's tag as right (it also makes the model more willing to use it)")
        self.confirm_button.clicked.connect(self.confirm_selected)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Take the tag off this photo; a model's tag will not come back")
        self.remove_button.clicked.connect(self.remove_selected)
        self.status = QLabel()
        self.status.setWordWrap(True)

        self.list.key_pressed.connect(self._list_key)

        row = QHBoxLayout()
        row.addWidget(self.add_edit, 1)
        for button in (self.add_button, self.confirm_button, self.remove_button):
            row.addWidget(button)
        for button in (self.add_button, self.confirm_button, self.remove_button):
            button.setAutoDefault(False)  # Enter in the dialog must not press whichever button had focus last
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list, 1)
        layout.addLayout(row)
        layout.addWidget(self.status)
        self._update_buttons()

    # --- content -------------------------------------------------------------------------------

    def set_tags(self, tags: Sequence[object]) -> None:
        """Show a photo's tags (objects with tag, score, source, state), keeping the selected tag selected."""
        selected = self.selected_tag()
        self.list.clear()
        for tag in tags:
            score = "—" if tag.score is None else f"{tag.score:.2f}"
            item = QTreeWidgetItem([tag.tag, score, describe_source(tag.source, tag.state)])
            item.setData(0, TagRole, tag.tag)
            item.setData(0, StateRole, tag.state if tag.source != "user" else "user")
            item.setTextAlignment(1, Qt.AlignRight | Qt.AlignVCenter)
            self.list.addTopLevelItem(item)
            if tag.tag == selected:
                self.list.setCurrentItem(item)
        self.status.setText("" if tags else "No tags yet: add one below.")
        self._update_buttons()

    def set_loading(self) -> None:
        self.list.clear()
        self.status.setText("Loading tags…")
        self._update_buttons()

    def show_error(self, message: str) -> None:
        """Say why the last change did not happen (e.g. a tag that is too long)."""
        self.status.setText(message)

    def set_completions(self, words: Sequence[str]) -> None:
        """Tags offered while typing (the vocabulary and every tag in use)."""
        self._completions.setStringList(list(words))

    def tags(self) -> list[tuple[str, str, str]]:
        """(tag, score, set by) as listed now."""
        rows = []
        for row in range(self.list.topLevelItemCount()):
            item = self.list.topLevelItem(row)
            rows.append((item.text(0), item.text(1), item.text(2)))
        return rows

    def selected_tag(self) -> str | None:
        item = self.list.currentItem()
        return None if item is None else item.data(0, TagRole)

    def select(self, tag: str) -> bool:
        """Make `tag` the selected one; False if the photo does not carry it."""
        for row in range(self.list.topLevelItemCount()):
            item = self.list.topLevelItem(row)
            if item.data(0, TagRole) == tag:
                self.list.setCurrentItem(item)
                return True
        return False

    # --- actions -------------------------------------------------------------------------------

    def add_typed(self) -> None:
        text = " ".join(self.add_edit.text().split())
        if text:
            self.add_edit.clear()
            self.add_requested.emit(text)

    def confirm_selected(self) -> None:
        item = self.list.currentItem()
        if item is not None and item.data(0, StateRole) == "auto":
            self.confirm_requested.emit(item.data(0, TagRole))

    def remove_selected(self) -> None:
        tag = self.selected_tag()
        if tag is not None:
            self.remove_requested.emit(tag)

    def _list_key(self, key: int) -> None:
        if key in (Qt.Key_Delete, Qt.Key_Backspace):
            self.remove_selected()
        else:
            self.confirm_selected()

    def _update_buttons(self) -> None:
        item = self.list.currentItem()
        self.confirm_button.setEnabled(item is not None and item.data(0, StateRole) == "auto")
        self.remove_button.setEnabled(item is not None)
