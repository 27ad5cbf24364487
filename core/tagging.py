"""Zero-shot tagging: the tag vocabulary, tag embeddings per model, and tags stored per photo.

A photo gets a model tag when the tag stands out among the vocabulary for that photo: its similarity's
z-score across all tags is at least `DEFAULT_Z` plus the tag's own offset, and it is among the photo's
`MAX_TAGS` best. z-scores make one default work for every model (each has its own similarity scale); a model
card may carry its own measured pair (`tagging`: min_z, max_tags), which then replaces the defaults.
Confirming a tag lowers that tag's offset, rejecting raises it: the user's corrections calibrate each tag.
User tags and the user's decisions are never overwritten by the model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from core.encoders import ModelPackage
from core.errors import LibraryError
from core.index_db import PhotoIndex
from core.model_card import TaggingSpec
from core.paths import assets_dir
from core.pathtext import display
from core.vector_store import VectorSnapshot

TAG_TEMPLATES = ("a photo of {}.", "{}", "a photo showing {}.", "a close-up photo of {}.")
DEFAULT_Z = 2.5
MAX_TAGS = 8
CONFIRM_STEP = -0.1
REJECT_STEP = 0.25
OFFSET_RANGE = (-1.0, 2.0)
USER = "user"
_PROCESS_CACHE: dict[tuple[str, str], np.ndarray] = {}  # (text encoder sha256, tag) -> unit vector


@dataclass(frozen=True)
class PhotoTag:
    """A tag on one photo: its similarity score (None for user tags), who set it, its state, and when."""

    tag: str
    score: float | None
    source: str
    state: str
    at: float


def default_vocabulary() -> list[str]:
    """The bundled starting vocabulary (assets/vocabulary.txt)."""
    lines = (assets_dir() / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def clean_tag(tag: str) -> str:
    cleaned = " ".join(tag.split()).lower()
    if not cleaned or len(cleaned) > 64:
        raise LibraryError(f"a tag must have 1 to 64 characters, got {tag!r}")
    return cleaned


class Tagger:
    """Tags of one library: vocabulary, per-photo tags and model tagging."""

    def __init__(self, index: PhotoIndex) -> None:
        self.index = index
        self.conn = index.conn
        if self.conn.execute("SELECT COUNT(*) FROM vocabulary").fetchone()[0] == 0:
            with index.transaction():
                self.conn.executemany(
                    "INSERT OR IGNORE INTO vocabulary(tag, origin) VALUES (?, 'default')",
                    [(t,) for t in default_vocabulary()],
                )

    # --- vocabulary ----------------------------------------------------------------------------

    def vocabulary(self) -> list[str]:
        """The tags the model may assign, in a stable order."""
        return [r[0] for r in self.conn.execute("SELECT tag FROM vocabulary WHERE removed = 0 ORDER BY rowid")]

    def add_to_vocabulary(self, tag: str) -> str:
        tag = clean_tag(tag)
        with self.index.transaction():
            self.conn.execute(
                "INSERT INTO vocabulary(tag, origin) VALUES (?, 'user') ON CONFLICT(tag) DO UPDATE SET removed = 0",
                (tag,),
            )
        return tag

    def remove_from_vocabulary(self, tag: str) -> bool:
        """Stop the model from assigning `tag` and drop its model tags; user tags stay. False if unknown."""
        tag = clean_tag(tag)
        with self.index.transaction():
            changed = self.conn.execute("UPDATE vocabulary SET removed = 1 WHERE tag = ?", (tag,)).rowcount
            self.conn.execute("DELETE FROM tags WHERE tag = ? AND state = 'auto'", (tag,))
        return bool(changed)

    # --- model tagging -------------------------------------------------------------------------

    def tag_matrix(self, model: ModelPackage) -> tuple[list[str], np.ndarray]:
        """Vocabulary and its unit embeddings [tags, D] for a model (prompt-template average, cached in the DB)."""
        tags = self.vocabulary()
        stored = {
            tag: np.frombuffer(blob, dtype=np.float32)
            for tag, blob in self.conn.execute("SELECT tag, vector FROM tag_vectors WHERE model_id = ?", (model.id,))
        }
        stored = {tag: v for tag, v in stored.items() if v.size == model.dim}
        # Vectors depend only on the text encoder: reuse what this process computed for another library.
        text_key = model.card.files.get(model.card.text_encoder.file, model.id)
        vectors = dict(stored)
        for tag in tags:
            if tag not in vectors and (text_key, tag) in _PROCESS_CACHE:
                vectors[tag] = _PROCESS_CACHE[(text_key, tag)]
        missing = [t for t in tags if t not in vectors]
        if missing:
            prompts = [template.format(t) for t in missing for template in TAG_TEMPLATES]
            fresh = model.embed_texts(prompts).reshape(len(missing), len(TAG_TEMPLATES), -1).mean(axis=1)
            fresh /= np.linalg.norm(fresh, axis=1, keepdims=True)
            for tag, vector in zip(missing, fresh.astype(np.float32), strict=True):
                vectors[tag] = _PROCESS_CACHE[(text_key, tag)] = vector
        unsaved = [t for t in tags if t not in stored]
        if unsaved:
            with self.index.transaction():
                self.conn.executemany(
                    "INSERT OR REPLACE INTO tag_vectors(model_id, tag, vector) VALUES (?, ?, ?)",
                    [(model.id, tag, vectors[tag].tobytes()) for tag in unsaved],
                )
        matrix = np.stack([vectors[t] for t in tags]) if tags else np.zeros((0, model.dim), np.float32)
        return tags, matrix

    def _offsets(self, tags: list[str]) -> np.ndarray:
        offsets = dict(self.conn.execute("SELECT tag, threshold_offset FROM vocabulary"))
        return np.array([offsets.get(t, 0.0) for t in tags], dtype=np.float32)

    def suggest(
        self, vectors: np.ndarray, tags: list[str], matrix: np.ndarray, tagging: TaggingSpec | None = None
    ) -> list[list[tuple[str, float]]]:
        """For each unit photo vector, the (tag, cosine) pairs that pass the calibrated threshold, best first.

        `tagging` is the model card's measured threshold and tag limit; None uses the defaults."""
        if not tags or len(vectors) == 0:
            return [[] for _ in range(len(vectors))]
        min_z, max_tags = (DEFAULT_Z, MAX_TAGS) if tagging is None else (tagging.min_z, tagging.max_tags)
        scores = vectors @ matrix.T
        z = (scores - scores.mean(axis=1, keepdims=True)) / (scores.std(axis=1, keepdims=True) + 1e-6)
        passes = z >= min_z + self._offsets(tags)[None, :]
        result = []
        for row, ok in zip(scores, passes, strict=True):
            best = [i for i in np.argsort(-row)[:max_tags] if ok[i]]
            result.append([(tags[i], float(row[i])) for i in best])
        return result

    def tag_photos(self, model: ModelPackage, photo_ids: list[int], vectors: np.ndarray) -> None:
        """Replace the model tags of these photos; user tags and confirmed/rejected decisions stay."""
        tags, matrix = self.tag_matrix(model)
        suggestions = self.suggest(vectors, tags, matrix, model.card.tagging)
        now = time.time()
        with self.index.transaction():
            for photo_id, pairs in zip(photo_ids, suggestions, strict=True):
                self.conn.execute("DELETE FROM tags WHERE photo_id = ? AND state = 'auto'", (photo_id,))
                self.conn.executemany(
                    "INSERT OR IGNORE INTO tags(photo_id, tag, score, source, state, at) VALUES (?, ?, ?, ?, 'auto', ?)",
                    [(photo_id, tag, score, model.id, now) for tag, score in pairs],
                )

    def retag(self, model: ModelPackage, snapshot: VectorSnapshot, batch: int = 4096) -> None:
        """Tag every photo of a store again with `model`: a model sharing the store's image side (a text-only
        fine-tune) tags from the embeddings already there, with no photo decoded or embedded."""
        rows = np.flatnonzero(snapshot.live)
        for start in range(0, len(rows), batch):
            part = rows[start : start + batch]
            self.tag_photos(model, snapshot.ids[part].tolist(), snapshot.matrix[part].astype(np.float32))

    # --- per photo -----------------------------------------------------------------------------

    def _photo_id(self, path: str) -> int:
        photo_id = self.index.photo_id(path)
        if photo_id is None:
            raise LibraryError(f"{display(path)} is not in the library")
        return photo_id

    def tags_of(self, path: str, include_rejected: bool = False) -> list[PhotoTag]:
        """Tags of one photo, user tags first, then by score."""
        rows = self.conn.execute(
            "SELECT tag, score, source, state, at FROM tags WHERE photo_id = ? "
            "ORDER BY source != 'user', score IS NULL, score DESC, tag",
            (self._photo_id(path),),
        )
        return [PhotoTag(*row) for row in rows if include_rejected or row[3] != "rejected"]

    def _source_of(self, photo_id: int, tag: str) -> str | None:
        row = self.conn.execute("SELECT source FROM tags WHERE photo_id = ? AND tag = ?", (photo_id, tag)).fetchone()
        return None if row is None else row[0]

    def _decide(self, photo_id: int, tag: str, state: str, step: float) -> None:
        """Record the user's decision on a model tag and move that tag's threshold by `step`."""
        self.conn.execute(
            "UPDATE tags SET state = ?, at = ? WHERE photo_id = ? AND tag = ?", (state, time.time(), photo_id, tag)
        )
        self._nudge(tag, step)

    def set_user_tag(self, path: str, tag: str) -> None:
        """Add a tag by hand, or confirm a model tag (which also lowers that tag's threshold)."""
        tag = clean_tag(tag)
        photo_id = self._photo_id(path)
        with self.index.transaction():
            source = self._source_of(photo_id, tag)
            if source is not None and source != USER:
                self._decide(photo_id, tag, "confirmed", CONFIRM_STEP)
            else:
                self.conn.execute(
                    "INSERT OR REPLACE INTO tags(photo_id, tag, score, source, state, at) "
                    "VALUES (?, ?, NULL, ?, 'confirmed', ?)",
                    (photo_id, tag, USER, time.time()),
                )

    def remove_tag(self, path: str, tag: str) -> None:
        """Remove a tag. A model tag is kept as 'rejected' (so re-tagging never brings it back) and raises
        that tag's threshold; a user tag is deleted."""
        tag = clean_tag(tag)
        photo_id = self._photo_id(path)
        with self.index.transaction():
            source = self._source_of(photo_id, tag)
            if source == USER:
                self.conn.execute("DELETE FROM tags WHERE photo_id = ? AND tag = ?", (photo_id, tag))
            elif source is not None:
                self._decide(photo_id, tag, "rejected", REJECT_STEP)

    def _nudge(self, tag: str, step: float) -> None:
        low, high = OFFSET_RANGE
        self.conn.execute(
            "UPDATE vocabulary SET threshold_offset = MIN(?, MAX(?, threshold_offset + ?)) WHERE tag = ?",
            (high, low, step, tag),
        )

    def tag_counts(self) -> list[tuple[str, int]]:
        """Every tag in use with its number of photos, most used first."""
        return self.conn.execute(
            "SELECT tag, COUNT(*) AS n FROM tags WHERE state != 'rejected' GROUP BY tag ORDER BY n DESC, tag"
        ).fetchall()

    def photo_ids_with(self, tag: str) -> set[int]:
        """Ids of the photos carrying a tag (not rejected)."""
        rows = self.conn.execute("SELECT photo_id FROM tags WHERE tag = ? AND state != 'rejected'", (clean_tag(tag),))
        return {r[0] for r in rows}
