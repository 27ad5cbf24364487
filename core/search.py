"""Search over one model's embeddings: text, negatives, photo arithmetic, similar photos, filters, sorting.

The whole library's unit embeddings sit in one float32 matrix; a query is one matrix-vector product and a
partial sort, so a million 512-d photos answer in about 0.1 s on two cores without an ANN index.
"""

from __future__ import annotations

import calendar
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from core.encoders import ModelPackage
from core.errors import LibraryError
from core.index_db import PhotoIndex
from core.preprocess import decode_side, load_image
from core.query import ParsedQuery, combine, demote, parse_query
from core.raw import RAW_EXTENSIONS
from core.tagging import Tagger

SORTS = ("relevance", "date")


@dataclass(frozen=True)
class SearchHit:
    """One result: the photo's path, its cosine similarity to the query, its date (epoch s or None), and the
    camera RAW file of the same shot when the photo stands for a RAW+JPEG pair (else None)."""

    path: str
    score: float
    taken_at: float | None = None
    raw: str | None = None


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first (argpartition keeps this O(N) for big libraries)."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    candidates = np.argpartition(-scores, k - 1)[:k]
    return candidates[np.argsort(-scores[candidates], kind="stable")]


def raw_pairs(paths: list[str]) -> dict[int, int]:
    """Camera RAW files shot together with a JPEG (or HEIC...) of the same name in the same folder, as
    {row of the RAW: row of its rendered twin}. Cameras set to RAW+JPEG write both; people expect one photo."""
    rendered: dict[tuple[str, str], int] = {}
    raws: list[tuple[int, tuple[str, str]]] = []
    for row, path in enumerate(paths):
        head, name = os.path.split(path)
        stem, extension = os.path.splitext(name)
        key = (head, stem.lower())
        if extension.lower() in RAW_EXTENSIONS:
            raws.append((row, key))
        else:
            rendered.setdefault(key, row)
    return {row: rendered[key] for row, key in raws if key in rendered}


def _epoch(day: date) -> float:
    return float(calendar.timegm(day.timetuple()))


class SearchEngine:
    """One model's embedding matrix plus the photo facts that filters need, held in memory."""

    def __init__(self, index: PhotoIndex, model: ModelPackage) -> None:
        self.model = model
        self.library = index.library
        self.matrix, self.ids, self.paths = index.load_embeddings(model.id, model.dim)
        facts = index.photo_facts(self.ids)
        self.dates = np.array([f[0] for f in facts], dtype=np.float64)  # taken_at, else file mtime
        self.cameras = [f[1] or "" for f in facts]
        self._row_of_path = {p: i for i, p in enumerate(self.paths)}
        # A RAW+JPEG pair answers as its JPEG, which names the RAW; the RAW row stays for `similar` and `+photo`.
        pairs = raw_pairs(self.paths)
        self._paired_raw = np.zeros(len(self.paths), dtype=bool)
        self._paired_raw[list(pairs)] = True
        self._raw_of_jpeg = {jpeg: raw for raw, jpeg in pairs.items()}
        self._twin = pairs | self._raw_of_jpeg

    def _hit(self, row: int, score: float) -> SearchHit:
        raw = self._raw_of_jpeg.get(row)
        return SearchHit(self.paths[row], score, float(self.dates[row]), None if raw is None else self.paths[raw])

    def __len__(self) -> int:
        return len(self.paths)

    def _filter_mask(self, query: ParsedQuery) -> np.ndarray:
        mask = np.ones(len(self.paths), dtype=bool)
        if query.folder is not None:
            prefix = str(query.folder).rstrip(os.sep) + os.sep
            mask &= np.array([p.startswith(prefix) for p in self.paths], dtype=bool)
        if query.date_from is not None:
            mask &= self.dates >= _epoch(query.date_from)
        if query.date_to is not None:
            mask &= self.dates < _epoch(query.date_to)
        if query.camera is not None:
            needle = query.camera.lower()
            mask &= np.array([needle in c.lower() for c in self.cameras], dtype=bool)
        if query.tags:
            with PhotoIndex(self.library) as index:
                tagger = Tagger(index)
                for tag in query.tags:
                    mask &= np.isin(self.ids, np.fromiter(tagger.photo_ids_with(tag), dtype=np.int64))
        return mask

    def photo_vector(self, path: Path) -> np.ndarray:
        """A photo's embedding: from the index when it is indexed, else embedded now."""
        row = self._row_of_path.get(str(Path(path).expanduser().resolve()))
        if row is not None:
            return self.matrix[row]
        try:
            image = load_image(Path(path).expanduser(), min_side=decode_side(self.model.card.preprocess))
        except Exception as exc:
            raise LibraryError(f"cannot use {path} in a query: {exc}") from exc
        return self.model.embed_images([image])[0]

    def query_vector(self, query: ParsedQuery) -> np.ndarray | None:
        """The unit query vector for the text and photo terms, or None when there are none."""
        if not (query.positive or query.photos):
            return None
        positive = self.model.embed_texts(list(query.positive), as_query=True) if query.positive else None
        photos = np.stack([self.photo_vector(p) for p in query.photos]) if query.photos else None
        empty = np.zeros((0, self.model.dim), np.float32)
        return combine(empty if positive is None else positive, empty if photos is None else photos)

    def scores(self, query: ParsedQuery) -> np.ndarray | None:
        """Similarity of every photo to the query, negatives applied; None for a filters-only query."""
        vector = self.query_vector(query)
        if vector is None and not query.negative:
            return None
        scores = np.zeros(len(self.paths), np.float32) if vector is None else self.matrix @ vector
        if query.negative:
            negatives = self.model.embed_texts(list(query.negative), as_query=True)
            scores = demote(scores, negatives @ self.matrix.T)
        return scores

    def run(
        self, query: ParsedQuery, top: int = 50, min_score: float | None = None, sort: str = "relevance"
    ) -> list[SearchHit]:
        """Rank the photos that pass the filters. Without vector terms, every match scores 1 and sorts by date."""
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {SORTS}")
        if not self.paths or query.is_empty:
            return []
        mask = self._filter_mask(query) & ~self._paired_raw
        ranked = self.scores(query)
        scores = np.ones(len(self.paths), dtype=np.float32) if ranked is None else ranked
        if min_score is not None:
            mask &= scores >= min_score
        scores = np.where(mask, scores, -np.inf)
        order = list(top_k(scores, min(top, int(mask.sum()))))
        if sort == "date" or ranked is None:
            order.sort(key=lambda i: -self.dates[i])
        return [self._hit(i, float(scores[i])) for i in order]

    def search(
        self, text: str, top: int = 50, min_score: float | None = None, sort: str = "relevance"
    ) -> list[SearchHit]:
        """Parse the query language (see core.query) and run it."""
        return self.run(parse_query(text), top=top, min_score=min_score, sort=sort)

    def similar(self, path: Path, top: int = 20, min_score: float | None = None) -> list[SearchHit]:
        """Photos most similar to a photo (the photo itself left out)."""
        vector = self.photo_vector(path)
        scores = self.matrix @ vector
        scores[self._paired_raw] = -np.inf
        own = self._row_of_path.get(str(Path(path).expanduser().resolve()))
        if own is not None:
            scores[[own, self._twin.get(own, own)]] = -np.inf  # the photo itself, and its RAW or JPEG twin
        hits = [self._hit(i, float(scores[i])) for i in top_k(scores, top)]
        return [h for h in hits if np.isfinite(h.score) and (min_score is None or h.score >= min_score)]
