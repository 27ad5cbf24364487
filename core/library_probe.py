"""Look at a library without changing it: its folders and indexed photos (``index_db.read_listing``, a read-only
connection), and whether this installation finds and reads the same files (the packaged app's self-test uses it on
the user's real library). Nothing is written: no migration, no WAL switch, no settings, no thumbnails.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import PhotoSeekError
from core.index_db import read_listing
from core.scanning import scan

DECODE_SAMPLES = 8  # photos decoded as a check: one per file type, at most this many


@dataclass(frozen=True)
class LibraryProbe:
    """What a read-only look at a library found."""

    folders: list[str]
    indexed: int  # photos in the index
    present: int  # of those, files still on disk
    found: int  # of those present, found again by this installation's scan
    not_found: list[str] = field(default_factory=list)  # present on disk, indexed, but missed by the scan
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # sample photos this installation cannot decode


def probe_library(library: Path) -> LibraryProbe | None:
    """Scan the library's folders and decode a few of its photos with this installation; None without an index."""
    from core.preprocess import load_image  # decoding (Pillow and its plugins) only when there is a library

    listing = read_listing(library)
    if listing is None:
        return None
    folders, photos = listing
    present = [path for path in photos if os.path.isfile(path)]
    roots = [folder for folder in folders if os.path.isdir(folder)]
    scanned = {photo.path for photo in scan(Path(root) for root in roots)}
    # Photos added one by one (not under a library folder) are not rescanned, so only folders' photos can be missed.
    prefixes = tuple(root.rstrip(os.sep) + os.sep for root in roots)
    not_found = [path for path in present if path.startswith(prefixes) and path not in scanned]
    unreadable = []
    for path in _one_per_type(present):
        try:
            with load_image(Path(path), min_side=64):
                pass
        except (PhotoSeekError, OSError) as exc:
            unreadable.append((path, str(exc)))
    return LibraryProbe(folders, len(photos), len(present), len(present) - len(not_found), not_found, unreadable)


def _one_per_type(paths: list[str]) -> list[str]:
    by_type: dict[str, str] = {}
    for path in sorted(paths):
        by_type.setdefault(os.path.splitext(path)[1].lower(), path)
    return list(by_type.values())[:DECODE_SAMPLES]
