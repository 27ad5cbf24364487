"""The tag tables of a library index: the vocabulary with each tag's threshold offset, tag embeddings cached per
model, and the tags stored per photo. Only SQL lives here; what to tag and how corrections calibrate is
``core.tagging``'s. Writers that read before they write hold ``PhotoIndex.transaction()`` around both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from core.index_db import PhotoIndex


@dataclass(frozen=True)
class PhotoTag:
    """A tag on one photo: its similarity score (None for user tags), who set it, its state, and when."""

    tag: str
    score: float | None
    source: str
    state: str
    at: float


class TagTables:
    """Reads and writes of one open index's tag tables."""

    def __init__(self, index: PhotoIndex) -> None:
        self.index = index
        self._conn = index.conn

    # --- vocabulary ----------------------------------------------------------------------------

    def seed_vocabulary(self, tags: Iterable[str]) -> None:
        """Fill an empty vocabulary with the bundled defaults (a vocabulary the user emptied stays seeded: rows are
        marked removed, never deleted)."""
        with self.index.transaction():
            if self._conn.execute("SELECT COUNT(*) FROM vocabulary").fetchone()[0] == 0:
                self._conn.executemany(
                    "INSERT OR IGNORE INTO vocabulary(tag, origin) VALUES (?, 'default')", [(t,) for t in tags]
                )

    def vocabulary(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT tag FROM vocabulary WHERE removed = 0 ORDER BY rowid")]

    def add_to_vocabulary(self, tag: str) -> None:
        with self.index.transaction():
            self._conn.execute(
                "INSERT INTO vocabulary(tag, origin) VALUES (?, 'user') ON CONFLICT(tag) DO UPDATE SET removed = 0",
                (tag,),
            )

    def remove_from_vocabulary(self, tag: str) -> bool:
        """Mark `tag` removed and drop its model tags (user tags stay). False if it was not in the vocabulary."""
        with self.index.transaction():
            changed = self._conn.execute("UPDATE vocabulary SET removed = 1 WHERE tag = ?", (tag,)).rowcount
            self._conn.execute("DELETE FROM tags WHERE tag = ? AND state = 'auto'", (tag,))
        return bool(changed)

    def offsets(self) -> dict[str, float]:
        """Each tag's threshold offset (moved by the user's confirmations and rejections)."""
        return dict(self._conn.execute("SELECT tag, threshold_offset FROM vocabulary"))

    def nudge_offset(self, tag: str, step: float, low: float, high: float) -> None:
        self._conn.execute(
            "UPDATE vocabulary SET threshold_offset = MIN(?, MAX(?, threshold_offset + ?)) WHERE tag = ?",
            (high, low, step, tag),
        )

    # --- tag embeddings ------------------------------------------------------------------------

    def stored_vectors(self, model_id: str, dim: int) -> dict[str, np.ndarray]:
        """The cached unit embeddings of tags for a model, those of another width left out."""
        rows = self._conn.execute("SELECT tag, vector FROM tag_vectors WHERE model_id = ?", (model_id,))
        vectors = {tag: np.frombuffer(blob, dtype=np.float32) for tag, blob in rows}
        return {tag: v for tag, v in vectors.items() if v.size == dim}

    def save_vectors(self, model_id: str, vectors: dict[str, np.ndarray]) -> None:
        with self.index.transaction():
            self._conn.executemany(
                "INSERT OR REPLACE INTO tag_vectors(model_id, tag, vector) VALUES (?, ?, ?)",
                [(model_id, tag, vector.astype(np.float32).tobytes()) for tag, vector in vectors.items()],
            )

    # --- per photo -----------------------------------------------------------------------------

    def replace_model_tags(
        self, source: str, photo_ids: Sequence[int], tags: Sequence[Sequence[tuple[str, float]]], at: float
    ) -> None:
        """Each photo's model tags become `tags[i]` (pairs of tag and score); user tags and decisions stay."""
        with self.index.transaction():
            for photo_id, pairs in zip(photo_ids, tags, strict=True):
                self._conn.execute("DELETE FROM tags WHERE photo_id = ? AND state = 'auto'", (photo_id,))
                self._conn.executemany(
                    "INSERT OR IGNORE INTO tags(photo_id, tag, score, source, state, at) VALUES (?, ?, ?, ?, 'auto', ?)",
                    [(photo_id, tag, score, source, at) for tag, score in pairs],
                )

    def tags_of(self, photo_id: int) -> list[PhotoTag]:
        """Tags of one photo (rejected ones too), user tags first, then by score."""
        rows = self._conn.execute(
            "SELECT tag, score, source, state, at FROM tags WHERE photo_id = ? "
            "ORDER BY source != 'user', score IS NULL, score DESC, tag",
            (photo_id,),
        )
        return [PhotoTag(*row) for row in rows]

    def source_of(self, photo_id: int, tag: str) -> str | None:
        row = self._conn.execute("SELECT source FROM tags WHERE photo_id = ? AND tag = ?", (photo_id, tag)).fetchone()
        return None if row is None else row[0]

    def set_state(self, photo_id: int, tag: str, state: str, at: float) -> None:
        self._conn.execute(
            "UPDATE tags SET state = ?, at = ? WHERE photo_id = ? AND tag = ?", (state, at, photo_id, tag)
        )

    def put_tag(self, photo_id: int, tag: str, source: str, state: str, at: float) -> None:
        """Store a tag with no score (a user's), replacing what the photo had under that tag."""
        self._conn.execute(
            "INSERT OR REPLACE INTO tags(photo_id, tag, score, source, state, at) VALUES (?, ?, NULL, ?, ?, ?)",
            (photo_id, tag, source, state, at),
        )

    def delete_tag(self, photo_id: int, tag: str) -> None:
        self._conn.execute("DELETE FROM tags WHERE photo_id = ? AND tag = ?", (photo_id, tag))

    def counts(self) -> list[tuple[str, int]]:
        """Every tag in use (not rejected) with its number of photos, most used first."""
        return self._conn.execute(
            "SELECT tag, COUNT(*) AS n FROM tags WHERE state != 'rejected' GROUP BY tag ORDER BY n DESC, tag"
        ).fetchall()

    def photo_ids_with(self, tag: str) -> set[int]:
        rows = self._conn.execute("SELECT photo_id FROM tags WHERE tag = ? AND state != 'rejected'", (tag,))
        return {r[0] for r in rows}
