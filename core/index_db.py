"""The photo index: a SQLite database in the library folder, with versioned migrations (core.index_schema).

One row per photo file (path, size, mtime, metadata), which row of each model's embedding store holds its
embedding (the vectors themselves live in core.vector_store's files), and the reason for every file that could
not be read. WAL mode lets a search read while an indexer writes.

Paths go in through `pathtext.to_db` and come out through `pathtext.from_db`, so callers always deal in real
OS paths (names that are not UTF-8 included) while the database holds valid UTF-8 text.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import LibraryError
from core.index_schema import MIGRATIONS, statements
from core.metadata import PhotoMeta
from core.pathtext import UnstorablePathError, display, error_key, from_db, path_range, to_db
from core.vector_store import VectorSnapshot, VectorStores

DB_FILE = "index.sqlite3"


@dataclass(frozen=True)
class PhotoRecord:
    """A decoded photo ready to store: file identity plus metadata."""

    path: str
    size: int
    mtime_ns: int
    content_hash: str
    meta: PhotoMeta


@dataclass(frozen=True)
class IndexedPhoto:
    """One photo as the index holds it."""

    id: int
    path: str
    size: int
    mtime_ns: int
    width: int | None
    height: int | None
    taken_at: float | None
    camera: str | None
    gps_lat: float | None
    gps_lon: float | None


@dataclass(frozen=True)
class FileState:
    """What the index remembers of a file, to tell whether it changed."""

    photo_id: int
    size: int
    mtime_ns: int


OPEN_TIMEOUT_S = 30.0


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, retrying while another process does the same on a fresh database.

    Two processes that both read a fresh file's header and then both ask for the exclusive lock the switch needs
    would deadlock, so SQLite answers one of them "database is locked" at once, without its busy timeout.
    """
    deadline = time.monotonic() + OPEN_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _under_roots(roots: Sequence[str] | None) -> tuple[str, list[str]]:
    """A WHERE clause for paths at or under any of `roots` (range scans on the path index); None: every path."""
    if roots is None:
        return "1", []
    clauses, params = [], []
    for root in roots:
        try:
            low, high = path_range(root)
            params.extend([to_db(root), low, high])
        except UnstorablePathError:
            continue  # nothing under a folder whose name the index refuses was ever stored
        clauses.append("(path = ? OR (path >= ? AND path < ?))")
    return " OR ".join(clauses) or "0", params


class PhotoIndex:
    """Open (creating or migrating as needed) the index database of a library folder."""

    def __init__(self, library: Path) -> None:
        self.library = Path(library)
        try:
            self.library.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.library / DB_FILE, timeout=OPEN_TIMEOUT_S, isolation_level=None)
            _enable_wal(self.conn)
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
            self.vectors = VectorStores(self.conn, self.library, self.transaction)
            self.vectors.convert_legacy()
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
                for statement in statements(script):
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

    def file_states(self, roots: Sequence[str] | None = None) -> dict[str, FileState]:
        """Indexed paths (all, or those at or under `roots`) with their id, size and mtime."""
        where, params = _under_roots(roots)
        rows = self.conn.execute(f"SELECT path, id, size, mtime_ns FROM photos WHERE {where}", params)
        return {from_db(path): FileState(pid, size, mtime) for path, pid, size, mtime in rows}

    def embedded_ids(self, store_key: str, dim: int | None = None) -> set[int]:
        """Ids of the photos that already have an embedding in a store (of width `dim`, when given); a model's
        store key is `vectors.key_for(card)`."""
        return self.vectors.embedded_ids(store_key, dim)

    def photos_after(self, after_id: int = 0, limit: int | None = None) -> list[tuple[int, str]]:
        """(id, path) of photos added after `after_id`, in id order (for views that grow while indexing); the first
        `limit` of them when given."""
        rows = self.conn.execute(
            "SELECT id, path FROM photos WHERE id > ? ORDER BY id LIMIT ?", (after_id, -1 if limit is None else limit)
        )
        return [(pid, from_db(path)) for pid, path in rows]

    def photo_count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM photos").fetchone()[0]

    def vector_snapshot(self, store_key: str, dim: int) -> VectorSnapshot:
        """One store's committed embeddings, memory-mapped, with their photo ids in row order."""
        return self.vectors.snapshot(store_key, dim)

    def paths_of(self, ids: Iterable[int]) -> list[str]:
        """The paths of photos by id, in the given order."""
        ids = [int(i) for i in ids]
        found: dict[int, str] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            query = f"SELECT id, path FROM photos WHERE id IN ({','.join('?' * len(part))})"
            found.update((pid, from_db(path)) for pid, path in self.conn.execute(query, part))
        return [found[i] for i in ids]

    def photo_info(self, path: str) -> IndexedPhoto | None:
        """What the index knows about one photo (for the photo view), or None."""
        row = self.conn.execute(
            "SELECT id, size, mtime_ns, width, height, taken_at, camera, gps_lat, gps_lon FROM photos WHERE path = ?",
            (to_db(path),),
        ).fetchone()
        return None if row is None else IndexedPhoto(row[0], path, *row[1:])

    def photo_id(self, path: str) -> int | None:
        """The id of an indexed photo, or None."""
        row = self.conn.execute("SELECT id FROM photos WHERE path = ?", (to_db(path),)).fetchone()
        return None if row is None else row[0]

    def folders(self) -> list[str]:
        """Library folders the user added, in the order added."""
        return [from_db(r[0]) for r in self.conn.execute("SELECT path FROM folders ORDER BY added_at, path")]

    def add_folders(self, paths: Iterable[str]) -> None:
        with self.transaction():
            self.conn.executemany(
                "INSERT OR IGNORE INTO folders(path, added_at) VALUES (?, ?)", [(to_db(p), time.time()) for p in paths]
            )

    def remove_folder(self, path: str) -> int:
        """Forget a library folder and every photo under it; returns how many photos were forgotten."""
        # to_db maps character for character, so the prefix of the mapped text is the mapped prefix.
        path = to_db(path)
        prefix = path.rstrip(os.sep) + os.sep
        with self.transaction():
            self.conn.execute("DELETE FROM folders WHERE path = ?", (path,))
            removed = self.conn.execute(
                "DELETE FROM photos WHERE path = ? OR substr(path, 1, ?) = ?", (path, len(prefix), prefix)
            ).rowcount
            self.conn.execute("DELETE FROM scan_errors WHERE substr(path, 1, ?) = ?", (len(prefix), prefix))
        return removed

    def failed_states(self, roots: Sequence[str] | None = None) -> dict[str, tuple[int | None, int | None]]:
        """(size, mtime_ns) of each file that failed (all, or at or under `roots`), by `pathtext.error_key`, to
        avoid retrying an unchanged broken file."""
        where, params = _under_roots(roots)
        rows = self.conn.execute(f"SELECT path, size, mtime_ns FROM scan_errors WHERE {where}", params)
        return {from_db(path): (size, mtime) for path, size, mtime in rows}

    def errors(self) -> list[tuple[str, str]]:
        """(path, reason) of every file that could not be indexed, by path (`pathtext.error_key` of the file)."""
        rows = self.conn.execute("SELECT path, reason FROM scan_errors ORDER BY path")
        return [(from_db(path), reason) for path, reason in rows]

    # --- writing -------------------------------------------------------------------------------

    def save_batch(
        self,
        store_key: str,
        photos: Sequence[PhotoRecord],
        vectors: np.ndarray,
        failures: Iterable[tuple[str, str, int | None, int | None]] = (),
    ) -> list[int]:
        """Store one batch in a single transaction: photos with their embeddings (into the store `store_key`), and
        (path, reason, size, mtime_ns) failures. A crash loses at most this batch. Returns the photos' ids.

        Every photo path must be one `pathtext.to_db` accepts; a failure is recorded under its `error_key`."""
        now = time.time()
        ids = []
        if len(photos) != len(vectors):
            raise ValueError(f"{len(photos)} photos but {len(vectors)} embeddings")
        with self.transaction():
            for photo in photos:
                # A changed file invalidates what other models made of its old content.
                key = to_db(photo.path)
                old = self.conn.execute(
                    "SELECT id FROM photos WHERE path = ? AND content_hash IS NOT ?", (key, photo.content_hash)
                ).fetchone()
                if old is not None:
                    self.conn.execute("DELETE FROM vectors WHERE photo_id = ?", old)
                    self.conn.execute("DELETE FROM tags WHERE photo_id = ? AND source != 'user'", old)
                meta = photo.meta
                photo_id = self.conn.execute(
                    "INSERT INTO photos(path, size, mtime_ns, added_at, content_hash, width, height, taken_at, camera, "
                    "gps_lat, gps_lon) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, "
                    "content_hash = excluded.content_hash, width = excluded.width, height = excluded.height, "
                    "taken_at = excluded.taken_at, camera = excluded.camera, gps_lat = excluded.gps_lat, "
                    "gps_lon = excluded.gps_lon RETURNING id",
                    (
                        key,
                        photo.size,
                        photo.mtime_ns,
                        now,
                        photo.content_hash,
                        meta.width,
                        meta.height,
                        meta.taken_at,
                        meta.camera,
                        meta.gps_lat,
                        meta.gps_lon,
                    ),
                ).fetchone()[0]
                self.conn.execute("DELETE FROM scan_errors WHERE path = ?", (key,))
                ids.append(photo_id)
            self.vectors.append(store_key, ids, vectors)
            for path, reason, size, mtime_ns in failures:
                self.conn.execute(
                    "INSERT OR REPLACE INTO scan_errors(path, reason, size, mtime_ns, at) VALUES (?, ?, ?, ?, ?)",
                    # A reason may quote the path: keep it valid text (display) so SQLite can store it.
                    (to_db(error_key(path)), display(reason), size, mtime_ns, now),
                )
        return ids

    def move_photo(self, old_path: str, new_path: str, size: int, mtime_ns: int) -> None:
        """Record that a photo was moved or renamed: it keeps its id, embeddings and tags."""
        old_path, new_path = to_db(old_path), to_db(new_path)
        with self.transaction():
            self.conn.execute("DELETE FROM photos WHERE path = ?", (new_path,))
            self.conn.execute(
                "UPDATE photos SET path = ?, size = ?, mtime_ns = ? WHERE path = ?",
                (new_path, size, mtime_ns, old_path),
            )

    def content_hashes(self, paths: Iterable[str]) -> dict[str, tuple[int, str | None]]:
        """(size, content_hash) of the given indexed paths."""
        result = {}
        for path in paths:
            row = self.conn.execute("SELECT size, content_hash FROM photos WHERE path = ?", (to_db(path),)).fetchone()
            if row is not None:
                result[path] = (row[0], row[1])
        return result

    def remove_paths(self, paths: Iterable[str]) -> int:
        """Forget photos (and their embeddings) whose files are gone; returns how many were removed."""
        removed = 0
        with self.transaction():
            for path in paths:
                recorded = error_key(path)
                key = to_db(recorded)
                if recorded == path:  # a name the index refuses is never a photo, but it may have an error
                    removed += self.conn.execute("DELETE FROM photos WHERE path = ?", (key,)).rowcount
                self.conn.execute("DELETE FROM scan_errors WHERE path = ?", (key,))
        return removed

    def transaction(self) -> _Transaction:
        return _Transaction(self.conn)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (including KeyboardInterrupt)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type | None, *rest: object) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


def read_listing(library: Path) -> tuple[list[str], list[str]] | None:
    """(folders, indexed photo paths) of a library's index, read without changing anything (no migration, no WAL
    switch, no new files); None when it has no index yet. The packaged app's self-test looks at a real library so."""
    database = Path(library) / DB_FILE
    if not database.is_file():
        return None
    wal = database.with_name(database.name + "-wal")
    # A read-only connection to a WAL database still creates its -wal and -shm files when they are missing. Without a
    # -wal to merge, everything is in the main file: read it as immutable, which touches nothing.
    mode = "mode=ro" if wal.is_file() and wal.stat().st_size > 0 else "immutable=1"
    try:
        conn = sqlite3.connect(f"{database.resolve().as_uri()}?{mode}", uri=True)
        try:
            folders = [from_db(path) for (path,) in conn.execute("SELECT path FROM folders ORDER BY path")]
            photos = [from_db(path) for (path,) in conn.execute("SELECT path FROM photos")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise LibraryError(f"{database}: cannot read the index: {exc}") from exc
    return folders, photos
