"""The search query language: what a user types into the search bar or the CLI, parsed into a ParsedQuery.

Syntax (terms are separated by spaces; keys are case-insensitive; any value may be double-quoted):

    golden retriever on a beach     plain words form one phrase to match
    "in the box"                    quotes group words and protect them from being read as operators
    -leash  -"red car"              push results away from a word or a quoted phrase
    +./ref.jpg  +~/x.png  +"a b.jpg"  add a photo's embedding (query arithmetic); a value counts as a
                                    photo when it looks like a path (starts with / ~ or ., holds a
                                    separator, or ends in a photo extension)
    +sunset  +"golden hour"         add another text concept, embedded on its own and summed
    tag:dog  tag:"golden retriever" photos carrying a tag (repeatable)
    in:~/Pictures/2023  folder:...  photos under a folder (relative paths resolve against cwd)
    after:2023-01  from:2023-01-05  start date, inclusive: the first day of that year, month or day
    before:2024                     end date, exclusive: photos strictly before that year, month or day
    to:2024-02-29                   end date, inclusive of that whole year, month or day
    year:2021                       the whole of 2021
    camera:pixel                    camera make/model contains this (case-insensitive)

Dates are YYYY, YYYY-MM or YYYY-MM-DD. Several date terms intersect. A lone "-" or "+" is ignored;
"foo:bar" with an unknown key stays plain text. A query of only negatives is valid: it ranks photos by
how unlike those terms they are. Invalid dates, empty filter values, a negated filter and contradictory
filters raise QueryError with a message meant for the user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from core.errors import PhotoSeekError
from core.scanning import PHOTO_EXTENSIONS

SAMPLED_MEDIAN_MIN = 65_536  # below this many values, np.median's partition of all of them is as quick
MEDIAN_SAMPLE = 4_096  # values sampled to bracket the median: the sample's middle sits within about 0.8 % of the
MEDIAN_MARGIN = 128  # true middle's rank (one standard deviation), so +-128 sample ranks (4 deviations) hold it


class QueryError(PhotoSeekError):
    """The query text cannot be understood; the message says what to fix."""


@dataclass(frozen=True)
class ParsedQuery:
    """A search query split into its vector terms and its filters.

    `date_from` is inclusive and `date_to` exclusive, whichever operator produced them, so a photo
    taken on day d matches when date_from <= d < date_to.
    """

    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    photos: tuple[Path, ...] = ()
    tags: tuple[str, ...] = ()
    folder: Path | None = None
    date_from: date | None = None
    date_to: date | None = None
    camera: str | None = None

    @property
    def has_vector_terms(self) -> bool:
        """Whether there is anything to embed (text or photos), as opposed to filters only."""
        return bool(self.positive or self.negative or self.photos)

    @property
    def has_filters(self) -> bool:
        """Whether any filter (tags, folder, dates, camera) narrows the results."""
        return bool(self.tags) or any(v is not None for v in (self.folder, self.date_from, self.date_to, self.camera))

    @property
    def is_empty(self) -> bool:
        return not self.has_vector_terms and not self.has_filters


_KEYS = {
    "tag": "tag",
    "in": "folder",
    "folder": "folder",
    "after": "from",
    "from": "from",
    "before": "before",
    "to": "to",
    "year": "year",
    "camera": "camera",
}
_KEY_RE = re.compile(r"([A-Za-z]+):(.*)", re.DOTALL)
_DATE_RE = re.compile(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?")
_YEAR_RE = re.compile(r"\d{4}")
# Word processors and phones replace straight quotes with curly ones; read them all as '"'.
_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"'})


@dataclass
class _Term:
    prefix: str  # "", "-" or "+"
    key: str | None  # "tag" for "tag:dog" (any word before a colon; unknown keys are sorted out later)
    text: str  # the value: without prefix, key and quotes
    raw: str  # as typed, for error messages


def _read_quoted(text: str, i: int) -> tuple[str, int]:
    """The quoted string starting at text[i] == '"' and the index after it; an unclosed quote runs to the end."""
    end = text.find('"', i + 1)
    if end < 0:
        return text[i + 1 :], len(text)
    return text[i + 1 : end], end + 1


def _terms(text: str) -> list[_Term]:
    """Split the query into terms: [prefix] (quoted | word | key:word | key:quoted)."""
    text = text.translate(_QUOTES)
    terms: list[_Term] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        prefix = ""
        while i < n and text[i] in "-+" and (not prefix or text[i] == prefix):
            prefix = text[i]  # "--dog" reads as "-dog"
            i += 1
        if i < n and text[i] == '"':
            value, i = _read_quoted(text, i)
            terms.append(_Term(prefix, None, value, text[start:i]))  # quoted: never an operator
            continue
        word_start = i
        while i < n and not text[i].isspace() and text[i] != '"':
            i += 1
        word = text[word_start:i]
        match = _KEY_RE.fullmatch(word)
        if match is None:
            terms.append(_Term(prefix, None, word, text[start:i]))
            continue
        value = match.group(2)
        if not value and i < n and text[i] == '"':
            value, i = _read_quoted(text, i)
        terms.append(_Term(prefix, match.group(1), value, text[start:i]))
    return terms


def _looks_like_path(value: str) -> bool:
    if value.startswith(("/", "~", ".")) or "/" in value or "\\" in value:
        return True
    return Path(value).suffix.lower() in PHOTO_EXTENSIONS


def _resolve_path(value: str, cwd: Path) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = cwd / path
    # The index stores resolved paths, so a folder filter must be resolved the same way to match them.
    return path.resolve()


def _period(raw: str, value: str) -> tuple[date, date]:
    """The [start, end) days of the year, month or day written as YYYY, YYYY-MM or YYYY-MM-DD."""
    match = _DATE_RE.fullmatch(value)
    if match is None:
        raise QueryError(f"'{raw}': dates are written YYYY, YYYY-MM or YYYY-MM-DD (e.g. 2023-07-14)")
    year = int(match.group(1))
    if not 1 <= year <= 9998:  # 9998 so that the exclusive end of any period still fits in a date
        raise QueryError(f"'{raw}': year {year} is out of range")
    month = int(match.group(2)) if match.group(2) else None
    day = int(match.group(3)) if match.group(3) else None
    if month is not None and not 1 <= month <= 12:
        raise QueryError(f"'{raw}': month {month} does not exist (use 1-12)")
    try:
        if month is None:
            return date(year, 1, 1), date(year + 1, 1, 1)
        if day is None:
            start = date(year, month, 1)
            return start, date(year + month // 12, month % 12 + 1, 1)
        start = date(year, month, day)
    except ValueError as exc:
        raise QueryError(f"'{raw}': not a valid date ({exc})") from None
    return start, start + timedelta(days=1)


class _Builder:
    """Collects terms and checks filters as they arrive."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.phrase: list[str] = []
        self.extra: list[str] = []
        self.negative: list[str] = []
        self.photos: list[Path] = []
        self.tags: list[str] = []
        self.folder: Path | None = None
        self.camera: str | None = None
        self.date_from: date | None = None
        self.date_to: date | None = None

    def add(self, term: _Term) -> None:
        key = _KEYS.get(term.key.lower()) if term.key is not None else None
        if key is not None:
            self._filter(term, key, term.text.strip())
            return
        text = term.text if term.key is None else f"{term.key}:{term.text}"  # an unknown key stays text
        value = " ".join(text.split())
        if not value:
            return  # a stray "-", "+" or ""
        if term.prefix == "-":
            self.negative.append(value)
        elif term.prefix == "+" and _looks_like_path(text.strip()):
            self.photos.append(_resolve_path(text.strip(), self.cwd))
        elif term.prefix == "+":
            self.extra.append(value)
        else:
            self.phrase.append(value)

    def _filter(self, term: _Term, key: str, value: str) -> None:
        name = term.key
        if term.prefix:
            raise QueryError(f"'{term.raw}': filters cannot take '{term.prefix}' (only words and photos can)")
        if not value:
            raise QueryError(f"'{term.raw}' needs a value right after the colon, e.g. {name}:{_EXAMPLES[key]}")
        if key == "tag":
            self.tags.append(" ".join(value.split()))
        elif key == "folder":
            if self.folder is not None:
                raise QueryError(f"'{term.raw}': only one folder filter is allowed")
            self.folder = _resolve_path(value, self.cwd)
        elif key == "camera":
            if self.camera is not None:
                raise QueryError(f"'{term.raw}': only one camera filter is allowed")
            self.camera = value
        else:
            if key == "year" and not _YEAR_RE.fullmatch(value):
                raise QueryError(f"'{term.raw}': year: takes a four-digit year, e.g. year:2021")
            start, end = _period(term.raw, value)
            if key in ("from", "year"):
                self.date_from = start if self.date_from is None else max(self.date_from, start)
            if key in ("to", "year", "before"):
                bound = start if key == "before" else end
                self.date_to = bound if self.date_to is None else min(self.date_to, bound)

    def build(self) -> ParsedQuery:
        if self.date_from is not None and self.date_to is not None and self.date_from >= self.date_to:
            raise QueryError(
                f"the date filters leave no days: from {self.date_from.isoformat()} up to (not including) "
                f"{self.date_to.isoformat()}"
            )
        phrase = " ".join(self.phrase)
        return ParsedQuery(
            positive=tuple(([phrase] if phrase else []) + self.extra),
            negative=tuple(self.negative),
            photos=tuple(self.photos),
            tags=tuple(dict.fromkeys(self.tags)),
            folder=self.folder,
            date_from=self.date_from,
            date_to=self.date_to,
            camera=self.camera,
        )


_EXAMPLES = {
    "tag": "dog",
    "folder": "~/Pictures/2023",
    "from": "2023-01",
    "before": "2024",
    "to": "2024-02-29",
    "year": "2021",
    "camera": "pixel",
}


def parse_query(text: str, cwd: Path | None = None) -> ParsedQuery:
    """Parse a search string (syntax in the module docstring). Paths resolve against `cwd` (default: the
    process's working directory) after expanding '~'. Raises QueryError for text that cannot be understood."""
    builder = _Builder(Path.cwd() if cwd is None else Path(cwd))
    for term in _terms(text):
        builder.add(term)
    return builder.build()


def _rows(name: str, array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if array.size == 0:
        return array.reshape(0, array.shape[-1] if array.ndim == 2 else 0)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"{name}: expected [k, D] vectors, got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    # Rows should already be unit length; renormalising guards against raw photo embeddings.
    return array / np.maximum(norms, 1e-12)


def combine(positive: np.ndarray, photos: np.ndarray) -> np.ndarray:
    """One unit query vector: normalise(sum(positive) + sum(photos)).

    Each input is a [k, D] array of unit rows (k may be 0; a single [D] vector is accepted too).
    Raises QueryError when there are no terms or they cancel out, ValueError on mismatched shapes.
    """
    groups = [_rows("positive", positive), _rows("photos", photos)]
    dims = {g.shape[1] for g in groups if g.shape[0]}
    if not dims:
        raise QueryError("the query has nothing to search for")
    if len(dims) > 1:
        raise ValueError(f"query vectors have different sizes: {sorted(dims)}")
    total = sum(g.sum(axis=0) for g in groups if g.shape[0])
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise QueryError("the query's terms cancel each other out")
    return (total / norm).astype(np.float32)


def median(values: np.ndarray) -> np.floating:
    """np.median of a 1-D array, to the bit, without partitioning all of it: a strided sample brackets the middle,
    and only the values inside the bracket are partitioned (a third of the time at 1M). Small arrays, and a bracket
    that misses the middle or NaNs, take np.median itself."""
    count = len(values)
    if count < SAMPLED_MEDIAN_MIN:
        return np.median(values)
    sample = np.sort(values[:: count // MEDIAN_SAMPLE])
    low, high = sample[len(sample) // 2 - MEDIAN_MARGIN], sample[len(sample) // 2 + MEDIAN_MARGIN]
    below = np.count_nonzero(values < low)
    inside = values[(values >= low) & (values <= high)]
    above = np.count_nonzero(values > high)
    ranks = [(count - 1) // 2 - below, count // 2 - below]  # the two middle values (the same one for an odd count)
    if below + len(inside) + above != count or ranks[0] < 0 or ranks[1] >= len(inside):
        return np.median(values)
    return np.mean(np.partition(inside, ranks)[ranks])  # as np.median: their mean, in the values' own type


def demote(scores: np.ndarray, negative_scores: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """Lower each photo's score by how much more than the library's median it matches each negative term.

    `negative_scores` is [terms, N]. Subtracting the negative's vector from the query instead would also remove
    what the two share ("vehicle" and "motorcycle"), so photos are demoted by their own excess similarity.
    """
    medians = np.array([[median(term)] for term in negative_scores], negative_scores.dtype)
    excess = negative_scores - medians
    np.clip(excess, 0.0, None, out=excess)
    return scores - weight * excess.sum(axis=0)
