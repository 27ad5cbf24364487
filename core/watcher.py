"""Keep library folders current: watch them with watchdog and report photo changes in debounced batches.

File-system events only say which paths to look at. When a batch is due, the watcher checks each of
those paths on disk and reports what is there now, so any order of create/modify/rename/delete inside
one batch (a camera import, an editor saving through a temp file and a rename, a file replaced in
place) comes out as its end result:

* changed: photo files that exist now and were created, written, touched or moved into place;
* deleted: photo files that were there and are gone (deleted, or renamed/moved away).

A folder that disappears (deleted, or moved out of the watched roots, e.g. to the trash) produces no
per-file events on most platforms. With a `known_under(folder)` lookup (the photos the index holds
under a folder) the watcher reports those photos as deleted; without one it reports the folder's own
path in `deleted`, and the caller must forget every photo under it. A folder that appears (created, or
moved in from elsewhere) is scanned and its photos are reported as changed.

Only photo files count, as core.scanning decides (by extension, or by content for a file without
one); hidden files and anything inside hidden folders (below a root) are ignored, as the scanner does.
A deleted file without an extension cannot be checked any more, so it is reported as deleted even if
it never was a photo; forgetting a path the index does not hold does nothing. Paths are resolved like the scanner's, so
str(path) matches the paths stored in the index.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from core.errors import LibraryError
from core.scanning import PHOTO_EXTENSIONS, scan

logger = logging.getLogger(__name__)

ChangeCallback = Callable[[set[Path], set[Path]], None]
KnownUnder = Callable[[Path], Iterable[Path | str]]

# Opens and read-only closes are left out: the indexer reading photos would otherwise wake the watcher.
_EVENTS = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileAttribEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FolderWatcher) -> None:
        self.watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        self.watcher._on_event(event)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class FolderWatcher:
    """Watch library roots (folders, or single photo files) and report photo changes in batches.

    `on_change(changed_or_new, deleted)` runs on the watcher's own thread, once per burst of events:
    a batch is delivered after `debounce_s` without new events, or at the latest `max_delay_s` after
    its first event while events keep coming. It must be thread-safe (a GUI should hand the sets to
    its main thread, e.g. through a Qt signal). `known_under(folder)` runs on the same thread.
    Exceptions from either go to `on_error` if given, else to this module's logger; watching goes on.
    stop() delivers any pending batch before returning.
    """

    def __init__(
        self,
        roots: Sequence[Path],
        on_change: ChangeCallback,
        debounce_s: float = 1.0,
        *,
        max_delay_s: float | None = None,
        known_under: KnownUnder | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        if debounce_s < 0:
            raise ValueError("debounce_s must be >= 0")
        self.on_change = on_change
        self.debounce_s = float(debounce_s)
        self.max_delay_s = max(self.debounce_s, max_delay_s if max_delay_s is not None else 10 * self.debounce_s)
        self.known_under = known_under
        self.on_error = on_error
        self._dirs, self._files = self._split_roots(roots)
        self._cond = threading.Condition()
        self._paths: set[str] = set()
        self._dirty_dirs: set[str] = set()
        self._first = self._last = 0.0
        self._stopping = False
        self._observer: BaseObserver | None = None
        self._flusher: threading.Thread | None = None

    @staticmethod
    def _split_roots(roots: Sequence[Path]) -> tuple[list[str], list[str]]:
        """Resolved folder roots (nested ones dropped: the outer watch covers them) and file roots."""
        dirs: list[str] = []
        files: list[str] = []
        for root in roots:
            path = Path(root).expanduser()
            if not path.exists():
                raise LibraryError(f"{path}: no such file or folder")
            (files if path.is_file() else dirs).append(str(path.resolve()))
        dirs = sorted(set(dirs))
        dirs = [d for d in dirs if not any(d != o and _under(d, o) for o in dirs)]
        files = sorted({f for f in files if not any(_under(f, d) for d in dirs)})
        return dirs, files

    @property
    def roots(self) -> list[Path]:
        """The roots actually watched, resolved (nested duplicates removed)."""
        return [Path(p) for p in self._dirs + self._files]

    @property
    def pending(self) -> bool:
        """Whether changes were seen that are not yet handed to on_change (e.g. for a "syncing" indicator)."""
        with self._cond:
            return bool(self._paths or self._dirty_dirs)

    # --- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching. Raises LibraryError when a root cannot be watched (e.g. the OS watch limit)."""
        if self._observer is not None:
            raise RuntimeError("FolderWatcher.start() called twice")
        self._stopping = False
        observer = Observer()
        handler = _Handler(self)
        observer.start()
        try:
            for folder in self._dirs:
                self._schedule(observer, handler, folder, folder, recursive=True)
            for parent in sorted({os.path.dirname(f) for f in self._files}):
                self._schedule(observer, handler, parent, parent, recursive=False)
        except BaseException:
            observer.stop()
            observer.join()
            raise
        self._observer = observer
        self._flusher = threading.Thread(target=self._run, name="photoseek-watcher", daemon=True)
        self._flusher.start()

    @staticmethod
    def _schedule(observer: BaseObserver, handler: _Handler, path: str, root: str, *, recursive: bool) -> None:
        try:
            observer.schedule(handler, path, recursive=recursive, event_filter=_EVENTS)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise LibraryError(
                    f"cannot watch {root}: the system's limit on watched folders is reached "
                    "(on Linux, raise fs.inotify.max_user_watches)"
                ) from exc
            raise LibraryError(f"cannot watch {root}: {exc}") from exc

    def stop(self) -> None:
        """Stop watching; a pending batch is delivered (on the watcher's thread) before this returns."""
        observer, flusher = self._observer, self._flusher
        self._observer = self._flusher = None
        if observer is not None:
            observer.stop()
            observer.join()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if flusher is not None and flusher is not threading.current_thread():
            flusher.join()

    def __enter__(self) -> FolderWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- events (observer thread) ----------------------------------------------------------------

    def _accept(self, path: str, *, is_dir: bool) -> bool:
        """Whether a path belongs to a root, is not hidden below it and (for a file) is a photo."""
        if not path:
            return False
        extension = os.path.splitext(path)[1].lower()
        if not is_dir and extension and extension not in PHOTO_EXTENSIONS:
            return False  # extensionless files may still be photos: the scanner decides by content
        if path in self._files:
            return not is_dir
        for root in self._dirs:
            if _under(path, root):
                relative = path[len(root) :].split(os.sep)
                return not any(part.startswith(".") for part in relative if part)
        return False

    def _on_event(self, event: FileSystemEvent) -> None:
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(getattr(event, "dest_path", "") or "")
        kind = event.event_type
        if event.is_directory:
            if kind not in ("created", "deleted", "moved"):
                return  # a folder's own mtime changes with every entry; its files report themselves
            paths, target = [src, dest], self._dirty_dirs
        else:
            paths, target = [src, dest], self._paths
        accepted = [p for p in paths if self._accept(p, is_dir=event.is_directory)]
        if not accepted:
            return
        with self._cond:
            now = time.monotonic()
            if not self._paths and not self._dirty_dirs:
                self._first = now
            self._last = now
            target.update(accepted)
            self._cond.notify_all()

    # --- batches (watcher thread) ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not (self._paths or self._dirty_dirs):
                    self._cond.wait()
                while not self._stopping:
                    due = min(self._last + self.debounce_s, self._first + self.max_delay_s)
                    wait = due - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                paths, dirs = self._paths, self._dirty_dirs
                self._paths, self._dirty_dirs = set(), set()
                stopping = self._stopping
            if paths or dirs:
                try:
                    changed, deleted = self._resolve(paths, dirs)
                    if changed or deleted:
                        self.on_change(changed, deleted)
                except Exception as exc:  # a failing callback must not end the watching
                    self._report(exc)
            if stopping:
                return

    def _report(self, exc: Exception) -> None:
        if self.on_error is not None:
            try:
                self.on_error(exc)
                return
            except Exception:
                pass
        logger.exception("photo folder watcher: a change could not be handled", exc_info=exc)

    def _resolve(self, paths: set[str], dirs: set[str]) -> tuple[set[Path], set[Path]]:
        """Turn the touched paths into (changed, deleted) by looking at what is on disk now."""
        changed: set[Path] = set()
        deleted: set[Path] = set()
        for path in paths:
            if not os.path.isfile(path):
                deleted.add(Path(path))
                continue
            try:  # the scanner has the last word on what is a photo (e.g. an extensionless JPEG)
                if any(True for _ in scan([Path(path)])):
                    changed.add(Path(path))
            except LibraryError:
                deleted.add(Path(path))  # gone since the check above
        for folder in sorted(dirs):
            if os.path.isdir(folder):
                try:
                    changed.update(Path(photo.path) for photo in scan([Path(folder)]))
                except LibraryError:
                    pass  # gone again since the check; its deletion event is on its way
            elif self.known_under is None:
                deleted.add(Path(folder))
            if self.known_under is not None:
                # Known photos under the folder that are no longer there (all of them if it is gone).
                deleted.update(Path(p) for p in self.known_under(Path(folder)) if not os.path.isfile(p))
        deleted -= changed
        return changed, deleted
