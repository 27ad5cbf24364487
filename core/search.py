"""Search over one model's embeddings: text, negatives, photo arithmetic, similar photos, filters, sorting.

A model's unit embeddings are one memory-mapped float16 matrix (core.vector_store); a query is one pass over it
and a partial sort, without an ANN index. Filters run as SQL over indexed columns, and paths, dates and RAW twins
are read only for the hits returned, so opening a search costs the same at 1k photos as at 1M.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core.cutoff import BankStats, matches
from core.encoders import ModelPackage
from core.errors import LibraryError
from core.index_db import PhotoIndex
from core.index_queries import filter_rows, photo_facts, shot_of, shots_of
from core.preprocess import decode_side, load_image
from core.query import ParsedQuery, QueryError, combine, demote, parse_query
from core.raw import RAW_EXTENSIONS
from core.search_cutoff import photo_bank_stats
from core.tagging import Tagger
from core.vector_store import STORE_DIR

SORTS = ("relevance", "date")
NARROW_FILTER_SHARE = 0.3  # gathering scattered rows costs more than a pass in order beyond about this share
MAX_MATCHES = 1000  # the most matches a search that stops at the cutoff lists (CLI and app alike)


@dataclass(frozen=True)
class SearchHit:
    """One result: the photo's path, its cosine similarity to the query, its date (epoch s or None), and the
    camera RAW file of the same shot when the photo stands for a RAW+JPEG pair (else None)."""

    path: str
    score: float
    taken_at: float | None = None
    raw: str | None = None


@dataclass(frozen=True)
class SearchRequest:
    """A search as the CLI or the GUI asks for it: the typed query text (core's query language), plus filters the
    GUI holds as structure (its folder and tag pickers), which are never typed back into the text."""

    text: str = ""
    folder: str | None = None
    tag: str | None = None
    top: int = 50
    min_score: float | None = None
    sort: str = "relevance"
    every_filter_match: bool = False  # a filters-only search returns all its matches, not the `top` newest
    cutoff: bool = False  # stop where the matches stop (core.cutoff, calibrated per model), at most `top` of them
    weaker: int = 0  # with the cutoff: also this many of the best photos below it, after the matches


@dataclass(frozen=True)
class SearchResult:
    """Hits in order, and whether they are ranked by similarity (False for filters only: every hit matches
    equally, newest first). With the cutoff, `matches` says how many leading hits match; the rest are the
    weaker ones asked for (None: no cutoff applied)."""

    hits: list[SearchHit]
    ranked: bool
    matches: int | None = None
    more_weaker: bool = False  # with the cutoff: whether photos below it are left beyond the hits


def with_filters(query: ParsedQuery, folder: str | None, tag: str | None) -> ParsedQuery:
    """The parsed text narrowed by a folder and a tag chosen outside it."""
    if folder is not None:
        if query.folder is not None and query.folder != Path(folder):
            raise QueryError(f"the query's folder {query.folder} is not the chosen folder {folder}")
        query = replace(query, folder=Path(folder))
    if tag is not None:
        query = replace(query, tags=(*query.tags, tag))
    return query


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first (argpartition keeps this O(N) for big libraries)."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    candidates = np.argpartition(-scores, k - 1)[:k]
    return candidates[np.argsort(-scores[candidates], kind="stable")]


def _newest_first(hit: SearchHit) -> float:
    """Sort key: newest first, undated last."""
    return -(hit.taken_at or 0.0)


def raw_pairs(paths: list[str]) -> dict[int, int]:
    """Camera RAW files shot together with a JPEG (or HEIC...) of the same name in the same folder, as
    {row of the RAW: row of its rendered twin}. Cameras set to RAW+JPEG write both; people expect one photo."""
    if not any(path[path.rfind(".") :].lower() in RAW_EXTENSIONS for path in paths):
        return {}  # the usual library: a quick look at each extension, no per-path keys
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


class SearchEngine:
    """One model's embeddings as committed when the engine was made; everything else is read per query."""

    def __init__(self, index: PhotoIndex, model: ModelPackage) -> None:
        self.model = model
        self.library = index.library
        self._key = index.vectors.key_for(model.card)  # shared with every model of the same image side
        self.vectors = index.vector_snapshot(self._key, model.dim)
        self._state = index.vectors.state(self._key)
        self._store_id = -1 if self._state is None else self._state.store_id
        self._bank_stats: BankStats | None = None

    def __len__(self) -> int:
        return len(self.vectors)

    def _index(self) -> PhotoIndex:
        # A connection per call: the desktop runs queries from worker threads.
        return PhotoIndex(self.library)

    def _row_of_path(self, index: PhotoIndex, path: str) -> int | None:
        photo_id = index.photo_id(path)
        row = None if photo_id is None else index.vectors.row_of(self._key, photo_id)
        return row if row is not None and row < len(self.vectors.live) and self.vectors.live[row] else None

    def photo_vector(self, path: Path) -> np.ndarray:
        """A photo's embedding: from the index when it is indexed, else embedded now."""
        with self._index() as index:
            row = self._row_of_path(index, str(Path(path).expanduser().resolve()))
        if row is not None:
            return self.vectors.vector(row)
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

    def scores(self, query: ParsedQuery, rows: np.ndarray | None = None) -> np.ndarray | None:
        """Similarity of every row to the query, negatives applied (one pass over the matrix for all terms, or over
        `rows` alone when given); None for a filters-only query. Rows of photos gone since the snapshot, and rows
        outside `rows`, score -inf."""
        vector = self.query_vector(query)
        if vector is None and not query.negative:
            return None
        vectors = [] if vector is None else [vector[None, :]]
        if query.negative:
            vectors.append(self.model.embed_texts(list(query.negative), as_query=True))
        queries = np.concatenate(vectors)
        terms = self.vectors.scores(queries) if rows is None else self.vectors.scores_of(rows, queries)
        live = self.vectors.live
        scores = terms[0] if vector is not None else np.where(live, 0.0, -np.inf).astype(np.float32)
        if query.negative:
            negatives = terms[0 if vector is None else 1 :]
            if live.all():  # the usual library: no dead row to leave out, so no copies of every row
                return demote(scores, negatives)
            scores[live] = demote(scores[live], negatives[:, live])
        return scores

    def bank_stats(self) -> BankStats:
        """Every row's statistics against the generic bank (the tag vocabulary), for the cutoff."""
        if self._bank_stats is None:
            with self._index() as index:
                bank = Tagger(index).tag_matrix(self.model)[1]
            folder = self.library / STORE_DIR
            self._bank_stats = photo_bank_stats(folder, self._state, self.vectors, bank)  # type: ignore[arg-type]
        return self._bank_stats

    def run(
        self,
        query: ParsedQuery,
        top: int = 50,
        min_score: float | None = None,
        sort: str = "relevance",
        cutoff: bool = False,
    ) -> list[SearchHit]:
        """Rank the photos that pass the filters (with `cutoff`, only those that match, at most `top`). Without
        vector terms, every match scores 1, newest first."""
        return self._run(query, top, min_score, sort, cutoff).hits

    def _run(
        self, query: ParsedQuery, top: int, min_score: float | None, sort: str, cutoff: bool, weaker: int = 0
    ) -> SearchResult:
        """`run`, with the cutoff followed by the `weaker` best photos below it. Sorting by date orders the
        matches and the weaker ones each on their own, so the weaker ones stay the best-scoring below the cutoff."""
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {SORTS}")
        if not len(self) or query.is_empty or top <= 0:
            return SearchResult([], query.has_vector_terms, 0 if cutoff else None)
        with self._index() as index:
            if not query.has_vector_terms:
                if min_score is not None and min_score > 1.0:
                    return SearchResult([], False)
                rows = filter_rows(index, self._store_id, query, newest_first=True)
                rows = rows[rows < len(self.vectors.live)]
                live = self.vectors.live
                return SearchResult(self._resolve(index, rows[live[rows]], np.ones(len(live)), top), False)
            mask = self.vectors.live.copy()
            rows = None
            if query.has_filters:
                rows = filter_rows(index, self._store_id, query)
                rows = rows[rows < len(mask)]
                passing = np.zeros_like(mask)
                passing[rows] = True
                mask &= passing
            # A narrow filter (a year, a camera, a folder) scores its own rows rather than the whole matrix. Negative
            # terms still need the pass: they are measured against the whole library's median.
            narrow = rows is not None and not query.negative and len(rows) <= len(mask) * NARROW_FILTER_SHARE
            ranked = self.scores(query, rows if narrow else None)
            if min_score is not None:
                mask &= ranked >= min_score
            if cutoff:
                result = self._matching(index, ranked, mask, top, weaker)
            else:
                result = SearchResult(self._best(index, np.where(mask, ranked, -np.inf), int(mask.sum()), top), True)
        if sort == "date":
            split = len(result.hits) if result.matches is None else result.matches
            hits = sorted(result.hits[:split], key=_newest_first) + sorted(result.hits[split:], key=_newest_first)
            result = replace(result, hits=hits)
        return result

    def _matching(self, index: PhotoIndex, scores: np.ndarray, mask: np.ndarray, top: int, weaker: int) -> SearchResult:
        """The rows that pass the model's cutoff among those in `mask`, best first, then the `weaker` best of
        the others (one more is looked up to tell whether more lie below)."""
        rows = np.flatnonzero(mask)
        stats = self.bank_stats()
        kept = rows[matches(scores[rows], BankStats(stats.mean[rows], stats.std[rows]), self.model.card.cutoff)]
        hits = self._resolve(index, kept, scores, top)
        if weaker <= 0:
            return SearchResult(hits, True, len(hits), more_weaker=len(kept) < int(mask.sum()))
        below = mask.copy()
        below[kept] = False
        extra = self._best(index, np.where(below, scores, -np.inf), int(below.sum()), weaker + 1)
        return SearchResult(hits + extra[:weaker], True, len(hits), more_weaker=len(extra) > weaker)

    def _best(
        self, index: PhotoIndex, scores: np.ndarray, candidates: int, top: int, exclude: frozenset[str] = frozenset()
    ) -> list[SearchHit]:
        """The `top` best rows as hits; asks for more rows while RAW twins or excluded photos fall out."""
        wanted = min(candidates, top + top // 4 + 8)
        while True:
            hits = self._resolve(index, top_k(scores, wanted), scores, top, exclude)
            if len(hits) >= top or wanted >= candidates:
                return hits
            wanted = min(candidates, wanted * 2)

    def _resolve(
        self, index: PhotoIndex, rows: np.ndarray, scores: np.ndarray, top: int, exclude: frozenset[str] = frozenset()
    ) -> list[SearchHit]:
        """Hits for rows in order: paths and dates read for these rows only; a RAW whose JPEG twin is indexed
        answers as that JPEG, which names it."""
        hits: list[SearchHit] = []
        for start in range(0, len(rows), max(64, top)):
            part = rows[start : start + max(64, top)]
            ids = self.vectors.ids[part]
            facts = photo_facts(index, ids)
            shots = shots_of(index, [fact.path for fact in facts.values()])
            for row, photo_id in zip(part, ids, strict=True):
                fact = facts.get(int(photo_id))
                if fact is None or fact.path in exclude:
                    continue  # removed since the snapshot, or the photo a `similar` search started from
                shot = shots[fact.path]
                if not shot.hidden:
                    hits.append(SearchHit(fact.path, float(scores[row]), fact.taken_at, shot.raw))
                if len(hits) == top:
                    return hits
        return hits

    def search(
        self, text: str, top: int = 50, min_score: float | None = None, sort: str = "relevance"
    ) -> list[SearchHit]:
        """Parse the query language (see core.query) and run it."""
        return self.run(parse_query(text), top=top, min_score=min_score, sort=sort)

    def answer(self, request: SearchRequest) -> SearchResult:
        """Run a request: its text parsed once, its folder and tag applied as filters."""
        query = with_filters(parse_query(request.text), request.folder, request.tag)
        ranked = query.has_vector_terms
        top = request.top if ranked or not request.every_filter_match else len(self.vectors.live)
        sort = request.sort if ranked else "date"
        cutoff = request.cutoff and ranked
        return self._run(query, top, request.min_score, sort, cutoff, request.weaker if cutoff else 0)

    def similar(self, path: Path, top: int = 20, min_score: float | None = None) -> list[SearchHit]:
        """Photos most similar to a photo (the photo itself and the other files of its shot left out)."""
        if not len(self):
            return []
        resolved = str(Path(path).expanduser().resolve())
        scores = self.vectors.scores(self.photo_vector(Path(path))[None, :])[0]
        with self._index() as index:
            exclude = frozenset({resolved, *shot_of(index, resolved).twins})
            candidates = int(np.isfinite(scores).sum()) if min_score is None else int((scores >= min_score).sum())
            if min_score is not None:
                scores = np.where(scores >= min_score, scores, -np.inf)
            return self._best(index, scores, candidates, top, exclude)
