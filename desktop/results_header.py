"""The line above the grid that says what it shows (all photos, a folder or tag, search matches, similar photos),
with the controls that show the photos below a search's cutoff ("Show weaker matches") or hide them again."""

from __future__ import annotations

import os

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from core.search import MAX_MATCHES
from desktop.query_state import PhotoList


def _count(number: int, one: str, many: str) -> str:
    return f"{number:,} {one if number == 1 else many}"


def describe_search(photos: PhotoList, where: str) -> str:
    """A text search's line, e.g. '3 matches for “a cat” in Holidays, best first · then 48 weaker photos'."""
    query = f"“{photos.query}”{where}"
    matches = len(photos.paths) if photos.matches is None else photos.matches
    weaker = len(photos.paths) - matches
    order = "newest first" if photos.state.sort == "date" else "best first"
    if not matches:
        if weaker:
            return f"No matches for {query} · the {_count(weaker, 'closest photo', 'closest photos')}, {order}"
        return f"No matches for {query}"
    # A search lists at most MAX_MATCHES matches: at the cap, more may match than are shown.
    counted = f"The best {matches:,} matches" if matches >= MAX_MATCHES else _count(matches, "match", "matches")
    line = f"{counted} for {query}, {order}"
    return f"{line} · then {_count(weaker, 'weaker photo', 'weaker photos')}" if weaker else line


def describe_results(photos: PhotoList, shown: int) -> str:
    """E.g. 'All photos · 1,204', '12 matches for “a cat” in Holidays, best first', 'Photos tagged “dog” · 7'.

    `shown` is how many rows the grid shows (it grows while browsing during indexing).
    """
    state = photos.state
    scope = state.describe_scope()
    if state.similar_to is not None:
        name = os.path.basename(state.similar_to)
        if shown:
            return f"{shown:,} photos that look like {name}, most alike first"
        return f"No other photos to compare with {name}"
    if photos.scores is None:  # browsing, or filters only: every row matches equally
        if not scope:
            return f"All photos · {shown:,}"
        if shown:
            return f"Photos {scope} · {shown:,}, newest first"
        return f"No photos {scope}"
    return describe_search(photos, f" {scope}" if scope else "")


class ResultsHeader(QWidget):
    """The results line and, for a text search, "Show weaker matches" (the next page below the cutoff) and
    "Matches only" (back to the matches)."""

    weaker_requested = Signal()
    matches_only_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.label.setObjectName("resultsHeader")
        self.weaker_button = QPushButton("Show weaker matches")
        self.weaker_button.setObjectName("weakerButton")
        self.weaker_button.setToolTip("Show the best photos below the cutoff where this search's matches stop")
        self.weaker_button.clicked.connect(self.weaker_requested.emit)
        self.fewer_button = QPushButton("Matches only")
        self.fewer_button.setObjectName("matchesOnlyButton")
        self.fewer_button.setToolTip("Hide the weaker photos again")
        self.fewer_button.clicked.connect(self.matches_only_requested.emit)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 2)
        layout.addWidget(self.label, 1)
        for button in (self.weaker_button, self.fewer_button):
            button.setFlat(True)
            button.setVisible(False)
            layout.addWidget(button)

    def text(self) -> str:
        """The line as shown (the controls aside)."""
        return self.label.text()

    def show_message(self, text: str) -> None:
        """A plain line, without the controls (e.g. while the library opens)."""
        self.label.setText(text)
        self.weaker_button.setVisible(False)
        self.fewer_button.setVisible(False)

    def show_results(self, photos: PhotoList, shown: int) -> None:
        """Describe `photos` (the grid shows `shown` rows) and offer what a search's cutoff allows."""
        self.show_message(describe_results(photos, shown))
        searched = photos.matches is not None and photos.state.similar_to is None
        shows_weaker = searched and len(photos.paths) > photos.matches
        self.weaker_button.setText("Show more weaker matches" if shows_weaker else "Show weaker matches")
        self.weaker_button.setVisible(searched and photos.more_weaker)
        self.fewer_button.setVisible(searched and photos.state.weaker > 0)
