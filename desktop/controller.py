"""AppController: the one object that knows both Qt and the library. It holds no widgets.

It runs every piece of library work as a background job (opening the library, indexing, re-embedding with
another model, removing a folder, searching, tag edits, watching the folders) and tells the window what
happened through signals. Index-type jobs run one at a time from a queue; searches run beside them and
stale answers are dropped.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from desktop.index_jobs import IndexOutcome, IndexProgress, describe_job, incomplete_folders, run_job
from desktop.no_model import cannot_build_text
from desktop.query_state import SORTS, PhotoList, QueryState
from desktop.thumbnail_loader import ThumbnailLoader
from desktop.workers import Job, JobContext, JobRunner

if TYPE_CHECKING:
    from core.incomplete_folders import IncompleteFolder
    from desktop.library_service import LibraryService, LibrarySnapshot

    LibraryState = tuple[LibrarySnapshot, list[IncompleteFolder]]  # what opening and each refresh read

LIVE_APPEND_SECONDS = 1.5  # while browsing, show freshly indexed photos at most this often
WEAKER_PAGE = 48  # photos below the search cutoff that each "Show weaker matches" adds (a few rows of the grid)
FOLDER_JOBS = ("index", "rescan", "remove")  # jobs after which the set of watched folders may differ
__all__ = ["AppController", "IndexOutcome", "IndexProgress", "PhotoList"]


class AppController(QObject):
    """Starts and cancels the library's background work for the main window."""

    ready = Signal(object)  # LibrarySnapshot, after opening and after every change
    photos = Signal(object)  # PhotoList
    photos_added = Signal(list)  # paths indexed while the user browses the whole library
    index_started = Signal(str, str)  # kind, description for the user
    index_progress = Signal(object)  # IndexProgress
    index_finished = Signal(object)  # IndexOutcome
    # Photo paths travel as objects: a str signal would mangle the raw bytes of names that are not UTF-8.
    photo_tags = Signal(object, list)  # a photo's path and its tags (core PhotoTag), after loading or an edit
    photo_tags_failed = Signal(object, str)  # a photo's path and why its tags could not be read or changed
    library_changed = Signal(object)  # IndexReport of photos the folder watcher indexed or forgot
    watching = Signal(list)  # the folders watched now
    error = Signal(str)
    _watch_report = Signal(object)  # from the watcher's thread to the GUI thread

    def __init__(
        self,
        library: Path,
        *,
        search_top: int = 500,
        weaker_page: int = WEAKER_PAGE,
        watch: bool = True,
        catch_up: bool = True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.library = Path(library)
        self.search_top = search_top  # how many similar photos "Find Similar" lists
        self.weaker_page = weaker_page
        self.watch_folders = watch
        self.catch_up_on_open = catch_up  # reconcile the folders with the disk once the library is open
        self.service: LibraryService | None = None
        self.snapshot: LibrarySnapshot | None = None
        self.incomplete: dict[str, IncompleteFolder] = {}  # folders a run did not finish, by path
        self.runner = JobRunner(max_threads=3, parent=self)
        self.loader = ThumbnailLoader(parent=self)
        self._queue: deque[tuple[str, Any]] = deque()
        self._index_job: Job | None = None
        self._state = QueryState()
        self._search_seq = 0
        self._refresh_seq = 0
        self._started_at = 0.0
        self._last_id = 0
        self._appending = False
        self._last_append = 0.0
        self._closing = False
        self._warm_models: set[str] = set()  # models that embedded a batch in this session (no load left)
        self._watch_report.connect(self._watched)

    # --- opening and refreshing ------------------------------------------------------------------

    def open(self) -> None:
        """Open the library in the background (importing core there keeps the first window fast)."""

        def work(_: JobContext) -> tuple[LibraryService, LibraryState]:
            from desktop.library_service import LibraryService

            service = LibraryService(self.library)
            return service, (service.snapshot(), incomplete_folders(service))

        self.runner.start("open library", work, on_success=self._opened, on_error=self.error.emit)

    def _opened(self, result: tuple[LibraryService, LibraryState]) -> None:
        self.service, (snapshot, incomplete) = result
        gc.freeze()  # core and onnxruntime are imported now: keep their objects out of full collections
        self.loader.set_source(lambda path: self.service.thumbnail(path))
        self._set_snapshot((snapshot, incomplete))
        self._run_query()
        if self.catch_up_on_open:
            self.catch_up(snapshot)
        self._next_task()
        self.watch()

    def _set_snapshot(self, state: LibraryState) -> None:
        self.snapshot, incomplete = state
        self.incomplete = {folder.path: folder for folder in incomplete}
        self.ready.emit(self.snapshot)

    def refresh(self) -> None:
        """Re-read counts, folders, tags and models (after indexing, a model switch, a tag edit)."""
        if self.service is None:
            return
        self._refresh_seq += 1
        seq, service = self._refresh_seq, self.service

        def done(state: LibraryState) -> None:
            if seq == self._refresh_seq:  # an older refresh finishing late must not undo a newer one
                self._set_snapshot(state)

        self.runner.start("refresh", lambda _: (service.snapshot(), incomplete_folders(service)), on_success=done)

    @property
    def is_open(self) -> bool:
        return self.service is not None

    @property
    def indexing(self) -> bool:
        return self._index_job is not None

    # --- what the grid shows ---------------------------------------------------------------------

    @property
    def query(self) -> str:
        """The typed text the grid answers."""
        return self._state.text

    @property
    def state(self) -> QueryState:
        """The whole request the grid answers: text, folder, tag, sort, similar photo."""
        return self._state

    def search(self, query: str) -> None:
        """Show the photos that match `query` within the chosen folder and tag ("" = browse them)."""
        self._change(text=query.strip(), similar_to=None)

    def set_folder(self, folder: str | None) -> None:
        """Show only photos under `folder` (None: every folder)."""
        self._change(folder=folder, similar_to=None)

    def set_tag(self, tag: str | None) -> None:
        """Show only photos carrying `tag` (None: any)."""
        self._change(tag=tag, similar_to=None)

    def set_sort(self, sort: str) -> None:
        """Order text results by "relevance" or "date" (browsing is always newest first)."""
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {SORTS}")
        if sort != self._state.sort:
            self._change(sort=sort)

    def show_weaker(self) -> None:
        """Show the next page of photos below the search cutoff, after the ones shown."""
        self._change(weaker=self._state.weaker + self.weaker_page)

    def show_matches_only(self) -> None:
        """Hide the photos below the search cutoff again."""
        self._change(weaker=0)

    def find_similar(self, path: str) -> None:
        """Show the photos that look most like `path` (across the whole library)."""
        self._change(text="", folder=None, tag=None, similar_to=path)

    def show_all(self) -> None:
        """Browse the whole library: no text, folder, tag or similar photo."""
        self._change(text="", folder=None, tag=None, similar_to=None)

    def _change(self, **changes: Any) -> None:
        if changes.keys() - {"sort", "weaker"}:
            changes["weaker"] = 0  # a new question shows its matches only; a new order keeps what is shown
        self._state = replace(self._state, **changes)
        self._run_query()

    def _run_query(self) -> None:
        self._search_seq += 1
        if self.service is None:
            return  # runs once the library is open
        seq, state, service, top = self._search_seq, self._state, self.service, self.search_top

        def work(_: JobContext) -> tuple[int, PhotoList, int]:
            if state.similar_to is not None:  # ranked, no cutoff: what looks alike is what the user asked for
                hits = service.similar(state.similar_to, top=top)
                return seq, PhotoList("", [h.path for h in hits], [h.score for h in hits], state), 0
            if not (state.text or state.folder or state.tag):
                order = service.browse()
                return seq, PhotoList("", [], None, state, library_ids=order.ids), order.last_id
            if service.active_model_id() is None:
                return seq, PhotoList(state.text, [], [], state, matches=0), 0
            result = service.search(
                state.text, folder=state.folder, tag=state.tag, sort=state.sort, weaker=state.weaker
            )
            scores = [h.score for h in result.hits] if result.ranked else None
            paths = [h.path for h in result.hits]
            return seq, PhotoList(state.text, paths, scores, state, result.matches, result.more_weaker), 0

        self.runner.start(f"search {state}", work, on_success=self._searched, on_error=self.error.emit)

    def _searched(self, result: tuple[int, PhotoList, int]) -> None:
        seq, photos, last_id = result
        self._last_id = max(self._last_id, last_id)
        if seq == self._search_seq:  # an older query answered late: drop it
            self.photos.emit(photos)

    # --- tags ------------------------------------------------------------------------------------

    def load_tags(self, path: str) -> None:
        """Read a photo's tags; `photo_tags` brings them."""
        self._tag_job("tags", path, lambda service: service.tags_of(path), changed=False)

    def add_tag(self, path: str, tag: str) -> None:
        """Tag a photo by hand, or confirm the model's tag (persisted at once)."""
        self._tag_job("add tag", path, lambda service: service.set_tag(path, tag), changed=True)

    def remove_tag(self, path: str, tag: str) -> None:
        """Remove a tag from a photo (a model tag is remembered as rejected)."""
        self._tag_job("remove tag", path, lambda service: service.remove_tag(path, tag), changed=True)

    def _tag_job(self, name: str, path: str, fn: Any, *, changed: bool) -> None:
        def done(tags: list) -> None:
            self.photo_tags.emit(path, tags)
            if changed:
                self.refresh()  # tag counts
                if self._state.tag or "tag:" in self._state.text:
                    self._run_query()  # the photo may have joined or left the filtered rows

        self.run(name, fn, on_success=done, on_error=lambda message: self.photo_tags_failed.emit(path, message))

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

    def rescan(self, folder: str | None = None) -> None:
        """Re-index one library folder, or every one (None): new, changed and deleted photos."""
        self._queue.append(("rescan", folder))
        self._next_task()

    def catch_up(self, snapshot: LibrarySnapshot) -> None:
        """Index what changed while the app was closed or was left by a stopped run (a missing drive is skipped:
        a rescan would forget its photos)."""
        folders = [folder.path for folder in snapshot.folders if folder.exists]
        if folders and snapshot.active_model is not None:
            self._queue.append(("catchup", folders))

    def remove_folder(self, folder: str) -> None:
        """Forget a library folder and its photos (the files stay where they are)."""
        if self._state.folder == folder:
            self._state = replace(self._state, folder=None)
        self._queue.append(("remove", folder))
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
        if self.snapshot is not None and self.snapshot.trainer_available:
            return "No model is installed yet. Build the starter model first (it takes a few minutes)."
        return cannot_build_text(self.library)

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

        self._index_job = self.runner.start(
            kind,
            lambda context: run_job(service, kind, arg, context),
            on_progress=lambda value: self._progress(kind, value, model_id),
            on_success=lambda report: self._index_done(IndexOutcome(kind, report, model_id)),
            on_error=lambda message: self._index_done(IndexOutcome(kind, None, model_id, message)),
        )
        self.index_started.emit(kind, describe_job(kind, arg))
        self.index_progress.emit(IndexProgress(kind, 0, -1, 0.0, None))

    def _progress(self, kind: str, value: tuple[int, int], model_id: str | None) -> None:
        done, total = value
        if done > 0 and model_id is not None:
            self._warm_models.add(model_id)
        # core loads the image encoder on the first batch: seconds of silence the user should hear about
        loading = done == 0 and total > 0 and model_id not in self._warm_models
        if done == 0:
            self._started_at = time.perf_counter()  # scanning is over: rate counts embedding only
            if kind == "index":
                self.refresh()  # the sidebar lists a dropped folder while its photos are indexed
        elapsed = time.perf_counter() - self._started_at
        rate = done / elapsed if done and elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else None
        self.index_progress.emit(IndexProgress(kind, done, total, rate, eta, loading_model=loading))
        if kind in ("index", "rescan", "catchup") and self._state.browsing_all:
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
            if paths and self._state.browsing_all:
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
        self._run_query()  # new photos, or another active model: answer the query again
        if outcome.kind in FOLDER_JOBS:
            self.watch()
        self._next_task()

    # --- watching --------------------------------------------------------------------------------

    def watch(self) -> None:
        """(Re)start watching the library folders; changes on disk update the library while the app runs."""
        if self.service is None or self._closing or not self.watch_folders:
            return
        service, report = self.service, self._watch_report.emit  # emitted on the watcher's thread, queued here
        # A pool thread runs at lowered priority, and the watcher's threads inherit it.
        self.runner.start(
            "watch", lambda _: service.watch(report), on_success=self.watching.emit, on_error=self.error.emit
        )

    def _watched(self, report: Any) -> None:
        if self._closing:
            return
        self.library_changed.emit(report)
        self.refresh()
        self._run_query()

    # --- photos ----------------------------------------------------------------------------------

    def run(self, name: str, fn: Any, on_success: Any, on_error: Any | None = None) -> Job:
        """Run a small library call in the background (photo details, previews, error lists, tags)."""
        service = self.service
        if service is None:
            raise RuntimeError("the library is not open yet")
        return self.runner.start(
            name, lambda _: fn(service), on_success=on_success, on_error=on_error or self.error.emit
        )

    def shutdown(self, timeout_ms: int = 15_000) -> bool:
        """Cancel everything, stop watching and wait for the workers (called when the window closes)."""
        self._closing = True
        self._queue.clear()
        if self.service is not None:
            self.service.stop_watching(for_good=True)
        self.loader.wait_idle(timeout_ms)
        return self.runner.shutdown(timeout_ms)
