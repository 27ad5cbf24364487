"""What the photo grid's rows hold: a short list of paths (search results), or the whole library as photo ids whose
paths are read a page at a time as rows come into view.

A million photos as Python strings cost over a second to read and hundreds of MB to hold; as an int64 array they
cost 8 MB, and the view only ever asks about the rows on screen.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

PAGE_ROWS = 256  # paths read per query as rows come into view
PAGES_KEPT = 64  # pages of paths held (16k rows: a few screens in either direction)


class PathRows:
    """Rows given as paths, with scores when ranked by similarity."""

    def __init__(self, paths: Sequence[str], scores: Sequence[float] | None = None) -> None:
        if scores is not None and len(scores) != len(paths):
            raise ValueError(f"{len(paths)} paths but {len(scores)} scores")
        self._paths = list(paths)
        self._scores = list(scores) if scores is not None else None
        self._row_of = {path: row for row, path in enumerate(self._paths)}

    def __len__(self) -> int:
        return len(self._paths)

    @property
    def has_scores(self) -> bool:
        return self._scores is not None

    def path(self, row: int) -> str:
        return self._paths[row]

    def score(self, row: int) -> float | None:
        return None if self._scores is None else self._scores[row]

    def row_of(self, path: str) -> int | None:
        return self._row_of.get(path)

    def new_paths(self, paths: Sequence[str]) -> list[str]:
        """Those of `paths` that could be added at the end: none to ranked rows, and none shown already."""
        return [] if self._scores is not None else [p for p in dict.fromkeys(paths) if p not in self._row_of]

    def extend(self, new: Sequence[str]) -> None:
        """Add rows at the end (paths from `new_paths`)."""
        self._row_of.update((path, len(self._paths) + i) for i, path in enumerate(new))
        self._paths.extend(new)


class LibraryRows:
    """Every photo of the library as ids in display order; each row's path is read with its page of rows when first
    asked for, and the most recently used pages are kept. Photos indexed later are added at the end as paths."""

    has_scores = False

    def __init__(self, ids: np.ndarray, read_paths: Callable[[np.ndarray], list[str | None]]) -> None:
        self._ids = np.asarray(ids, dtype=np.int64)
        self._read_paths = read_paths
        self._pages: OrderedDict[int, list[str]] = OrderedDict()
        self._row_of: dict[str, int] = {}
        self._tail = PathRows([])  # photos indexed while browsing

    def __len__(self) -> int:
        return len(self._ids) + len(self._tail)

    def path(self, row: int) -> str:
        if row >= len(self._ids):
            return self._tail.path(row - len(self._ids))
        page, offset = divmod(row, PAGE_ROWS)
        return self._page(page)[offset]

    def score(self, row: int) -> float | None:
        return None

    def row_of(self, path: str) -> int | None:
        """The row of a path among the pages read so far (the rows on screen, and around them)."""
        row = self._row_of.get(path)
        if row is not None:
            return row
        tail_row = self._tail.row_of(path)
        return None if tail_row is None else len(self._ids) + tail_row

    def new_paths(self, paths: Sequence[str]) -> list[str]:
        return self._tail.new_paths([p for p in paths if p not in self._row_of])

    def extend(self, new: Sequence[str]) -> None:
        self._tail.extend(new)

    def _page(self, page: int) -> list[str]:
        paths = self._pages.get(page)
        if paths is not None:
            self._pages.move_to_end(page)
            return paths
        first = page * PAGE_ROWS
        # A photo removed since the ids were read has no path: its cell shows as unreadable until the next refresh.
        paths = [path or "" for path in self._read_paths(self._ids[first : first + PAGE_ROWS])]
        self._pages[page] = paths
        self._row_of.update((path, first + i) for i, path in enumerate(paths) if path)
        if len(self._pages) > PAGES_KEPT:
            _, dropped = self._pages.popitem(last=False)
            for path in dropped:
                self._row_of.pop(path, None)
        return paths
