"""The photo view: a large preview with the photo's facts and tags (add, confirm, remove), open / show in folder,
find similar photos, previous / next."""

from __future__ import annotations

import os
from datetime import datetime

from PIL import Image
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFont, QImage, QKeySequence, QPixmap, QResizeEvent, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from core.pathtext import display
from desktop.controller import AppController
from desktop.file_actions import open_or_explain, reveal_or_explain
from desktop.tag_editor import TagEditor

PREVIEW_SIDE = 1600


def pil_to_qimage(image: Image.Image) -> QImage:
    """An RGB Pillow image as a QImage that owns its pixels (safe to hand to another thread)."""
    rgb = image.convert("RGB")
    data = rgb.tobytes()
    return QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format_RGB888).copy()


def human_size(size: int) -> str:
    """1.4 MB, 820 KB, 12 bytes."""
    if size < 1024:
        return f"{size} bytes"
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            return f"{size:.1f} {unit}" if size < 10 else f"{size:.0f} {unit}"
    return f"{size} bytes"


class PhotoView(QDialog):
    """Non-modal viewer for one photo of the grid; `navigate(step)` asks the window for the next one and
    `similar_requested(path)` for the photos that look like this one."""

    navigate = Signal(int)
    similar_requested = Signal(object)  # a path (object: a str signal would mangle names that are not UTF-8)

    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("photoView")
        self.setWindowTitle("Photo")
        self.resize(1000, 720)
        self.path: str | None = None
        self._image: QImage | None = None
        self._completions_loaded = False

        self.picture = QLabel(alignment=Qt.AlignCenter)
        self.picture.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Ignored)
        self.picture.setMinimumSize(QSize(320, 240))
        layout = QVBoxLayout(self)
        layout.addWidget(self.picture, 1)
        layout.addWidget(self._build_name())
        layout.addLayout(self._build_facts_and_tags())
        layout.addLayout(self._build_buttons())
        self._add_shortcuts()

    def _build_name(self) -> QLabel:
        """The photo's file name, bold and a size larger."""
        self.name = QLabel()
        font = QFont(self.name.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self.name.setFont(font)
        return self.name

    def _build_facts_and_tags(self) -> QHBoxLayout:
        """The photo's facts (selectable) beside its tag editor."""
        controller = self.controller
        keys = ("Path", "Pixels", "File size", "Modified", "Taken", "Camera", "Score", "Position")
        self.facts = {key: QLabel() for key in keys}
        self.facts["Path"].setWordWrap(True)
        info = QFormLayout()
        for key, label in self.facts.items():
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            info.addRow(f"{key}:", label)
        self.tag_editor = TagEditor()
        self.tag_editor.add_requested.connect(lambda tag: self._edit_tag(controller.add_tag, tag))
        self.tag_editor.confirm_requested.connect(lambda tag: self._edit_tag(controller.add_tag, tag))
        self.tag_editor.remove_requested.connect(lambda tag: self._edit_tag(controller.remove_tag, tag))
        controller.photo_tags.connect(self._tags_loaded)
        controller.photo_tags_failed.connect(
            lambda path, message: path == self.path and self.tag_editor.show_error(message)
        )
        facts_and_tags = QHBoxLayout()
        facts_and_tags.addLayout(info, 3)
        facts_and_tags.addWidget(self.tag_editor, 2)
        return facts_and_tags

    def _build_buttons(self) -> QHBoxLayout:
        """Previous / Next on the left; Find Similar, Open, Show in Folder and Close on the right."""
        self.prev_button = QPushButton("◀ Previous")
        self.next_button = QPushButton("Next ▶")
        self.open_button = QPushButton("Open")
        self.folder_button = QPushButton("Show in Folder")
        self.similar_button = QPushButton("Find Similar")
        self.similar_button.setToolTip("Show the photos that look most like this one (Ctrl+Shift+F)")
        self.similar_button.clicked.connect(self.find_similar)
        self.prev_button.clicked.connect(lambda: self.navigate.emit(-1))
        self.next_button.clicked.connect(lambda: self.navigate.emit(1))
        self.open_button.clicked.connect(self.open_file)
        self.folder_button.clicked.connect(self.show_in_folder)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        for button in (self.prev_button, self.next_button):
            row.addWidget(button)
        row.addStretch(1)
        for button in (self.similar_button, self.open_button, self.folder_button):
            row.addWidget(button)
        for button in (self.prev_button, self.next_button, self.similar_button, self.open_button, self.folder_button):
            button.setAutoDefault(False)
        row.addWidget(buttons)
        return row

    def _add_shortcuts(self) -> None:
        for keys, step in ((Qt.Key_Left, -1), (Qt.Key_PageUp, -1), (Qt.Key_Right, 1), (Qt.Key_PageDown, 1)):
            QShortcut(QKeySequence(keys), self, activated=lambda step=step: self.navigate.emit(step))
        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self.open_file)
        QShortcut(QKeySequence("Ctrl+Shift+F"), self, activated=self.find_similar)
        QShortcut(QKeySequence("Ctrl+T"), self, activated=self.focus_add_tag)

    def show_photo(self, path: str, position: tuple[int, int], score: float | None) -> None:
        """Show `path` (row `position[0]` of `position[1]`); the preview loads in the background."""
        self.path = path
        self._image = None
        self.picture.setText("Loading…")
        name = display(os.path.basename(path))  # Qt text cannot hold the raw bytes of a name
        self.name.setText(name)
        self.setWindowTitle(f"{name} — PhotoSeek")
        self.facts["Path"].setText(display(path))
        self.facts["Score"].setText(f"{score:.3f}" if score is not None else "—")
        self.facts["Position"].setText(f"{position[0] + 1:,} of {position[1]:,}")
        for key in ("Pixels", "File size", "Modified", "Taken", "Camera"):
            self.facts[key].setText("…")
        self.prev_button.setEnabled(position[0] > 0)
        self.next_button.setEnabled(position[0] + 1 < position[1])

        def load(service: object) -> tuple[str, QImage, object]:
            return path, pil_to_qimage(service.preview(path, PREVIEW_SIDE)), service.details(path)

        def failed(message: str) -> None:
            if self.path == path:
                self.picture.setText(f"This photo cannot be shown.\n{message}")

        self.controller.run("preview", load, on_success=self._loaded, on_error=failed)
        self.tag_editor.set_loading()
        self.controller.load_tags(path)
        if not self._completions_loaded:
            self._completions_loaded = True
            self.controller.run("vocabulary", lambda service: service.vocabulary(), self.tag_editor.set_completions)
        self.show()
        self.raise_()

    def _loaded(self, result: tuple[str, QImage, object]) -> None:
        path, image, details = result
        if path != self.path:
            return  # the user moved on while this one loaded
        self._image = image
        self.facts["Pixels"].setText(f"{details.width:,} × {details.height:,}")
        self.facts["File size"].setText(human_size(details.size_bytes))
        self.facts["Modified"].setText(datetime.fromtimestamp(details.modified).strftime("%Y-%m-%d %H:%M"))
        for key in ("Taken", "Camera"):
            self.facts[key].setText(details.extra.get(key, "—"))
        self._fit()

    def _fit(self) -> None:
        if self._image is None:
            return
        ratio = self.devicePixelRatioF()
        target = self.picture.size() * ratio
        image = self._image
        if image.width() > target.width() or image.height() > target.height():  # shrink to fit, never enlarge
            image = image.scaled(target, Qt.KeepAspectRatio, Qt.SmoothTransformation)
        pixmap = QPixmap.fromImage(image)
        pixmap.setDevicePixelRatio(ratio)
        self.picture.setPixmap(pixmap)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit()

    def _tags_loaded(self, path: str, tags: list) -> None:
        if path == self.path:
            self.tag_editor.set_tags(tags)

    def _edit_tag(self, change: object, tag: str) -> None:
        if self.path:
            change(self.path, tag)

    def focus_add_tag(self) -> None:
        self.tag_editor.add_edit.setFocus(Qt.ShortcutFocusReason)

    def find_similar(self) -> None:
        if self.path:
            self.similar_requested.emit(self.path)

    def open_file(self) -> None:
        if self.path:
            open_or_explain(self, self.path)

    def show_in_folder(self) -> None:
        if self.path:
            reveal_or_explain(self, self.path)
