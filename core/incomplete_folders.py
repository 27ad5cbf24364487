"""Library folders whose indexing did not finish: stopped by the user, cut short by quitting, or by a process that
died (a kill, a crash, a power cut). They stay marked, with how many photos are left, until a run finishes them.

The marks live in the library's `incomplete.json`, beside settings.json, written atomically (a temporary file
replaced in one step), so the index's schema is untouched. A run marks its folders "running" under this process's
owner token before it starts and clears them when it ends complete; a run that stops leaves them "stopped". A
"running" mark of another owner is a run whose process died. One app runs per library (the desktop's single
instance), so no other live process owns marks there.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MARKS_FILE = "incomplete.json"
FORMAT = 1
OWNER = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"  # this process; a pid alone may be reused after a crash
_lock = threading.Lock()  # one read-modify-write at a time within the process


@dataclass(frozen=True)
class IncompleteFolder:
    """A library folder a run did not finish."""

    path: str
    left: int | None  # photos under it not indexed yet; None until counted
    running: bool  # a run of this process is working on it now


class IncompleteFolders:
    """The incomplete-folder marks of one library."""

    def __init__(self, library: Path) -> None:
        self.library = Path(library)
        self.path = self.library / MARKS_FILE

    def begin(self, folders: Iterable[str]) -> None:
        """A run of this process starts on `folders` (a count left by an earlier run is kept until it ends)."""
        with _lock:
            marks = self._read()
            for folder in folders:
                marks[folder] = {"state": "running", "owner": OWNER, "left": marks.get(folder, {}).get("left")}
            self._write(marks)

    def stop(self, folders: Iterable[str]) -> None:
        """The run on `folders` ended before finishing them; how much is left gets counted later (count_missing)."""
        with _lock:
            marks = self._read()
            for folder in folders:
                marks[folder] = {"state": "stopped", "left": None, "since": time.time()}
            self._write(marks)

    def finish(self, folders: Iterable[str]) -> None:
        """`folders` are complete (or left the library): their marks go."""
        with _lock:
            marks = self._read()
            if any(marks.pop(folder, None) is not None for folder in list(folders)):
                self._write(marks)

    def read(self) -> list[IncompleteFolder]:
        """Every incomplete folder. A folder a run of this process is indexing for the first time is not listed:
        it is simply being indexed."""
        folders = []
        for path, mark in sorted(self._read().items()):
            running = mark.get("state") == "running" and mark.get("owner") == OWNER
            left = mark.get("left")
            if running and left is None:
                continue
            folders.append(IncompleteFolder(path, left if isinstance(left, int) else None, running))
        return folders

    def count_missing(self, model_id: str) -> list[IncompleteFolder]:
        """Count the photos left under each incomplete folder not counted yet (for `model_id`, the active model),
        among them the folders of a run whose process died; returns read()."""
        uncounted = [f.path for f in self.read() if f.left is None and not f.running and os.path.isdir(f.path)]
        if uncounted:
            left = count_left(self.library, model_id, uncounted)
            with _lock:
                marks = self._read()
                for folder, count in left.items():
                    mark = marks.get(folder)
                    if mark is not None and mark.get("left") is None and mark.get("owner") != OWNER:
                        marks[folder] = {"state": "stopped", "left": count, "since": mark.get("since", time.time())}
                self._write(marks)
        return self.read()

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # none yet, or unreadable: nothing is marked (a rescan still finds what is missing)
        folders = data.get("folders") if isinstance(data, dict) else None
        return {k: v for k, v in folders.items() if isinstance(v, dict)} if isinstance(folders, dict) else {}

    def _write(self, marks: dict[str, dict]) -> None:
        if not marks:  # nothing left unfinished: no file
            self.path.unlink(missing_ok=True)
            return
        self.library.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{MARKS_FILE}.tmp{os.getpid()}")
        # ensure_ascii keeps the raw bytes of a folder name that is not UTF-8 (surrogate escapes) round-tripping
        tmp.write_text(json.dumps({"format": FORMAT, "folders": marks}, indent=1) + "\n", encoding="ascii")
        os.replace(tmp, self.path)


def count_left(library: Path, model_id: str, folders: Iterable[str]) -> dict[str, int]:
    """How many photos under each folder a run would still index for `model_id` (new, changed, not embedded)."""
    # imported here: reading marks needs neither numpy nor onnxruntime
    from core.errors import ModelPackageError
    from core.index_db import PhotoIndex
    from core.indexer import photos_to_index
    from core.model_store import ModelStore
    from core.scanning import scan

    try:
        card = ModelStore(Path(library)).find(model_id).card
    except ModelPackageError:
        card = None  # not installed: a store kept under its id (schema 3) is all it can have
    with PhotoIndex(Path(library)) as index:
        key = model_id if card is None else index.vectors.key_for(card)
        return {
            folder: len(photos_to_index(list(scan([Path(folder)])), index, key, None, [Path(folder).resolve()]))
            for folder in folders
        }
