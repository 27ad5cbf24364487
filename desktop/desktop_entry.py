"""Put PhotoSeek in the Linux application menu: a freedesktop `.desktop` entry and its icons.

`photoseek --install-desktop-entry` (or `python -m desktop --install-desktop-entry`, or the packaged
`PhotoSeek --install-desktop-entry`) writes, under $XDG_DATA_HOME (default ~/.local/share):
`applications/photoseek.desktop` and `icons/hicolor/{64x64,256x256,scalable}/apps/photoseek.{png,svg}`. The entry
starts this very program (the packaged binary, or this Python with `-m desktop`), so it is installed from the copy
the user wants in the menu; `--remove-desktop-entry` takes it out again. Files are written atomically.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from core.paths import APP_NAME, assets_dir

ENTRY_NAME = "photoseek"  # also the app's Qt desktopFileName, so Wayland compositors match its windows to it
ICONS = {"64x64": "photoseek-64.png", "256x256": "photoseek-256.png", "scalable": "photoseek.svg"}


@dataclass(frozen=True)
class InstalledEntry:
    """What install_desktop_entry wrote."""

    desktop_file: Path
    icons: tuple[Path, ...]


def data_home() -> Path:
    """$XDG_DATA_HOME, else ~/.local/share (the XDG base-directory default)."""
    value = os.environ.get("XDG_DATA_HOME", "")
    return Path(value) if os.path.isabs(value) else Path.home() / ".local" / "share"


def launch_command() -> list[str]:
    """The command that starts this copy of PhotoSeek."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "desktop"]


def _exec_quote(arg: str) -> str:
    """One argument of an Exec line, quoted as the Desktop Entry spec asks when it holds reserved characters."""
    if arg and not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`%"):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
    return '"' + escaped.replace("%", "%%") + '"'


def entry_text(command: list[str]) -> str:
    """The .desktop file for `command` (dropped folders and photos are passed on as arguments: %F)."""
    exec_line = " ".join(_exec_quote(arg).replace("\\", "\\\\") for arg in command)
    return "\n".join(
        [
            "[Desktop Entry]",
            "Type=Application",
            f"Name={APP_NAME}",
            "GenericName=Photo Search",
            "Comment=Find your photos by describing them, on your own computer",
            f"Exec={exec_line} %F",
            f"Icon={ENTRY_NAME}",
            "Terminal=false",
            "Categories=Graphics;Photography;Viewer;",
            "Keywords=photo;search;tag;image;",
            f"StartupWMClass={APP_NAME}",
            "",
        ]
    )


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def install_desktop_entry(base: Path | None = None) -> InstalledEntry:
    """Write the entry and its icons under `base` (default: data_home()); returns what was written."""
    base = base or data_home()
    icons = []
    for size, name in ICONS.items():
        source = assets_dir() / "icons" / name
        if source.is_file():
            target = base / "icons" / "hicolor" / size / "apps" / f"{ENTRY_NAME}{source.suffix}"
            _write_atomically(target, source.read_bytes())
            icons.append(target)
    desktop_file = base / "applications" / f"{ENTRY_NAME}.desktop"
    _write_atomically(desktop_file, entry_text(launch_command()).encode("utf-8"))
    _refresh_menus(base)
    return InstalledEntry(desktop_file, tuple(icons))


def remove_desktop_entry(base: Path | None = None) -> list[Path]:
    """Remove what install_desktop_entry wrote; returns the files removed."""
    base = base or data_home()
    candidates = [base / "applications" / f"{ENTRY_NAME}.desktop"]
    candidates += [
        base / "icons" / "hicolor" / size / "apps" / f"{ENTRY_NAME}{Path(n).suffix}" for size, n in ICONS.items()
    ]
    removed = [path for path in candidates if path.is_file()]
    for path in removed:
        path.unlink()
    _refresh_menus(base)
    return removed


def _refresh_menus(base: Path) -> None:
    """Tell the desktop's menu cache, where its tool is installed (menus pick the change up later anyway)."""
    tool = shutil.which("update-desktop-database")
    if tool is not None:
        import subprocess

        subprocess.run([tool, str(base / "applications")], check=False, capture_output=True)
