"""Where PhotoSeek keeps things: the library folder, bundled assets, user-wide model packages."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import platformdirs

APP_NAME = "PhotoSeek"
LIBRARY_ENV = "PHOTOSEEK_HOME"


def assets_dir() -> Path:
    """The bundled `assets/` folder, in a source checkout or inside a PyInstaller bundle."""
    bundle_root = getattr(sys, "_MEIPASS", None)
    if bundle_root is not None:
        return Path(bundle_root) / "assets"
    return Path(__file__).resolve().parent.parent / "assets"


def user_data_dir() -> Path:
    """The per-user data folder of the platform (e.g. ~/.local/share/PhotoSeek)."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def library_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The library folder: an explicit `--library`, else $PHOTOSEEK_HOME, else the user data folder."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    from_env = os.environ.get(LIBRARY_ENV)
    if from_env:
        return Path(from_env).expanduser().resolve()
    return user_data_dir()
