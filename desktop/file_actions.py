"""Hand a photo or folder to the desktop: open it in the default app, or show it in the file manager."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices


def open_file(path: str) -> None:
    """Open a photo (or a folder) with the desktop's default application."""
    QDesktopServices.openUrl(QUrl.fromLocalFile(path))


def show_in_file_manager(path: str) -> None:
    """Open the folder holding `path`, with the file selected where the platform can do that."""
    if sys.platform == "darwin":
        subprocess.Popen(["open", "-R", path])
    elif sys.platform == "win32":
        subprocess.Popen(["explorer", "/select,", os.path.normpath(path)])
    else:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent)))
