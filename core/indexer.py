"""Index photos: scan, decode in parallel, embed in batches, commit each batch.

A killed process loses at most the batch in flight; the next run skips every committed photo.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.encoders import ModelPackage
from core.errors import ImageDecodeError, PhotoSeekError
from core.index_db import PhotoIndex, PhotoRecord
from core.pathtext import error_key, to_db
from core.preprocess import decode_photo, decode_side
from core.scanning import PhotoFile, content_hash, scan
from core.thumbnails import ThumbnailCache

ProgressCallback = Callable[[int, int], None]


@dataclass
class IndexReport:
    """What one indexing run did."""

    found: int = 0
    indexed: int = 0
    unchanged: int = 0
    failed: int = 0
    removed: int = 0
    moved: int = 0
    cancelled: bool = False
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)


def _decode(
    model: ModelPackage, photo: PhotoFile, min_side: int, thumbnails: ThumbnailCache | None
) -> tuple[PhotoRecord, np.ndarray]:
    to_db(photo.path)  # a name the index cannot store is refused before any decoding (UnstorablePathError)
    image, meta = decode_photo(Path(photo.path), min_side=min_side)
    if thumbnails is not None:
        try:
            thumbnails.save_from(photo.path, image)  # from the same decode: no second read of the photo
        except PhotoSeekError:
            pass  # a thumbnail is a convenience; the grid makes it again on demand
    try:
        digest = content_hash(photo.path, photo.size)
    except OSError as exc:
        raise ImageDecodeError(f"cannot read the file: {exc}") from exc
    return PhotoRecord(photo.path, photo.size, photo.mtime_ns, digest, meta), model.preprocess(image)


def _reconcile(index: PhotoIndex, roots: list[Path], files: list[PhotoFile]) -> tuple[int, int]:
    """Follow moved/renamed photos (same size and content hash) and forget deleted ones under the roots.

    Returns (moved, removed). A moved photo keeps its id, embeddings and tags, so nothing is re-encoded.
    """
    under = [str(r) for r in roots]
    states = index.file_states(under)
    present = {error_key(f.path) for f in files}  # the keys errors are recorded under (a photo's own path)
    stale_errors = [path for path in index.failed_states(under) if path not in present]
    if stale_errors:
        index.remove_paths(stale_errors)
    gone = [path for path in states if path not in present]
    if not gone:
        return 0, 0
    gone_by_key = {key: path for path, key in index.content_hashes(gone).items() if key[1]}
    gone_sizes = {size for size, _ in gone_by_key}
    moved = 0
    for photo in files:
        if photo.path in states or photo.size not in gone_sizes or error_key(photo.path) != photo.path:
            continue  # known, no candidate, or a name the index refuses (its error is recorded when indexing)
        try:
            key = (photo.size, content_hash(photo.path, photo.size))
        except OSError:
            continue
        old_path = gone_by_key.pop(key, None)
        if old_path is not None:
            index.move_photo(old_path, photo.path, photo.size, photo.mtime_ns)
            gone.remove(old_path)
            moved += 1
    return moved, index.remove_paths(gone)


def photos_to_index(
    files: list[PhotoFile], index: PhotoIndex, store_key: str, dim: int | None, roots: Sequence[Path]
) -> list[PhotoFile]:
    """The files scanned under `roots` that a run must (re)index into the store `store_key` (a model's, see
    `VectorStores.key_for`): new, changed or not embedded there (with `dim`-wide rows). A file that failed before
    and has not changed since is not retried on every run. Only what lies under the roots is read: a watcher's one
    new photo costs the same in a 1M library."""
    under = [str(root) for root in roots]
    states = index.file_states(under)
    embedded = index.vectors.embedded_among(store_key, dim, [state.photo_id for state in states.values()])
    failed = index.failed_states(under)
    todo: list[PhotoFile] = []
    for photo in files:
        state = states.get(photo.path)
        unchanged = state is not None and (state.size, state.mtime_ns) == (photo.size, photo.mtime_ns)
        if unchanged and state.photo_id in embedded:
            continue
        if state is None and failed.get(error_key(photo.path)) == (photo.size, photo.mtime_ns):
            continue
        todo.append(photo)
    return todo


def _plan(
    roots: list[Path], index: PhotoIndex, model: ModelPackage, report: IndexReport
) -> tuple[list[PhotoFile], str]:
    """Scans `roots`, follows moved photos and forgets deleted ones, then picks the photos to (re)index.

    Fills the report's found/moved/removed/unchanged counts; returns those photos and the model's vector store key.
    """
    files = list(scan(roots))
    report.found = len(files)
    resolved = [r.resolve() for r in roots]
    report.moved, report.removed = _reconcile(index, resolved, files)

    store_key = index.vectors.key_for(model.card)  # photos its image side embedded for another model count
    todo = photos_to_index(files, index, store_key, model.dim, resolved)
    report.unchanged = len(files) - len(todo)
    return todo, store_key


_Decoded = tuple[PhotoRecord, np.ndarray]
_Failure = tuple[str, str, int | None, int | None]  # (path, reason, size, mtime_ns), as PhotoIndex.save_batch takes it


@dataclass
class _Batch:
    """One batch taken from the decoders: the photos decoded (records and pixels) and the ones that failed."""

    ok: list[PhotoRecord] = field(default_factory=list)
    pixels: list[np.ndarray] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)

    @property
    def taken(self) -> int:
        """Photos in the batch, decoded or failed (both count towards the batch size and the progress)."""
        return len(self.ok) + len(self.failures)


class _DecodeAhead:
    """Decodes photos on a thread pool ahead of embedding by a bounded window, so memory stays flat."""

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        photos: Iterable[PhotoFile],
        window: int,
        decode: Callable[[PhotoFile], _Decoded],
    ) -> None:
        self.pending: deque[tuple[PhotoFile, Future[_Decoded]]] = deque()
        self._pool = pool
        self._queue = iter(photos)
        self._window = window
        self._decode = decode

    def refill(self) -> None:
        """Submits the next photos until `window` decodes are pending or no photo is left."""
        while len(self.pending) < self._window:
            photo = next(self._queue, None)
            if photo is None:
                return
            self.pending.append((photo, self._pool.submit(self._decode, photo)))

    def cancel(self) -> None:
        """Cancels the pending decodes that have not started."""
        for _, future in self.pending:
            future.cancel()

    def next_batch(self, batch_size: int) -> _Batch:
        """Waits for up to `batch_size` decodes in scan order, refilling the window after each one."""
        batch = _Batch()
        while self.pending and batch.taken < batch_size:
            photo, future = self.pending.popleft()
            try:
                record, views = future.result()
                batch.ok.append(record)
                batch.pixels.append(views)
            except PhotoSeekError as exc:  # unreadable image, or a name the index cannot store
                batch.failures.append((photo.path, str(exc), photo.size, photo.mtime_ns))
            except Exception as exc:  # a decoder bug on one odd file must not stop the whole run
                batch.failures.append((photo.path, f"{type(exc).__name__}: {exc}", photo.size, photo.mtime_ns))
            self.refill()
        return batch


def _commit_batch(
    batch: _Batch,
    index: PhotoIndex,
    model: ModelPackage,
    store_key: str,
    on_batch: Callable[[list[int], np.ndarray], None] | None,
    report: IndexReport,
) -> None:
    """Embeds the batch and saves it with its failures (so a killed run loses at most this batch), then reports it."""
    vectors = model.embed_pixels(np.stack(batch.pixels)) if batch.pixels else np.zeros((0, model.dim), np.float32)
    ids = index.save_batch(store_key, batch.ok, vectors, batch.failures)
    if on_batch is not None:
        on_batch(ids, vectors)
    report.indexed += len(batch.ok)
    report.failed += len(batch.failures)
    report.failures.extend((path, reason) for path, reason, _, _ in batch.failures)


def index_paths(
    roots: Iterable[Path],
    index: PhotoIndex,
    model: ModelPackage,
    *,
    batch_size: int = 32,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    on_batch: Callable[[list[int], np.ndarray], None] | None = None,
    thumbnails: ThumbnailCache | None = None,
) -> IndexReport:
    """Bring the index up to date with the photos under `roots` for `model`.

    New or changed files are decoded and embedded; unchanged, already embedded ones are skipped;
    files that vanished are removed. Unreadable files get a recorded reason and never stop the run.
    `progress(done, total)` is called after each batch; setting `cancel` stops after the current batch.
    `on_batch(photo_ids, vectors)` runs after each committed batch (the library tags new photos with it);
    with `thumbnails`, each photo's grid thumbnail is made from the same decode.
    """
    started = time.perf_counter()
    roots = [Path(r).expanduser() for r in roots]
    report = IndexReport()
    todo, store_key = _plan(roots, index, model, report)
    total = len(todo)
    if progress:
        progress(0, total)
    min_side = decode_side(model.card.preprocess)
    workers = workers or max(1, os.cpu_count() or 1)
    done = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        decodes = _DecodeAhead(pool, todo, batch_size * 2, lambda photo: _decode(model, photo, min_side, thumbnails))
        decodes.refill()
        while decodes.pending:
            if cancel is not None and cancel.is_set():
                report.cancelled = True
                decodes.cancel()
                break
            batch = decodes.next_batch(batch_size)
            _commit_batch(batch, index, model, store_key, on_batch, report)
            done += batch.taken
            if progress:
                progress(done, total)
    report.seconds = time.perf_counter() - started
    return report
