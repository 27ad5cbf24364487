"""The photo index's schema: versioned migrations, applied in order by `core.index_db.PhotoIndex`."""

from __future__ import annotations

import sqlite3

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
    # 2: metadata, content hash (moves keep their embeddings), library folders, tags, vocabulary.
    """
    ALTER TABLE photos ADD COLUMN content_hash TEXT;
    ALTER TABLE photos ADD COLUMN width INTEGER;
    ALTER TABLE photos ADD COLUMN height INTEGER;
    ALTER TABLE photos ADD COLUMN taken_at REAL;
    ALTER TABLE photos ADD COLUMN camera TEXT;
    ALTER TABLE photos ADD COLUMN gps_lat REAL;
    ALTER TABLE photos ADD COLUMN gps_lon REAL;
    CREATE INDEX photos_by_hash ON photos(content_hash);
    CREATE TABLE folders (
        path TEXT PRIMARY KEY,
        added_at REAL NOT NULL
    );
    CREATE TABLE tags (
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        score REAL,
        source TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('auto', 'confirmed', 'rejected')),
        at REAL NOT NULL,
        PRIMARY KEY (photo_id, tag)
    ) WITHOUT ROWID;
    CREATE INDEX tags_by_tag ON tags(tag, state);
    CREATE TABLE vocabulary (
        tag TEXT PRIMARY KEY,
        origin TEXT NOT NULL,
        removed INTEGER NOT NULL DEFAULT 0,
        threshold_offset REAL NOT NULL DEFAULT 0
    );
    CREATE TABLE tag_vectors (
        model_id TEXT NOT NULL,
        tag TEXT NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (model_id, tag)
    ) WITHOUT ROWID;
    """,
    # 3: embeddings move out of SQLite into memory-mapped stores (core.vector_store); the old BLOBs are converted
    # by `VectorStores.convert_legacy` when the index opens, then their table is dropped. Dates and cameras get
    # indexes, so date and camera filters and browsing newest first need no scan of every photo.
    """
    ALTER TABLE embeddings RENAME TO legacy_embeddings;
    DROP INDEX embeddings_by_model;
    CREATE TABLE vector_stores (
        id INTEGER PRIMARY KEY,
        model_id TEXT NOT NULL UNIQUE,
        generation INTEGER NOT NULL,
        rows INTEGER NOT NULL,
        dim INTEGER NOT NULL
    );
    CREATE TABLE vectors (
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        store_id INTEGER NOT NULL,
        row INTEGER NOT NULL,
        PRIMARY KEY (photo_id, store_id)
    ) WITHOUT ROWID;
    CREATE TABLE dead_rows (
        store_id INTEGER NOT NULL,
        row INTEGER NOT NULL,
        PRIMARY KEY (store_id, row)
    ) WITHOUT ROWID;
    CREATE INDEX photos_by_date ON photos(COALESCE(taken_at, mtime_ns / 1e9));
    CREATE INDEX photos_by_camera ON photos(camera);
    CREATE TRIGGER vectors_dead AFTER DELETE ON vectors BEGIN
        INSERT OR IGNORE INTO dead_rows(store_id, row) VALUES (old.store_id, old.row);
    END;
    """,
    # 4: a store holds the photo embeddings of an image side, not of one model: it is keyed by the models' image key
    # (core.model_card.image_key), so a text-only fine-tune and its base share it. Stores keep their model id as key
    # until `VectorStores.key_for` adopts them, in one transaction each, when the model is next used.
    """
    ALTER TABLE vector_stores RENAME COLUMN model_id TO store_key;
    """,
    # 5: the date index also holds the camera, so "year:2015 camera:canon" is answered from the index alone (at 1M
    # photos 19 ms instead of 143 ms through the camera index and a table lookup per photo of that camera).
    """
    DROP INDEX photos_by_date;
    CREATE INDEX photos_by_date ON photos(COALESCE(taken_at, mtime_ns / 1e9), camera);
    """,
)


def statements(script: str) -> list[str]:
    """A migration script's statements (a trigger body holds semicolons of its own)."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending)
            pending = ""
    return statements
