"""Where a query's matches stop: the query-adaptive cutoff, calibrated per model (pure numpy, no I/O).

One flat minimum score cannot fit every query (a model's useful scores differ from query to query), so a photo is a
match for a query when both hold:

- its score is within `gap` of the best photo's score for this query: the results stop where the scores fall away
  from the best match, whatever the query's own scale, and however big the library is;
- its score stands out for that photo: as a z-score against the photo's own similarities to a bank of generic
  captions (the tag vocabulary, the same z-score idea tagging uses), it reaches `min_photo_z`. A query for
  something absent still has a best photo, but that photo matches the query less than it matches everyday words,
  so few or no results survive.

Both numbers come from the model card (`cutoff`, measured on real photos); cards without them get `DEFAULT_CUTOFF`.
Scores are whatever the search ranks by, so negative terms (`dog -leash`) move the cutoff as well as the ranking.

    stats = bank_stats(photo_vectors, bank_vectors)      # once per library and model; cache it beside the vectors
    best_first = matches(scores, stats, card.cutoff)     # indices into the library, best first; may be empty
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.model_card import CutoffSpec

# For cards that measured nothing (imported MobileCLIP models, older starters): a lenient guess. On the first starter
# (no card cutoff) it kept the caption's photo for 79 % of the corpus captions, absent things got a median of 3.5.
DEFAULT_CUTOFF = CutoffSpec(gap=0.08, min_photo_z=-2.5)


@dataclass(frozen=True)
class BankStats:
    """Per photo: the mean and standard deviation of its cosine similarities to the generic bank's captions."""

    mean: np.ndarray  # float32 [photos]
    std: np.ndarray  # float32 [photos], > 0


def bank_stats(photo_vectors: np.ndarray, bank_vectors: np.ndarray) -> BankStats:
    """Statistics of unit photo vectors [photos, D] against unit bank vectors [captions, D] (at least 2 captions)."""
    photo_vectors = np.asarray(photo_vectors, dtype=np.float32)
    bank_vectors = np.asarray(bank_vectors, dtype=np.float32)
    if photo_vectors.ndim != 2 or bank_vectors.ndim != 2 or photo_vectors.shape[1] != bank_vectors.shape[1]:
        raise ValueError(
            f"photo vectors {photo_vectors.shape} and bank vectors {bank_vectors.shape} must be 2-D with the same width"
        )
    if len(bank_vectors) < 2:
        raise ValueError("the generic bank needs at least 2 captions")
    similarities = photo_vectors @ bank_vectors.T
    return BankStats(similarities.mean(axis=1), np.maximum(similarities.std(axis=1), 1e-6).astype(np.float32))


def matches(scores: np.ndarray, stats: BankStats, cutoff: CutoffSpec | None = None) -> np.ndarray:
    """Indices of the photos that match, best first (int64, possibly empty).

    `scores` [photos] are the query's scores for every photo of the library, in the order `stats` was computed.
    Raises ValueError when the shapes differ or a score is not finite.
    """
    cutoff = cutoff or DEFAULT_CUTOFF
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim != 1 or scores.shape != stats.mean.shape or scores.shape != stats.std.shape:
        raise ValueError(f"scores {scores.shape} do not match the bank statistics of {stats.mean.shape} photos")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite numbers")
    if scores.size == 0:
        return np.zeros(0, dtype=np.int64)
    near_best = scores >= scores.max() - cutoff.gap
    stands_out = (scores - stats.mean) / stats.std >= cutoff.min_photo_z
    kept = np.flatnonzero(near_best & stands_out)
    return kept[np.argsort(-scores[kept], kind="stable")].astype(np.int64)


def match_count(scores: np.ndarray, stats: BankStats, cutoff: CutoffSpec | None = None) -> int:
    """How many photos match (the length of `matches`)."""
    return int(len(matches(scores, stats, cutoff)))
