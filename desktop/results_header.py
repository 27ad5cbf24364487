"""The line above the grid that says what it shows: all photos, a folder or tag, search results, similar photos."""

from __future__ import annotations

import os

from desktop.query_state import PhotoList


def describe_results(photos: PhotoList, shown: int, cutoff: float) -> str:
    """E.g. 'All photos · 1,204', '12 best matches for “a cat” in Holidays, best first', 'Photos tagged “dog” · 7'.

    `shown` is how many rows pass the score cutoff `cutoff` (scored lists only).
    """
    state = photos.state
    scope = state.describe_scope()
    hidden = len(photos.paths) - shown
    below = f" · {hidden:,} below the {cutoff:.2f} cutoff" if hidden > 0 else ""
    if state.similar_to is not None:
        name = os.path.basename(state.similar_to)
        if shown:
            return f"{shown:,} photos that look like {name}, most alike first{below}"
        if photos.paths:
            return f"No photo scores {cutoff:.2f} or more next to {name}: lower the cutoff"
        return f"No other photos to compare with {name}"
    if photos.scores is None:  # browsing, or filters only: every row matches equally
        if not scope:
            return f"All photos · {shown:,}"
        if shown:
            return f"Photos {scope} · {shown:,}, newest first"
        return f"No photos {scope}"
    where = f" {scope}" if scope else ""
    if shown:
        order = "newest first" if state.sort == "date" else "best first"
        return f"{shown:,} best matches for “{photos.query}”{where}, {order}{below}"
    if photos.paths:
        return f"No photo scores {cutoff:.2f} or more for “{photos.query}”{where}: lower the cutoff"
    return f"No photos match “{photos.query}”{where}"
