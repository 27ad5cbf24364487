"""Thumbnails for the grid, loaded off the GUI thread, kept in a small in-memory LRU.

Requests are served newest first (what the user scrolled to last) and the queue is bounded: when the user
flings through 100k photos, requests for rows long gone are simply dropped; rows that come back into
view ask again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QPixmap

from desktop.workers import lower_thread_priority

Key = tuple[str, int]  # (photo path, pixel size of the box the thumbnail must fit)
ThumbnailSource = Callable[[str], Path]  # photo path -> thumbnail file (core's thumbnail cache)


class ThumbnailLoader(QObject):
    """Loads thumbnails with a few pool threads; `ready(path)` / `failed(path)` fire on the GUI thread."""

    # Paths travel as Python objects: a str signal would go through QString, which silently drops the lone
    # surrogates that stand for the bytes of a file name that is not UTF-8.
    ready = Signal(object)
    failed = Signal(object)
    _loaded = Signal(object, int, QImage)  # from the pool threads to the GUI thread
    _broken = Signal(object, int)

    def __init__(
        self,
        source: ThumbnailSource | None = None,
        *,
        threads: int = 2,
        cache_items: int = 600,
        max_pending: int = 256,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.source = source
        self.cache_items = cache_items
        self.max_pending = max_pending
        self.requests = 0  # how many loads were asked for (tests check the grid is lazy)
        self._pixmaps: OrderedDict[Key, QPixmap] = OrderedDict()
        self._failed: set[str] = set()
        self._lock = threading.Lock()
        self._pending: deque[Key] = deque()
        self._queued: set[Key] = set()  # pending or being loaded
        self._workers = 0
        self._max_workers = threads
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._loaded.connect(self._store)
        self._broken.connect(self._mark_failed)

    def set_source(self, source: ThumbnailSource) -> None:
        """Where thumbnails come from (set once the library is open)."""
        self.source = source

    def pixmap(self, path: str, size: int, device_ratio: float = 1.0) -> QPixmap | None:
        """The cached thumbnail, or None after asking for it to be loaded."""
        key = (path, round(size * device_ratio))
        found = self._pixmaps.get(key)
        if found is not None:
            self._pixmaps.move_to_end(key)
            return found
        if path not in self._failed:
            self._request(key)
        return None

    def has_failed(self, path: str) -> bool:
        """Whether this photo could not be turned into a thumbnail."""
        return path in self._failed

    def clear(self) -> None:
        """Drop every cached pixmap, queued request and failure (e.g. when the library changes)."""
        with self._lock:
            self._pending.clear()
            self._queued.clear()
        self._pixmaps.clear()
        self._failed.clear()

    def wait_idle(self, timeout_ms: int = 5000) -> bool:
        """Wait for the pool threads to finish (tests and shutdown)."""
        with self._lock:
            # Dropped requests leave the queued set too, or asking for them again would wait for a load never made.
            self._queued.difference_update(self._pending)
            self._pending.clear()
        return self._pool.waitForDone(timeout_ms)

    # --- internals -------------------------------------------------------------------------------

    def _request(self, key: Key) -> None:
        if self.source is None:
            return
        with self._lock:
            if key in self._queued:
                try:  # asked again: it is on screen now, so serve it next
                    self._pending.remove(key)
                    self._pending.append(key)
                except ValueError:
                    pass  # already being loaded
                return
            self.requests += 1
            self._queued.add(key)
            self._pending.append(key)
            while len(self._pending) > self.max_pending:
                self._queued.discard(self._pending.popleft())
            start = self._workers < self._max_workers
            if start:
                self._workers += 1
        if start:
            self._pool.start(self._drain)

    def _drain(self) -> None:  # pool thread: load until the queue is empty
        lower_thread_priority()
        while True:
            with self._lock:
                if not self._pending:
                    self._workers -= 1
                    return
                key = self._pending.pop()  # newest first
                source = self.source
            path, size = key
            try:
                image = QImage(str(source(path)))
                if image.isNull():
                    raise ValueError("the thumbnail file cannot be read")
                if max(image.width(), image.height()) > size:
                    image = image.scaled(QSize(size, size), Qt.KeepAspectRatio, Qt.SmoothTransformation)
            except Exception:  # an unreadable photo gets the broken mark, never a crash
                self._broken.emit(path, size)
            else:
                self._loaded.emit(path, size, image)

    def _store(self, path: str, size: int, image: QImage) -> None:
        with self._lock:
            self._queued.discard((path, size))
        self._pixmaps[(path, size)] = QPixmap.fromImage(image)
        while len(self._pixmaps) > self.cache_items:
            self._pixmaps.popitem(last=False)
        self.ready.emit(path)

    def _mark_failed(self, path: str, size: int) -> None:
        with self._lock:
            self._queued.discard((path, size))
        self._failed.add(path)
        self.failed.emit(path)
