"""The photo index: a SQLite database in the library folder, with versioned migrations.

One row per photo file (path, size, mtime), one embedding per (photo, model), and the reason for
every file that could not be read. WAL mode lets a search read while an indexer writes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import LibraryError

DB_FILE = "index.sqlite3"

# Each entry upgrades the schema by one version; never edit a released entry, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE photos (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        added_at REAL NOT NULL
    );
    CREATE TABLE embeddings (
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        model_id TEXT NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (photo_id, model_id)
    ) WITHOUT ROWID;
    CREATE INDEX embeddings_by_model ON embeddings(model_id);
    CREATE TABLE scan_errors (
        path TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        size INTEGER,
        mtime_ns INTEGER,
        at REAL NOT NULL
    );
    """,
)


@dataclass(frozen=True)
class FileState:
    """What the index remembers of a file, to tell whether it changed."""

    photo_id: int
    size: int
    mtime_ns: int


class PhotoIndex:
    """Open (creating or migrating as needed) the index database of a library folder."""

    def __init__(self, library: Path) -> None:
        self.library = Path(library)
        try:
            self.library.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.library / DB_FILE, timeout=30.0, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise LibraryError(f"cannot open the photo index in {self.library}: {exc}") from exc

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        # BEGIN IMMEDIATE serialises two processes opening a fresh library at once.
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            version = self.schema_version
            if version > len(MIGRATIONS):
                raise LibraryError(
                    f"the index in {self.library} was written by a newer PhotoSeek (schema {version}); upgrade PhotoSeek"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {number}")
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> PhotoIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading -------------------------------------------------------------------------------

    def file_states(self) -> dict[str, FileState]:
        """Every indexed path with its id, size and mtime."""
        rows = self.conn.execute("SELECT path, id, size, mtime_ns FROM photos")
        return {path: FileState(pid, size, mtime) for path, pid, size, mtime in rows}

    def embedded_ids(self, model_id: str) -> set[int]:
        """Ids of the photos that already have an embedding from this model."""
        return {row[0] for row in self.conn.execute("SELECT photo_id FROM embeddings WHERE model_id = ?", (model_id,))}

    def photo_count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM photos").fetchone()[0]

    def load_embeddings(self, model_id: str, dim: int) -> tuple[np.ndarray, list[str]]:
        """All embeddings of one model as a float32 [N, dim] matrix with the matching paths."""
        rows = self.conn.execute(
            "SELECT p.path, e.vector FROM embeddings e JOIN photos p ON p.id = e.photo_id WHERE e.model_id = ? "
            "ORDER BY p.id",
            (model_id,),
        ).fetchall()
        matrix = np.empty((len(rows), dim), dtype=np.float32)
        for i, (_, blob) in enumerate(rows):
            vector = np.frombuffer(blob, dtype=np.float32)
            if vector.size != dim:
                raise LibraryError(f"an embedding of model '{model_id}' has {vector.size} values, expected {dim}")
            matrix[i] = vector
        return matrix, [path for path, _ in rows]

    def failed_states(self) -> dict[str, tuple[int | None, int | None]]:
        """(size, mtime_ns) of each file that failed, to avoid retrying an unchanged broken file."""
        return {
            path: (size, mtime)
            for path, size, mtime in self.conn.execute("SELECT path, size, mtime_ns FROM scan_errors")
        }

    def errors(self) -> list[tuple[str, str]]:
        """(path, reason) of every file that could not be indexed, by path."""
        return self.conn.execute("SELECT path, reason FROM scan_errors ORDER BY path").fetchall()

    # --- writing -------------------------------------------------------------------------------

    def save_batch(
        self,
        model_id: str,
        photos: Sequence[tuple[str, int, int]],
        vectors: np.ndarray,
        failures: Iterable[tuple[str, str, int | None, int | None]] = (),
    ) -> None:
        """Store one batch in a single transaction: (path, size, mtime_ns) rows with their embeddings,
        and (path, reason, size, mtime_ns) failures. A crash loses at most this batch."""
        now = time.time()
        with self._transaction():
            for (path, size, mtime_ns), vector in zip(photos, vectors, strict=True):
                # A changed file invalidates the embeddings other models made of its old content.
                self.conn.execute(
                    "DELETE FROM embeddings WHERE photo_id = (SELECT id FROM photos WHERE path = ? AND "
                    "(size != ? OR mtime_ns != ?))",
                    (path, size, mtime_ns),
                )
                photo_id = self.conn.execute(
                    "INSERT INTO photos(path, size, mtime_ns, added_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns "
                    "RETURNING id",
                    (path, size, mtime_ns, now),
                ).fetchone()[0]
                self.conn.execute(
                    "INSERT OR REPLACE INTO embeddings(photo_id, model_id, vector) VALUES (?, ?, ?)",
                    (photo_id, model_id, np.ascontiguousarray(vector, dtype=np.float32).tobytes()),
                )
                self.conn.execute("DELETE FROM scan_errors WHERE path = ?", (path,))
            for path, reason, size, mtime_ns in failures:
                self.conn.execute(
                    "INSERT OR REPLACE INTO scan_errors(path, reason, size, mtime_ns, at) VALUES (?, ?, ?, ?, ?)",
                    (path, reason, size, mtime_ns, now),
                )

    def remove_paths(self, paths: Iterable[str]) -> int:
        """Forget photos (and their embeddings) whose files are gone; returns how many were removed."""
        removed = 0
        with self._transaction():
            for path in paths:
                removed += self.conn.execute("DELETE FROM photos WHERE path = ?", (path,)).rowcount
                self.conn.execute("DELETE FROM scan_errors WHERE path = ?", (path,))
        return removed

    def _transaction(self) -> _Transaction:
        return _Transaction(self.conn)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (including KeyboardInterrupt)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type | None, *rest: object) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
