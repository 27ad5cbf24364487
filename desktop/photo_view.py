"""The photo view: a large preview with the photo's facts, open / show in folder, previous / next."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QFont, QImage, QKeySequence, QPixmap, QResizeEvent, QShortcut
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

from desktop.controller import AppController

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


def show_in_file_manager(path: str) -> None:
    """Open the folder holding `path`, with the file selected where the platform can do that."""
    if sys.platform == "darwin":
        subprocess.Popen(["open", "-R", path])
    elif sys.platform == "win32":
        subprocess.Popen(["explorer", "/select,", os.path.normpath(path)])
    else:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent)))


class PhotoView(QDialog):
    """Non-modal viewer for one photo of the grid; `navigate(step)` asks the window for the next one."""

    navigate = Signal(int)

    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setObjectName("photoView")
        self.setWindowTitle("Photo")
        self.resize(1000, 720)
        self.path: str | None = None
        self._image: QImage | None = None

        self.picture = QLabel(alignment=Qt.AlignCenter)
        self.picture.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Ignored)
        self.picture.setMinimumSize(QSize(320, 240))
        self.name = QLabel()
        font = QFont(self.name.font())
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self.name.setFont(font)
        keys = ("Path", "Pixels", "File size", "Modified", "Taken", "Camera", "Score", "Position")
        self.facts = {key: QLabel() for key in keys}
        self.facts["Path"].setWordWrap(True)
        info = QFormLayout()
        for key, label in self.facts.items():
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            info.addRow(f"{key}:", label)

        self.prev_button = QPushButton("◀ Previous")
        self.next_button = QPushButton("Next ▶")
        self.open_button = QPushButton("Open")
        self.folder_button = QPushButton("Show in Folder")
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
        for button in (self.open_button, self.folder_button):
            row.addWidget(button)
        row.addWidget(buttons)

        layout = QVBoxLayout(self)
        layout.addWidget(self.picture, 1)
        layout.addWidget(self.name)
        layout.addLayout(info)
        layout.addLayout(row)

        for keys, step in ((Qt.Key_Left, -1), (Qt.Key_PageUp, -1), (Qt.Key_Right, 1), (Qt.Key_PageDown, 1)):
            QShortcut(QKeySequence(keys), self, activated=lambda step=step: self.navigate.emit(step))
        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self.open_file)

    def show_photo(self, path: str, position: tuple[int, int], score: float | None) -> None:
        """Show `path` (row `position[0]` of `position[1]`); the preview loads in the background."""
        self.path = path
        self._image = None
        self.picture.setText("Loading…")
        self.name.setText(os.path.basename(path))
        self.setWindowTitle(f"{os.path.basename(path)} — PhotoSeek")
        self.facts["Path"].setText(path)
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

    def open_file(self) -> None:
        if self.path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(self.path))

    def show_in_folder(self) -> None:
        if self.path:
            show_in_file_manager(self.path)
