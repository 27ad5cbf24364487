"""Hand a photo or folder to the desktop: open it in the default app, or show it in the file manager.

Qt's text cannot hold the raw bytes of a file name that is not UTF-8 (Python keeps them as lone surrogates),
so such paths go to the opener as bytes instead of through QUrl, and dropped URLs are decoded from their
percent-encoded bytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote_to_bytes

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices

from core.pathtext import display


def _open_url_of(path: str) -> None:
    if display(path) == path or os.name != "posix":
        QDesktopServices.openUrl(QUrl.fromLocalFile(path))
    else:  # only POSIX names can hold raw bytes; subprocess passes them through unchanged
        subprocess.Popen(["xdg-open", path])


def open_file(path: str) -> None:
    """Open a photo (or a folder) with the desktop's default application."""
    _open_url_of(path)


def show_in_file_manager(path: str) -> None:
    """Open the folder holding `path`, with the file selected where the platform can do that."""
    if sys.platform == "darwin":
        subprocess.Popen(["open", "-R", path])
    elif sys.platform == "win32":
        subprocess.Popen(["explorer", "/select,", os.path.normpath(path)])
    else:
        _open_url_of(str(Path(path).parent))


def local_path(url: QUrl) -> str:
    """The local path of a file URL (e.g. a dropped file), keeping the bytes of a name that is not UTF-8."""
    path = url.toLocalFile()
    if "\ufffd" in path and os.name == "posix" and not url.host():
        return os.fsdecode(unquote_to_bytes(url.path(QUrl.FullyEncoded)))  # Qt decoded the bytes as U+FFFD
    return path
