"""The query-adaptive cutoff (core.cutoff) at library scale: each photo's statistics against the generic bank (the
tag vocabulary's embeddings) are computed once per embedding row and kept beside the model's store, so a search
pays only for photos embedded since the last one, and a 1M-photo library does not redo 1M x vocabulary products.

The cache file is named after the store's generation and a hash of the bank: rows are only ever appended within a
generation, so a cached prefix stays right; a new vocabulary or a compaction starts a new file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from core.cutoff import BankStats
from core.scoring import score_rows
from core.vector_store import StoreState, VectorSnapshot

SUFFIX = ".bank"
BANK_CHUNK_ROWS = 16_384  # photos scored against the whole bank at once: 20 MB of similarities for 300 tags


def _cache_file(folder: Path, state: StoreState, bank: np.ndarray) -> Path:
    digest = hashlib.sha1(np.ascontiguousarray(bank, np.float32).tobytes()).hexdigest()[:12]
    return folder / f"{state.store_id}-{state.generation}-{digest}{SUFFIX}"


def _stats_of(rows: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """[rows, 2] float32: mean and standard deviation of each row's similarities to the bank."""
    out = np.empty((len(rows), 2), np.float32)
    for start in range(0, len(rows), BANK_CHUNK_ROWS):
        similarities = score_rows(rows[start : start + BANK_CHUNK_ROWS], bank)
        out[start : start + len(similarities), 0] = similarities.mean(axis=1)
        out[start : start + len(similarities), 1] = np.maximum(similarities.std(axis=1), 1e-6)
    return out


def photo_bank_stats(folder: Path, state: StoreState, snapshot: VectorSnapshot, bank: np.ndarray) -> BankStats:
    """Bank statistics of every row of `snapshot` (a snapshot of `state`), extending the cached ones."""
    path = _cache_file(folder, state, bank)
    rows = len(snapshot.live)
    try:
        cached = np.fromfile(path, np.float32).reshape(-1, 2)[:rows]
    except (OSError, ValueError):
        cached = np.zeros((0, 2), np.float32)
    if len(cached) < rows:
        cached = np.concatenate([cached, _stats_of(snapshot.matrix[len(cached) : rows], bank)])
        _save(path, cached)
    return BankStats(cached[:, 0], cached[:, 1])


def _save(path: Path, stats: np.ndarray) -> None:
    """Write atomically and drop the store's older caches; a read-only library just recomputes next time."""
    try:
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        stats.tofile(tmp)
        os.replace(tmp, path)
        store = path.name.split("-", 1)[0]
        for old in path.parent.glob(f"{store}-*{SUFFIX}"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        pass
