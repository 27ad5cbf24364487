"""Photo embeddings as one contiguous float16 matrix per image side, memory-mapped for search, photo ids beside it.

A store is keyed by the image key of the models that fill it (`core.model_card.image_key`: the hashes of its image-side
files, preprocessing and width), so a text-only fine-tune and its base share one store: switching between them
embeds nothing. Stores of a schema-3 library are keyed by model id until `key_for` adopts them.

Files, in `<library>/vectors/`: `<store>-<generation>.f16` (rows x dim float16) and `<store>-<generation>.ids` (int64
photo ids, same row order). SQLite stays the source of truth, in the index's own transactions:
- `vector_stores`: each store's key, its file generation and how many rows are *committed*;
- `vectors`: which row holds each (photo, store) embedding: a photo counts as embedded only through it;
- `dead_rows`: rows whose photo was deleted or re-embedded (a trigger on `vectors` adds them), skipped by search
  until a compaction rewrites the live rows into the next generation.

An append writes its rows past the committed count, fsyncs, then commits the new count in the same write
transaction (which also serialises writers across processes). A kill before the commit leaves rows past the
count that the next append overwrites; a file found shorter than its count (power loss) is cut back to what it
holds, and the photos whose rows were lost lack an embedding, so the next index run embeds them again.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import LibraryError
from core.model_card import ModelCard, image_key
from core.scoring import score_terms

STORE_DIR = "vectors"
ROW_DTYPE = np.dtype(np.float16)
ID_DTYPE = np.dtype(np.int64)
COMPACT_MIN_DEAD = 1024  # below this many dead rows a compaction is not worth a rewrite
COMPACT_DEAD_FRACTION = 0.25
LEGACY_BATCH = 20_000

Transaction = Callable[[], AbstractContextManager[None]]


@dataclass(frozen=True)
class StoreState:
    """One store as committed: its id, key, file generation, committed rows and row width."""

    store_id: int
    key: str
    generation: int
    rows: int
    dim: int


@dataclass(frozen=True)
class VectorSnapshot:
    """A store's embeddings as committed when opened: read-only memory maps that later appends do not change."""

    key: str
    dim: int
    matrix: np.ndarray  # [rows, dim] float16
    ids: np.ndarray  # [rows] int64 photo ids
    live: np.ndarray  # [rows] bool: False where the photo is gone or was embedded again

    def __len__(self) -> int:
        return int(np.count_nonzero(self.live))

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """float32 [K, rows] cosine scores for unit queries [K, dim], a query's scores contiguous; dead rows -inf."""
        scores = score_terms(self.matrix, queries)
        if not self.live.all():
            scores[:, ~self.live] = -np.inf
        return scores

    def scores_of(self, rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """float32 [K, rows] scores of some rows only (a filter's), read where they lie; the rest score -inf."""
        scores = np.full((len(np.atleast_2d(queries)), len(self.live)), -np.inf, np.float32)
        picked = np.sort(rows[self.live[rows]])  # in file order: the pages of the memory map are read once, forwards
        scores[:, picked] = score_terms(self.matrix[picked], queries)
        return scores

    def vector(self, row: int) -> np.ndarray:
        return self.matrix[row].astype(np.float32)


def _empty_snapshot(key: str, dim: int) -> VectorSnapshot:
    return VectorSnapshot(key, dim, np.zeros((0, dim), ROW_DTYPE), np.zeros(0, ID_DTYPE), np.zeros(0, bool))


def _write_at(path: Path, offset: int, data: bytes) -> None:
    """Write bytes at an offset and make them durable before the caller commits the rows that point at them."""
    with open(path, "r+b" if path.exists() else "w+b") as file:
        file.seek(offset)
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


class VectorStores:
    """The embedding stores of one library, on the index's connection; writes run inside the caller's transaction
    unless said otherwise."""

    def __init__(self, conn: sqlite3.Connection, library: Path, transaction: Transaction) -> None:
        self.conn = conn
        self.folder = Path(library) / STORE_DIR
        self.transaction = transaction

    # --- reading ---------------------------------------------------------------------------------

    def state(self, key: str) -> StoreState | None:
        row = self.conn.execute(
            "SELECT id, generation, rows, dim FROM vector_stores WHERE store_key = ?", (key,)
        ).fetchone()
        return None if row is None else StoreState(row[0], key, row[1], row[2], row[3])

    def files(self, state: StoreState) -> tuple[Path, Path]:
        stem = f"{state.store_id}-{state.generation}"
        return self.folder / f"{stem}.f16", self.folder / f"{stem}.ids"

    def keys(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT store_key FROM vector_stores ORDER BY id")]

    def _state_of_width(self, key: str, dim: int | None) -> StoreState | None:
        """The store under `key`, if there is one and its rows are `dim` wide (any width when None)."""
        state = self.state(key)
        return None if state is None or (dim is not None and state.dim != dim) else state

    def embedded_ids(self, key: str, dim: int | None = None) -> set[int]:
        """Ids of the photos with a committed embedding in this store (none when its rows are not `dim` wide)."""
        state = self._state_of_width(key, dim)
        if state is None:
            return set()
        return {r[0] for r in self.conn.execute("SELECT photo_id FROM vectors WHERE store_id = ?", (state.store_id,))}

    def count(self, key: str, dim: int | None = None) -> int:
        """How many photos have a committed embedding in this store (0 when its rows are not `dim` wide)."""
        state = self._state_of_width(key, dim)
        if state is None:
            return 0
        return self.conn.execute("SELECT COUNT(*) FROM vectors WHERE store_id = ?", (state.store_id,)).fetchone()[0]

    def embedded_among(self, key: str, dim: int | None, photo_ids: Sequence[int]) -> set[int]:
        """Which of these photos have a committed embedding in this store (with rows `dim` wide, when given)."""
        if len(photo_ids) > 50_000:  # most of the library: one scan beats many lookups
            return self.embedded_ids(key, dim) & set(photo_ids)
        state = self._state_of_width(key, dim)
        if state is None:
            return set()
        found: set[int] = set()
        for start in range(0, len(photo_ids), 500):
            part = list(photo_ids[start : start + 500])
            query = f"SELECT photo_id FROM vectors WHERE store_id = ? AND photo_id IN ({','.join('?' * len(part))})"
            found.update(r[0] for r in self.conn.execute(query, [state.store_id, *part]))
        return found

    def version(self, key: str) -> tuple[int, int, int]:
        """Changes whenever the store's committed rows do (appends, deletions, compaction): (generation, rows,
        dead rows)."""
        state = self.state(key)
        if state is None:
            return (-1, 0, 0)
        dead = self.conn.execute("SELECT COUNT(*) FROM dead_rows WHERE store_id = ?", (state.store_id,)).fetchone()[0]
        return (state.generation, state.rows, dead)

    def counts(self) -> dict[str, int]:
        """Embedded photos per store key."""
        rows = self.conn.execute(
            "SELECT s.store_key, COUNT(*) FROM vectors v JOIN vector_stores s ON s.id = v.store_id GROUP BY s.store_key"
        )
        return dict(rows)

    def row_of(self, key: str, photo_id: int) -> int | None:
        row = self.conn.execute(
            "SELECT v.row FROM vectors v JOIN vector_stores s ON s.id = v.store_id WHERE s.store_key = ? AND "
            "v.photo_id = ?",
            (key, photo_id),
        ).fetchone()
        return None if row is None else row[0]

    def snapshot(self, key: str, dim: int) -> VectorSnapshot:
        """Map a store's committed rows. Repairs a store whose files lost rows (power loss) before mapping it."""
        for _ in range(3):  # a compaction in another process may retire the generation between read and map
            self.conn.execute("BEGIN")
            try:
                state = self.state(key)
                if state is None or state.rows == 0:
                    return _empty_snapshot(key, dim)
                if state.dim != dim:
                    raise LibraryError(
                        f"the index holds {state.dim}-d embeddings under '{key}', where {dim}-d ones are wanted: index "
                        "the library again"
                    )
                if self._held_rows(state) >= state.rows:
                    return self._map(state)
            finally:
                self.conn.execute("COMMIT")
            self._repair(key)
        raise LibraryError(f"the embeddings under '{key}' kept changing while being opened: try again")

    def _held_rows(self, state: StoreState) -> int:
        matrix_path, ids_path = self.files(state)
        return min(_size(matrix_path) // (state.dim * ROW_DTYPE.itemsize), _size(ids_path) // ID_DTYPE.itemsize)

    def _map(self, state: StoreState) -> VectorSnapshot:
        """Map a store whose files hold every committed row (inside a transaction, so the state is current)."""
        if state.rows == 0:
            return _empty_snapshot(state.key, state.dim)
        matrix_path, ids_path = self.files(state)
        matrix = np.memmap(matrix_path, ROW_DTYPE, mode="r", shape=(state.rows, state.dim))
        ids = np.memmap(ids_path, ID_DTYPE, mode="r", shape=(state.rows,))
        dead = self.conn.execute(
            "SELECT row FROM dead_rows WHERE store_id = ? AND row < ?", (state.store_id, state.rows)
        ).fetchall()
        live = np.ones(state.rows, bool)
        live[np.asarray([r[0] for r in dead], np.int64)] = False
        return VectorSnapshot(state.key, state.dim, matrix, ids, live)

    def _repair(self, key: str) -> None:
        """Forget rows past what the files hold: their photos get embedded again by the next index run. Measured
        under the write lock, so a compaction or append in another process cannot be mistaken for a loss."""
        with self.transaction():
            state = self.state(key)
            if state is not None:
                self._cut_back(state)

    def _cut_back(self, state: StoreState) -> StoreState:
        held = self._held_rows(state)
        if held >= state.rows:
            return state
        self.conn.execute("DELETE FROM vectors WHERE store_id = ? AND row >= ?", (state.store_id, held))
        self.conn.execute("DELETE FROM dead_rows WHERE store_id = ? AND row >= ?", (state.store_id, held))
        self.conn.execute("UPDATE vector_stores SET rows = ? WHERE id = ?", (held, state.store_id))
        return self.state(state.key)  # type: ignore[return-value]

    # --- writing (inside the caller's write transaction) -----------------------------------------

    def append(self, key: str, photo_ids: Sequence[int], vectors: np.ndarray) -> None:
        """Store embeddings of photos (replacing any this store had for them), committed with the caller's
        transaction."""
        if not len(photo_ids):
            return
        state = self._state_for_writing(key, vectors.shape[1])
        self.conn.executemany(
            "DELETE FROM vectors WHERE photo_id = ? AND store_id = ?", [(pid, state.store_id) for pid in photo_ids]
        )
        matrix_path, ids_path = self.files(state)
        rows = np.ascontiguousarray(vectors, dtype=ROW_DTYPE)
        _write_at(matrix_path, state.rows * state.dim * ROW_DTYPE.itemsize, rows.tobytes())
        _write_at(ids_path, state.rows * ID_DTYPE.itemsize, np.asarray(photo_ids, ID_DTYPE).tobytes())
        self.conn.executemany(
            "INSERT INTO vectors(photo_id, store_id, row) VALUES (?, ?, ?)",
            [(pid, state.store_id, state.rows + i) for i, pid in enumerate(photo_ids)],
        )
        self.conn.execute(
            "UPDATE vector_stores SET rows = ? WHERE id = ?", (state.rows + len(photo_ids), state.store_id)
        )

    def _state_for_writing(self, key: str, dim: int) -> StoreState:
        """The store under `key`, created on first use; a store of another width (a schema-3 store whose
        package was replaced by a different model) starts over in a new generation."""
        self.folder.mkdir(parents=True, exist_ok=True)
        state = self.state(key)
        if state is not None:
            state = self._cut_back(state)  # never append past a hole that a power loss left
        if state is None:
            self.conn.execute(
                "INSERT INTO vector_stores(store_key, generation, rows, dim) VALUES (?, 0, 0, ?)", (key, dim)
            )
            return self.state(key)  # type: ignore[return-value]
        if state.dim != dim:
            self.conn.execute("DELETE FROM vectors WHERE store_id = ?", (state.store_id,))
            self.conn.execute("DELETE FROM dead_rows WHERE store_id = ?", (state.store_id,))
            self.conn.execute(
                "UPDATE vector_stores SET generation = generation + 1, rows = 0, dim = ? WHERE id = ?",
                (dim, state.store_id),
            )
            return self.state(key)  # type: ignore[return-value]
        return state

    # --- maintenance (own transactions) ----------------------------------------------------------

    def needs_compaction(self, key: str) -> bool:
        state = self.state(key)
        if state is None:
            return False
        dead = self.conn.execute("SELECT COUNT(*) FROM dead_rows WHERE store_id = ?", (state.store_id,)).fetchone()[0]
        return dead >= COMPACT_MIN_DEAD and dead >= COMPACT_DEAD_FRACTION * state.rows

    def compact(self, key: str) -> None:
        """Rewrite the live rows into the next generation (dead rows dropped, order kept) and retire the old one."""
        with self.transaction():
            state = self.state(key)
            if state is None:
                return
            old = self._map(self._cut_back(state))
            new = StoreState(state.store_id, key, state.generation + 1, len(old), state.dim)
            matrix_path, ids_path = self.files(new)
            for path in (matrix_path, ids_path):
                path.unlink(missing_ok=True)  # left by a compaction that was killed before it committed
            keep = np.flatnonzero(old.live)
            _write_at(ids_path, 0, old.ids[keep].tobytes())
            for start in range(0, len(keep), 65_536):
                part = keep[start : start + 65_536]
                _write_at(matrix_path, start * state.dim * ROW_DTYPE.itemsize, old.matrix[part].tobytes())
            self.conn.executemany(
                "UPDATE vectors SET row = ? WHERE photo_id = ? AND store_id = ?",
                ((new_row, int(pid), state.store_id) for new_row, pid in enumerate(old.ids[keep])),
            )
            self.conn.execute("DELETE FROM dead_rows WHERE store_id = ?", (state.store_id,))
            self.conn.execute(
                "UPDATE vector_stores SET generation = ?, rows = ? WHERE id = ?",
                (new.generation, new.rows, state.store_id),
            )
        del old
        self._retire_old_generations(new)

    def drop(self, key: str) -> None:
        """Forget a store's embeddings (no installed model uses it any more) and delete its files."""
        with self.transaction():
            state = self.state(key)
            if state is None:
                return
            self._forget(state)
        self._delete_files(state.store_id)

    def key_for(self, card: ModelCard) -> str:
        """The key of the store a model reads and fills: its image key. A store this library kept under the model's
        id (schema 3) is adopted first: its embeddings came from this model, so they need no second pass."""
        key = image_key(card)
        if self.state(card.id) is not None:
            self._adopt(card.id, key)
        return key

    def _adopt(self, legacy_key: str, key: str) -> None:
        """Re-key a schema-3 store in one transaction. When a store under `key` exists already (a model sharing
        the image side adopted its own first), the one covering more photos stays and the other is forgotten."""
        dropped = None
        with self.transaction():
            legacy, current = self.state(legacy_key), self.state(key)
            if legacy is None:
                return
            if current is not None:
                counts = [self.count(k) for k in (legacy_key, key)]
                dropped = legacy if counts[0] <= counts[1] else current
                self._forget(dropped)
            if dropped is not legacy:
                self.conn.execute("UPDATE vector_stores SET store_key = ? WHERE id = ?", (key, legacy.store_id))
        if dropped is not None:
            self._delete_files(dropped.store_id)

    def _forget(self, state: StoreState) -> None:
        self.conn.execute("DELETE FROM vectors WHERE store_id = ?", (state.store_id,))
        self.conn.execute("DELETE FROM dead_rows WHERE store_id = ?", (state.store_id,))
        self.conn.execute("DELETE FROM vector_stores WHERE id = ?", (state.store_id,))

    def _delete_files(self, store_id: int) -> None:
        for path in self.folder.glob(f"{store_id}-*"):
            try:
                path.unlink()
            except OSError:
                pass  # still mapped by a reader on a system that refuses that: an orphan, never read again

    def _retire_old_generations(self, state: StoreState) -> None:
        current = {p.name for p in self.files(state)}
        for path in self.folder.glob(f"{state.store_id}-*"):
            if path.name not in current:
                try:
                    path.unlink()
                except OSError:
                    pass  # still mapped by a reader on a system that refuses that; the next compaction retries

    def convert_legacy(self) -> None:
        """Move embeddings from the schema-2 BLOB table into the stores, batch by batch, then drop the table."""
        while True:
            with self.transaction():
                if not self._has_legacy_table():
                    return
                rows = self.conn.execute(
                    "SELECT photo_id, model_id, vector FROM legacy_embeddings ORDER BY model_id, photo_id LIMIT ?",
                    (LEGACY_BATCH,),
                ).fetchall()
                if not rows:
                    self.conn.execute("DROP TABLE legacy_embeddings")
                    return
                for model_id in dict.fromkeys(r[1] for r in rows):  # kept under the model id until adopted
                    self._convert_model_rows([r for r in rows if r[1] == model_id])
                self.conn.executemany(
                    "DELETE FROM legacy_embeddings WHERE photo_id = ? AND model_id = ?", [r[:2] for r in rows]
                )

    def _convert_model_rows(self, rows: list[tuple[int, str, bytes]]) -> None:
        width = max(len(r[2]) for r in rows)
        usable = [r for r in rows if len(r[2]) == width and width % 4 == 0]  # others get embedded again
        if usable:
            vectors = np.frombuffer(b"".join(r[2] for r in usable), np.float32).reshape(len(usable), width // 4)
            self.append(rows[0][1], [r[0] for r in usable], vectors)

    def _has_legacy_table(self) -> bool:
        query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'legacy_embeddings'"
        return self.conn.execute(query).fetchone() is not None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
