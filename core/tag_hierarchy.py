"""Broader tags implied by narrower ones ("a puppy is a dog is an animal"): the bundled table
assets/vocabulary_parents.tsv, and the closure the tagger uses to add generic words people give.

A model scores a specific tag ("puppy") well above its generic parent ("animal") when the photo shows one, so a
photo that earns "puppy" is not always given "animal" by its own z-score; the table fills that in.
"""

from __future__ import annotations

from functools import cache

from core.errors import LibraryError
from core.paths import assets_dir

PARENTS_FILE = "vocabulary_parents.tsv"


def parse_parents(text: str) -> dict[str, tuple[str, ...]]:
    """`tag<TAB>parent,parent` lines (comments start with #) -> {tag: parents}. Raises LibraryError on a bad line."""
    parents: dict[str, tuple[str, ...]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        words = tuple(w.strip() for w in fields[-1].split(",") if w.strip())
        if len(fields) != 2 or not fields[0].strip() or not words:
            raise LibraryError(f"{PARENTS_FILE} line {number}: expected 'tag<TAB>parent[,parent...]', got {line!r}")
        parents[fields[0].strip()] = words
    return parents


@cache
def default_parents() -> dict[str, tuple[str, ...]]:
    """The bundled tag -> parents table."""
    return parse_parents((assets_dir() / PARENTS_FILE).read_text(encoding="utf-8"))


def ancestor_indices(tags: list[str], parents: dict[str, tuple[str, ...]]) -> list[list[int]]:
    """For each tag of a vocabulary, the indices of its ancestors that are in the same vocabulary (transitively,
    nearest first); a parent missing from the vocabulary still passes its own parents on."""
    position = {tag: i for i, tag in enumerate(tags)}
    result = []
    for tag in tags:
        seen: list[str] = []
        todo = list(parents.get(tag, ()))
        while todo:
            parent = todo.pop(0)
            if parent not in seen and parent != tag:
                seen.append(parent)
                todo.extend(parents.get(parent, ()))
        result.append([position[p] for p in seen if p in position])
    return result
