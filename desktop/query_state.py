"""What the grid is asked to show (the typed text, the sidebar's folder and tag, the sort, or "similar to") and
the rows that answer it.

The sidebar's choices become core query-language filters (`in:"FOLDER"`, `tag:"NAME"`) appended to the typed
text, so the grid shows exactly what typing that whole query would show.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

SORTS = ("relevance", "date")


def quoted(value: str) -> str:
    """A query-language value in double quotes (the language has no escapes, so quotes inside are dropped)."""
    return '"' + value.replace('"', "") + '"'


@dataclass(frozen=True)
class QueryState:
    """One request for photos. `similar_to` (a photo path) replaces the text and filters when set. A text search
    shows the matches (core's cutoff) and, after them, the `weaker` best photos below the cutoff the user asked for."""

    text: str = ""
    folder: str | None = None
    tag: str | None = None
    sort: str = "relevance"
    similar_to: str | None = None
    weaker: int = 0

    def same_question(self, other: object) -> bool:
        """Whether `other` asks for the same photos, however many weaker ones each shows."""
        return isinstance(other, QueryState) and replace(other, weaker=self.weaker) == self

    @property
    def browsing_all(self) -> bool:
        """Whether this asks for the whole library (no text, no filter, no similar photo)."""
        return not self.text and self.folder is None and self.tag is None and self.similar_to is None

    def describe_scope(self) -> str:
        """The filters in words, e.g. 'tagged “cat” in Holidays' ("" when there are none)."""
        parts = []
        if self.tag:
            parts.append(f"tagged “{self.tag}”")
        if self.folder:
            parts.append(f"in {Path(self.folder).name or self.folder}")
        return " ".join(parts)


@dataclass(frozen=True)
class PhotoList:
    """Rows for the grid: the typed query they answer ("" = none), scores when ranked by similarity, and the
    whole request (filters, sort, similar photo) they answer; the whole library comes as `library_ids`, whose paths
    the grid reads as rows are shown. A text search's rows are its `matches` (how many
    rows pass the cutoff; None for lists without one) followed by weaker photos; `more_weaker` says whether
    more lie below the cutoff."""

    query: str
    paths: list[str]
    scores: list[float] | None
    state: QueryState = QueryState()
    matches: int | None = None
    more_weaker: bool = False
    library_ids: np.ndarray | None = None  # browsing: every photo as an id in display order, `paths` left empty

    @property
    def browsing_all(self) -> bool:
        """Whether these rows are the whole library."""
        return not self.query and self.state.browsing_all
