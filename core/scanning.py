"""Find photo files under the folders (or files) a user adds to the library."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import LibraryError
from core.raw import RAW_EXTENSIONS

PHOTO_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".gif", ".bmp", ".heic", ".heif"} | RAW_EXTENSIONS
)


@dataclass(frozen=True)
class PhotoFile:
    """A candidate photo on disk with the (size, mtime) that tells whether it changed."""

    path: str
    size: int
    mtime_ns: int


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


# Leading bytes of image formats, for files without an extension (e.g. exported from phones or scanners).
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*", b"BM")


def _looks_like_image(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    if head.startswith(_MAGIC):
        return True
    return (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1")


def _photo_file(path: str) -> PhotoFile | None:
    extension = os.path.splitext(path)[1].lower()
    if extension not in PHOTO_EXTENSIONS and (extension or not _looks_like_image(path)):
        return None
    try:
        stat = os.stat(path)  # follows a file symlink
    except OSError:
        # A broken link or a link loop: still a candidate, so the indexer records why it was skipped.
        return PhotoFile(path, 0, 0) if os.path.islink(path) else None
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


def content_hash(path: str, size: int, sample: int = 65536) -> str:
    """A fingerprint of a file's content: its size and its first and last 64 KiB.

    Enough to recognise a moved or renamed photo without reading whole files (photos that differ only in the
    middle of the file and not in size are vanishingly rare); raises OSError if the file cannot be read.
    """
    digest = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, "rb") as handle:
        digest.update(handle.read(sample))
        if size > 2 * sample:
            handle.seek(size - sample)
            digest.update(handle.read(sample))
    return digest.hexdigest()
