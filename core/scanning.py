"""Find photo files under the folders (or files) a user adds to the library."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import LibraryError

PHOTO_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".gif", ".bmp"})


@dataclass(frozen=True)
class PhotoFile:
    """A candidate photo on disk with the (size, mtime) that tells whether it changed."""

    path: str
    size: int
    mtime_ns: int


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _photo_file(path: str) -> PhotoFile | None:
    if os.path.splitext(path)[1].lower() not in PHOTO_EXTENSIONS:
        return None
    try:
        stat = os.stat(path)  # follows a file symlink; a broken one raises and is skipped
    except OSError:
        return None
    if not os.path.isfile(path):
        return None  # e.g. a directory named "x.jpg"
    return PhotoFile(path, stat.st_size, stat.st_mtime_ns)


def scan(roots: Iterable[Path]) -> Iterator[PhotoFile]:
    """Yield photo files under each root (recursively, skipping hidden entries), each path once.

    Directory symlinks are not followed, so symlink loops cannot trap the walk.
    Raises LibraryError for a root that does not exist.
    """
    seen: set[str] = set()
    for root in roots:
        root = Path(root).expanduser()
        if not root.exists():
            raise LibraryError(f"{root}: no such file or folder")
        root_str = str(root.resolve())
        if root.is_file():
            candidates: Iterable[str] = [root_str]
        else:
            candidates = _walk(root_str)
        for path in candidates:
            if path in seen:
                continue
            seen.add(path)
            photo = _photo_file(path)
            if photo is not None:
                yield photo


def _walk(root: str) -> Iterator[str]:
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not _is_hidden(d))
        for name in sorted(files):
            if not _is_hidden(name):
                yield os.path.join(folder, name)
