"""Zero-shot tagging: the tag vocabulary, tag embeddings per model, and tags stored per photo.

A photo gets a model tag when the tag stands out among the vocabulary for that photo: its similarity's
z-score across all tags is at least `DEFAULT_Z` plus the tag's own offset, and it is among the photo's
`MAX_TAGS` best. z-scores make one default work for every model (each has its own similarity scale); a model
card may carry its own measured pair (`tagging`: min_z, max_tags), which then replaces the defaults.
A tag given to a photo brings its broader vocabulary tags along (core/tag_hierarchy.py: puppy -> dog -> animal),
beyond `max_tags`, when each stands above the photo's average tag (z >= 0 plus its own offset).
Confirming a tag lowers that tag's offset, rejecting raises it: the user's corrections calibrate each tag.
User tags and the user's decisions are never overwritten by the model.
"""

from __future__ import annotations

import time

import numpy as np

from core.encoders import ModelPackage
from core.errors import LibraryError
from core.index_db import PhotoIndex
from core.index_tags import PhotoTag, TagTables
from core.model_card import TaggingSpec
from core.paths import assets_dir
from core.pathtext import display
from core.tag_hierarchy import ancestor_indices, default_parents
from core.vector_store import VectorSnapshot

TAG_TEMPLATES = ("a photo of {}.", "{}", "a photo showing {}.", "a close-up photo of {}.")
DEFAULT_Z = 2.5
MAX_TAGS = 8
IMPLIED_Z = 0.0  # a broader tag implied by a given one must still stand above the photo's average tag
CONFIRM_STEP = -0.1
REJECT_STEP = 0.25
OFFSET_RANGE = (-1.0, 2.0)
USER = "user"
_PROCESS_CACHE: dict[tuple[str, str], np.ndarray] = {}  # (text encoder sha256, tag) -> unit vector


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
        self.tables = TagTables(index)
        self.tables.seed_vocabulary(default_vocabulary())

    # --- vocabulary ----------------------------------------------------------------------------

    def vocabulary(self) -> list[str]:
        """The tags the model may assign, in a stable order."""
        return self.tables.vocabulary()

    def add_to_vocabulary(self, tag: str) -> str:
        tag = clean_tag(tag)
        self.tables.add_to_vocabulary(tag)
        return tag

    def remove_from_vocabulary(self, tag: str) -> bool:
        """Stop the model from assigning `tag` and drop its model tags; user tags stay. False if unknown."""
        return self.tables.remove_from_vocabulary(clean_tag(tag))

    # --- model tagging -------------------------------------------------------------------------

    def tag_matrix(self, model: ModelPackage) -> tuple[list[str], np.ndarray]:
        """Vocabulary and its unit embeddings [tags, D] for a model (prompt-template average, cached in the DB)."""
        tags = self.vocabulary()
        stored = self.tables.stored_vectors(model.id, model.dim)
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
        unsaved = {t: vectors[t] for t in tags if t not in stored}
        if unsaved:
            self.tables.save_vectors(model.id, unsaved)
        matrix = np.stack([vectors[t] for t in tags]) if tags else np.zeros((0, model.dim), np.float32)
        return tags, matrix

    def _offsets(self, tags: list[str]) -> np.ndarray:
        offsets = self.tables.offsets()
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
        offsets = self._offsets(tags)[None, :]
        passes = z >= min_z + offsets
        implied_ok = z >= IMPLIED_Z + offsets
        ancestors = ancestor_indices(tags, default_parents())
        result = []
        for row, ok, implied in zip(scores, passes, implied_ok, strict=True):
            best = [i for i in np.argsort(-row)[:max_tags] if ok[i]]
            for i in list(best):
                best += [a for a in ancestors[i] if implied[a] and a not in best]
            result.append(sorted(((tags[i], float(row[i])) for i in best), key=lambda pair: -pair[1]))
        return result

    def tag_photos(self, model: ModelPackage, photo_ids: list[int], vectors: np.ndarray) -> None:
        """Replace the model tags of these photos; user tags and confirmed/rejected decisions stay."""
        tags, matrix = self.tag_matrix(model)
        suggestions = self.suggest(vectors, tags, matrix, model.card.tagging)
        self.tables.replace_model_tags(model.id, photo_ids, suggestions, time.time())

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
        tags = self.tables.tags_of(self._photo_id(path))
        return [t for t in tags if include_rejected or t.state != "rejected"]

    def _decide(self, photo_id: int, tag: str, state: str, step: float) -> None:
        """Record the user's decision on a model tag and move that tag's threshold by `step`."""
        self.tables.set_state(photo_id, tag, state, time.time())
        self.tables.nudge_offset(tag, step, *OFFSET_RANGE)

    def set_user_tag(self, path: str, tag: str) -> None:
        """Add a tag by hand, or confirm a model tag (which also lowers that tag's threshold)."""
        tag = clean_tag(tag)
        photo_id = self._photo_id(path)
        with self.index.transaction():
            source = self.tables.source_of(photo_id, tag)
            if source is not None and source != USER:
                self._decide(photo_id, tag, "confirmed", CONFIRM_STEP)
            else:
                self.tables.put_tag(photo_id, tag, USER, "confirmed", time.time())

    def remove_tag(self, path: str, tag: str) -> None:
        """Remove a tag. A model tag is kept as 'rejected' (so re-tagging never brings it back) and raises
        that tag's threshold; a user tag is deleted."""
        tag = clean_tag(tag)
        photo_id = self._photo_id(path)
        with self.index.transaction():
            source = self.tables.source_of(photo_id, tag)
            if source == USER:
                self.tables.delete_tag(photo_id, tag)
            elif source is not None:
                self._decide(photo_id, tag, "rejected", REJECT_STEP)

    def tag_counts(self) -> list[tuple[str, int]]:
        """Every tag in use with its number of photos, most used first."""
        return self.tables.counts()

    def photo_ids_with(self, tag: str) -> set[int]:
        """Ids of the photos carrying a tag (not rejected)."""
        return self.tables.photo_ids_with(clean_tag(tag))
