"""Text-to-photo search over the embeddings of one model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.encoders import ModelPackage
from core.index_db import PhotoIndex


@dataclass(frozen=True)
class SearchHit:
    """One result: the photo's path and its cosine similarity to the query."""

    path: str
    score: float


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first (argpartition keeps this O(N) for big libraries)."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    candidates = np.argpartition(-scores, k - 1)[:k]
    return candidates[np.argsort(-scores[candidates], kind="stable")]


class SearchEngine:
    """Holds one model's normalised embedding matrix in memory and answers queries against it."""

    def __init__(self, index: PhotoIndex, model: ModelPackage) -> None:
        self.model = model
        self.matrix, self.paths = index.load_embeddings(model.id, model.dim)

    def __len__(self) -> int:
        return len(self.paths)

    def search(self, query: str, top: int = 20, min_score: float | None = None) -> list[SearchHit]:
        """The `top` photos most similar to the query text, best first, optionally above a score cutoff."""
        if not query.strip() or not self.paths:
            return []
        scores = self.matrix @ self.model.embed_texts([query], as_query=True)[0]
        hits = [SearchHit(self.paths[i], float(scores[i])) for i in top_k(scores, top)]
        return [h for h in hits if min_score is None or h.score >= min_score]
