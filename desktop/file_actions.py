"""Hand a photo or folder to the desktop: open it in the default app, or show it in the file manager.

Qt's text cannot hold the raw bytes of a file name that is not UTF-8 (Python keeps them as lone surrogates),
so such paths go to the opener as bytes instead of through QUrl, and dropped URLs are decoded from their
percent-encoded bytes. When nothing takes a path (no default app for its type), the user is told so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote_to_bytes

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox, QWidget

from core.pathtext import display


def _launch(command: list[str]) -> bool:
    try:
        subprocess.Popen(command)
    except OSError:  # the opener itself is missing
        return False
    return True


def _open_url_of(path: str) -> bool:
    if display(path) == path or os.name != "posix":
        return QDesktopServices.openUrl(QUrl.fromLocalFile(path))  # False: no app is set up for it
    return _launch(["xdg-open", path])  # only POSIX names can hold raw bytes; subprocess passes them unchanged


def open_file(path: str) -> bool:
    """Open a photo (or a folder) with the desktop's default application; False if nothing took it."""
    return _open_url_of(path)


def show_in_file_manager(path: str) -> bool:
    """Open the folder holding `path`, with the file selected where the platform can do that; False if nothing
    took it."""
    if sys.platform == "darwin":
        return _launch(["open", "-R", path])
    if sys.platform == "win32":
        return _launch(["explorer", "/select,", os.path.normpath(path)])
    return _open_url_of(str(Path(path).parent))


def _tell_nothing_opened(parent: QWidget, text: str) -> QMessageBox:
    box = QMessageBox(QMessageBox.Warning, "Cannot open", text, QMessageBox.Ok, parent)
    box.setObjectName("cannotOpenBox")
    box.setInformativeText("Set a default app for this kind of file in your system's settings, then try again.")
    box.setTextInteractionFlags(Qt.TextSelectableByMouse)  # the path can be copied
    box.setAttribute(Qt.WA_DeleteOnClose)
    box.open()  # window-modal, without blocking the event loop
    return box


def open_or_explain(parent: QWidget, path: str) -> None:
    """Open `path` in its default app, or tell the user that no app is set up to open it."""
    if not open_file(path):
        _tell_nothing_opened(parent, f"No app is set up to open “{display(path)}”.")


def reveal_or_explain(parent: QWidget, path: str) -> None:
    """Show `path` in the file manager, or tell the user that nothing could show its folder."""
    if not show_in_file_manager(path):
        folder = display(str(Path(path).parent))
        _tell_nothing_opened(parent, f"No app is set up to show the folder “{folder}” of “{display(path)}”.")


def local_path(url: QUrl) -> str:
    """The local path of a file URL (e.g. a dropped file), keeping the bytes of a name that is not UTF-8."""
    path = url.toLocalFile()
    if "\ufffd" in path and os.name == "posix" and not url.host():
        return os.fsdecode(unquote_to_bytes(url.path(QUrl.FullyEncoded)))  # Qt decoded the bytes as U+FFFD
    return path
