"""Index photos: scan, decode in parallel, embed in batches, commit each batch.

A killed process loses at most the batch in flight; the next run skips every committed photo.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.encoders import ModelPackage
from core.errors import ImageDecodeError
from core.index_db import PhotoIndex
from core.preprocess import decode_side, load_image
from core.scanning import PhotoFile, scan

ProgressCallback = Callable[[int, int], None]


@dataclass
class IndexReport:
    """What one indexing run did."""

    found: int = 0
    indexed: int = 0
    unchanged: int = 0
    failed: int = 0
    removed: int = 0
    cancelled: bool = False
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)


def _decode(model: ModelPackage, photo: PhotoFile, min_side: int) -> np.ndarray:
    return model.preprocess(load_image(Path(photo.path), min_side=min_side))


def _prune(index: PhotoIndex, roots: list[Path], present: set[str]) -> int:
    """Forget indexed photos under the scanned roots whose files are gone."""
    prefixes = [str(r.resolve()) for r in roots]
    gone = [
        path
        for path in index.file_states()
        if path not in present and any(path == p or path.startswith(p.rstrip(os.sep) + os.sep) for p in prefixes)
    ]
    return index.remove_paths(gone) if gone else 0


def index_paths(
    roots: Iterable[Path],
    index: PhotoIndex,
    model: ModelPackage,
    *,
    batch_size: int = 32,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> IndexReport:
    """Bring the index up to date with the photos under `roots` for `model`.

    New or changed files are decoded and embedded; unchanged, already embedded ones are skipped;
    files that vanished are removed. Unreadable files get a recorded reason and never stop the run.
    `progress(done, total)` is called after each batch; setting `cancel` stops after the current batch.
    """
    started = time.perf_counter()
    roots = [Path(r).expanduser() for r in roots]
    report = IndexReport()
    files = list(scan(roots))
    report.found = len(files)
    report.removed = _prune(index, roots, {f.path for f in files})

    states = index.file_states()
    embedded = index.embedded_ids(model.id)
    failed = index.failed_states()
    todo: list[PhotoFile] = []
    for photo in files:
        state = states.get(photo.path)
        unchanged = state is not None and (state.size, state.mtime_ns) == (photo.size, photo.mtime_ns)
        if unchanged and state.photo_id in embedded:
            report.unchanged += 1
        elif state is None and failed.get(photo.path) == (photo.size, photo.mtime_ns):
            report.unchanged += 1  # same broken file as last time: do not retry it on every run
        else:
            todo.append(photo)

    total = len(todo)
    if progress:
        progress(0, total)
    min_side = decode_side(model.card.preprocess)
    workers = workers or max(1, os.cpu_count() or 1)
    done = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        # Decoding runs ahead of embedding by a bounded window, so memory stays flat.
        pending: deque[tuple[PhotoFile, Future[np.ndarray]]] = deque()
        queue = iter(todo)
        window = batch_size * 2

        def refill() -> None:
            while len(pending) < window:
                photo = next(queue, None)
                if photo is None:
                    return
                pending.append((photo, pool.submit(_decode, model, photo, min_side)))

        refill()
        while pending:
            if cancel is not None and cancel.is_set():
                report.cancelled = True
                for _, future in pending:
                    future.cancel()
                break
            ok: list[tuple[str, int, int]] = []
            pixels: list[np.ndarray] = []
            failures: list[tuple[str, str, int | None, int | None]] = []
            while pending and len(ok) + len(failures) < batch_size:
                photo, future = pending.popleft()
                try:
                    pixels.append(future.result())
                    ok.append((photo.path, photo.size, photo.mtime_ns))
                except ImageDecodeError as exc:
                    failures.append((photo.path, str(exc), photo.size, photo.mtime_ns))
                except Exception as exc:  # a decoder bug on one odd file must not stop the whole run
                    failures.append((photo.path, f"{type(exc).__name__}: {exc}", photo.size, photo.mtime_ns))
                refill()
            vectors = model.embed_pixels(np.stack(pixels)) if pixels else np.zeros((0, model.dim), np.float32)
            index.save_batch(model.id, ok, vectors, failures)
            report.indexed += len(ok)
            report.failed += len(failures)
            report.failures.extend((path, reason) for path, reason, _, _ in failures)
            done += len(ok) + len(failures)
            if progress:
                progress(done, total)
    report.seconds = time.perf_counter() - started
    return report
