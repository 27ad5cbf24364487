"""Composition root: the QApplication, the app icon, settings, and a main window wired to a controller."""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from core.paths import APP_NAME, assets_dir
from desktop.controller import AppController
from desktop.main_window import MainWindow


def app_icon() -> QIcon:
    """PhotoSeek's icon at every size we ship."""
    icon = QIcon()
    folder = assets_dir() / "icons"
    for name in ("photoseek-64.png", "photoseek-256.png", "photoseek.svg"):
        if (folder / name).is_file():
            icon.addFile(str(folder / name))
    return icon


def ensure_display() -> str | None:
    """On Linux without a display Qt aborts the process; say so instead. Returns an error or None."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("QT_QPA_PLATFORM") or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display found: run PhotoSeek in a desktop session, or set QT_QPA_PLATFORM=offscreen"
    return None


def binding_problem() -> str | None:
    """A warning when the installed Qt binding is known to crash here, else None.

    PySide6 6.12.0 drops a reference to None/True/False on many calls (QPainter.save, setBrush, ...). Python 3.12+
    makes those objects immortal so nothing happens there; on Python 3.11 the app dies after a few thousand paints.
    """
    import PySide6

    if sys.version_info < (3, 12) and PySide6.__version__ == "6.12.0":
        return (
            "This PySide6 (6.12.0) is known to crash on Python 3.11. Install another version: "
            'pip install "PySide6-Essentials==6.11.3" "shiboken6==6.11.3"'
        )
    return None


def freeze_startup_objects() -> None:
    """Move every object alive now (imported modules, Qt wrappers) out of the garbage collector's reach.

    A full collection walks every tracked object; with numpy, onnxruntime and Qt loaded that is a pause of
    tens of milliseconds on the GUI thread, every few seconds while indexing allocates. Startup objects live
    for the whole session anyway, so they need never be scanned again.
    """
    gc.freeze()


def make_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (created once), named so QSettings and the desktop know it."""
    app = QApplication.instance()
    if app is None:
        QApplication.setApplicationName(APP_NAME)
        QApplication.setOrganizationName(APP_NAME)
        QApplication.setApplicationDisplayName(APP_NAME)
        QApplication.setDesktopFileName("photoseek")
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setWindowIcon(app_icon())
    freeze_startup_objects()
    return app


def default_settings() -> QSettings:
    """The user's settings store (the platform's native place)."""
    return QSettings(APP_NAME, APP_NAME)


def create_main_window(
    library: Path, settings: QSettings, *, search_top: int = 500, watch: bool = True, catch_up: bool = True
) -> MainWindow:
    """A main window over `library`; the library opens in the background right away, its folders are brought
    up to date with the disk unless `catch_up` is False and watched for changes unless `watch` is False."""
    controller = AppController(library, search_top=search_top, watch=watch, catch_up=catch_up)
    window = MainWindow(controller, settings, app_icon())
    controller.setParent(window)
    problem = binding_problem()
    if problem:
        window.message_bar.show_message(problem, error=True)
    controller.open()
    return window


def report_when_shown(window: MainWindow, started: float) -> None:
    """For bench/startup.py: print when the first window is on screen and when the library is open, then quit.

    Times are absolute (time.time()) so the caller can measure from before the process started.
    """

    def shown() -> None:
        print(f"first_window_shown_at={time.time():.6f} main_entered_at={started:.6f}", flush=True)

    def opened(_: object) -> None:
        print(f"library_open_at={time.time():.6f}", flush=True)
        QTimer.singleShot(0, window.close)

    QTimer.singleShot(0, shown)  # runs once the event loop has shown and painted the window
    window.controller.ready.connect(opened)
    window.controller.error.connect(lambda text: (print(f"error={text}", flush=True), window.close()))
