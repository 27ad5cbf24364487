"""AppController: the one object that knows both Qt and the library. It holds no widgets.

It runs every piece of library work as a background job (opening the library, indexing, re-embedding with
another model, searching, building the starter model) and tells the window what happened through signals.
Index-type jobs run one at a time from a queue; searches run beside them and stale answers are dropped.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from desktop.thumbnail_loader import ThumbnailLoader
from desktop.workers import Job, JobContext, JobRunner

if TYPE_CHECKING:
    from desktop.library_service import LibraryService, LibrarySnapshot

LIVE_APPEND_SECONDS = 1.5  # while browsing, show freshly indexed photos at most this often


@dataclass(frozen=True)
class PhotoList:
    """Rows for the grid: the query they answer ("" = the whole library) and scores for search results."""

    query: str
    paths: list[str]
    scores: list[float] | None


@dataclass(frozen=True)
class IndexProgress:
    """One progress beat of an index-type job."""

    kind: str  # "index", "reembed" or "starter"
    done: int
    total: int  # -1 while the size is not known yet (scanning, building)
    rate: float  # photos per second, 0 when unknown
    eta_seconds: float | None


@dataclass(frozen=True)
class IndexOutcome:
    """How an index-type job ended: its core report (None on error) or the error message."""

    kind: str
    report: Any
    model_id: str | None
    error: str | None = None

    @property
    def cancelled(self) -> bool:
        return bool(self.report is not None and self.report.cancelled)


class AppController(QObject):
    """Starts and cancels the library's background work for the main window."""

    ready = Signal(object)  # LibrarySnapshot, after opening and after every change
    photos = Signal(object)  # PhotoList
    photos_added = Signal(list)  # paths indexed while the user browses the whole library
    index_started = Signal(str, str)  # kind, description for the user
    index_progress = Signal(object)  # IndexProgress
    index_finished = Signal(object)  # IndexOutcome
    error = Signal(str)

    def __init__(
        self,
        library: Path,
        *,
        search_top: int = 500,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.library = Path(library)
        self.search_top = search_top
        self.service: LibraryService | None = None
        self.snapshot: LibrarySnapshot | None = None
        self.runner = JobRunner(max_threads=3, parent=self)
        self.loader = ThumbnailLoader(parent=self)
        self._queue: deque[tuple[str, Any]] = deque()
        self._index_job: Job | None = None
        self._query = ""
        self._search_seq = 0
        self._started_at = 0.0
        self._last_id = 0
        self._appending = False
        self._last_append = 0.0

    # --- opening and refreshing ------------------------------------------------------------------

    def open(self) -> None:
        """Open the library in the background (importing core there keeps the first window fast)."""

        def work(_: JobContext) -> tuple[LibraryService, LibrarySnapshot]:
            from desktop.library_service import LibraryService

            service = LibraryService(self.library)
            return service, service.snapshot()

        self.runner.start("open library", work, on_success=self._opened, on_error=self.error.emit)

    def _opened(self, result: tuple[LibraryService, LibrarySnapshot]) -> None:
        self.service, snapshot = result
        gc.freeze()  # core and onnxruntime are imported now: keep their objects out of full collections
        self.loader.set_source(lambda path: self.service.thumbnail(path))
        self._set_snapshot(snapshot)
        self.search(self._query)
        self._next_task()

    def _set_snapshot(self, snapshot: LibrarySnapshot) -> None:
        self.snapshot = snapshot
        self.ready.emit(snapshot)

    def refresh(self) -> None:
        """Re-read counts and models (after indexing, a model switch, an install)."""
        if self.service is not None:
            self.runner.start("refresh", lambda _: self.service.snapshot(), on_success=self._set_snapshot)

    @property
    def is_open(self) -> bool:
        return self.service is not None

    @property
    def indexing(self) -> bool:
        return self._index_job is not None

    # --- searching -------------------------------------------------------------------------------

    @property
    def query(self) -> str:
        return self._query

    def search(self, query: str) -> None:
        """Show the photos that match `query`, or the whole library for an empty query."""
        self._query = query.strip()
        self._search_seq += 1
        if self.service is None:
            return  # runs once the library is open
        seq, text, service = self._search_seq, self._query, self.service

        top = self.search_top

        def work(_: JobContext) -> tuple[int, PhotoList, int]:
            if not text:
                paths, last_id = service.photo_paths()
                return seq, PhotoList("", paths, None), last_id
            if service.active_model_id() is None:
                return seq, PhotoList(text, [], []), 0
            hits = service.search(text, top=top)
            return seq, PhotoList(text, [h.path for h in hits], [h.score for h in hits]), 0

        self.runner.start(f"search {text!r}", work, on_success=self._searched, on_error=self.error.emit)

    def _searched(self, result: tuple[int, PhotoList, int]) -> None:
        seq, photos, last_id = result
        self._last_id = max(self._last_id, last_id)
        if seq == self._search_seq:  # an older query answered late: drop it
            self.photos.emit(photos)

    # --- index-type jobs -------------------------------------------------------------------------

    def add_paths(self, paths: list[Path]) -> None:
        """Index folders or files (queued behind any running job)."""
        paths = [Path(p) for p in paths]
        if not paths:
            return
        if self.snapshot is not None and self.snapshot.active_model is None:
            self.error.emit(self._no_model_message())
            return
        self._queue.append(("index", paths))
        self._next_task()

    def rescan(self) -> None:
        """Re-index every folder of the library: new, changed and deleted photos."""
        self._queue.append(("rescan", None))
        self._next_task()

    def switch_model(self, model_id: str) -> None:
        """Embed the library with another model in the background, then make it active."""
        if self.snapshot is not None and model_id == self.snapshot.active_model and not self.indexing:
            return
        self._queue.append(("reembed", model_id))
        self._next_task()

    def build_starter(self) -> None:
        """Build the starter model with the trainer (only offered when the trainer is installed)."""
        self._queue.append(("starter", None))
        self._next_task()

    def cancel_indexing(self) -> None:
        """Stop the running index-type job after its current batch and drop the queued ones."""
        self._queue.clear()
        if self._index_job is not None:
            self._index_job.cancel()

    def _no_model_message(self) -> str:
        hint = self.snapshot.no_model_hint if self.snapshot else ""
        if self.snapshot is not None and self.snapshot.trainer_available:
            return "No model is installed yet. Build the starter model first (it takes a few minutes)."
        return f"No model is installed. Build the starter model with:  {hint}"

    def _next_task(self) -> None:
        if self._index_job is not None or self.service is None or not self._queue:
            return
        kind, arg = self._queue.popleft()
        if kind == "index":  # merge every queued drop into one run
            while self._queue and self._queue[0][0] == "index":
                arg = arg + self._queue.popleft()[1]
        service = self.service
        model_id = arg if kind == "reembed" else (self.snapshot.active_model if self.snapshot else None)
        self._started_at = time.perf_counter()

        def work(context: JobContext) -> Any:
            def progress(done: int, total: int) -> None:
                context.report((done, total))

            if kind == "index":
                return service.index(arg, progress=progress, cancel=context.cancel)
            if kind == "rescan":
                return service.index(None, progress=progress, cancel=context.cancel)
            if kind == "reembed":
                return service.reembed(arg, progress=progress, cancel=context.cancel)
            service.build_starter()
            return None

        descriptions = {
            "index": "Indexing " + ", ".join(Path(p).name or str(p) for p in arg[:3]) + ("…" if len(arg) > 3 else ""),
            "rescan": "Rescanning the library",
            "reembed": f"Switching to model {arg}: embedding photos",
            "starter": "Building the starter model (a few minutes)",
        }
        self._index_job = self.runner.start(
            kind,
            work,
            on_progress=lambda value: self._progress(kind, value),
            on_success=lambda report: self._index_done(IndexOutcome(kind, report, model_id)),
            on_error=lambda message: self._index_done(IndexOutcome(kind, None, model_id, message)),
        )
        self.index_started.emit(kind, descriptions[kind])
        self.index_progress.emit(IndexProgress(kind, 0, -1, 0.0, None))

    def _progress(self, kind: str, value: tuple[int, int]) -> None:
        done, total = value
        if done == 0:
            self._started_at = time.perf_counter()  # scanning is over: rate counts embedding only
        elapsed = time.perf_counter() - self._started_at
        rate = done / elapsed if done and elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else None
        self.index_progress.emit(IndexProgress(kind, done, total, rate, eta))
        if kind == "index" and not self._query:
            self._append_new_photos()

    def _append_new_photos(self) -> None:
        now = time.perf_counter()
        if self._appending or now - self._last_append < LIVE_APPEND_SECONDS or self.service is None:
            return
        self._appending, self._last_append = True, now
        service, after = self.service, self._last_id

        def done(result: tuple[list[str], int]) -> None:
            self._appending = False
            paths, self._last_id = result[0], max(self._last_id, result[1])
            if paths and not self._query:
                self.photos_added.emit(paths)

        self.runner.start(
            "new photos", lambda _: service.photo_paths(after), on_success=done, on_error=lambda _: done(([], 0))
        )

    def _index_done(self, outcome: IndexOutcome) -> None:
        self._index_job = None
        if outcome.error:
            self.error.emit(outcome.error)
        self.index_finished.emit(outcome)
        self.refresh()
        self.search(self._query)  # new photos, or another active model: answer the query again
        self._next_task()

    # --- photos ----------------------------------------------------------------------------------

    def run(self, name: str, fn: Any, on_success: Any, on_error: Any | None = None) -> Job:
        """Run a small library call in the background (photo details, previews, error lists)."""
        service = self.service
        if service is None:
            raise RuntimeError("the library is not open yet")
        return self.runner.start(
            name, lambda _: fn(service), on_success=on_success, on_error=on_error or self.error.emit
        )

    def shutdown(self, timeout_ms: int = 15_000) -> bool:
        """Cancel everything and wait for the workers (called when the window closes)."""
        self._queue.clear()
        self.loader.wait_idle(timeout_ms)
        return self.runner.shutdown(timeout_ms)
