"""Broader tags implied by a given one (core/tag_hierarchy.py): the bundled table, the closure, and the tagger adding
generic words on real photos while the user's rejections still hold them back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import LibraryError
from core.index_db import PhotoIndex
from core.model_card import TaggingSpec
from core.tag_hierarchy import ancestor_indices, default_parents, parse_parents
from core.tagging import OFFSET_RANGE, REJECT_STEP, Tagger, default_vocabulary
from tests.photo_corpus import load_photo


@pytest.fixture()
def tagger(tmp_path: Path):
    index = PhotoIndex(tmp_path)
    yield Tagger(index)
    index.close()


def test_every_word_of_the_bundled_table_is_a_default_vocabulary_tag() -> None:
    vocabulary = set(default_vocabulary())
    parents = default_parents()
    assert len(parents) > 50
    words = set(parents) | {p for ps in parents.values() for p in ps}
    assert words <= vocabulary, sorted(words - vocabulary)


def test_the_bundled_table_has_no_cycle() -> None:
    tags = sorted(set(default_parents()) | {p for ps in default_parents().values() for p in ps})
    for tag, ancestors in zip(tags, ancestor_indices(tags, default_parents()), strict=True):
        assert tags.index(tag) not in ancestors


def test_ancestors_are_transitive_and_skip_words_outside_the_vocabulary() -> None:
    parents = parse_parents("# comment\npuppy\tdog\ndog\tanimal,pet\nkitten\tcat\ncat\tanimal\n")
    tags = ["puppy", "animal", "kitten", "pet"]  # no "dog", no "cat": their parents still reach puppy and kitten
    assert ancestor_indices(tags, parents) == [[1, 3], [], [1], []]


@pytest.mark.parametrize("line", ["puppy dog", "\tdog", "puppy\t", "a\tb\tc"])
def test_a_bad_line_is_refused_with_its_number(line: str) -> None:
    with pytest.raises(LibraryError, match="line 2"):
        parse_parents(f"puppy\tdog\n{line}\n")


def _one_hot_photo(tags: list[str], strong: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """A photo vector over one-hot tag vectors: the named tags score as given, the rest near zero."""
    matrix = np.eye(len(tags), dtype=np.float32)
    photo = np.abs(np.random.default_rng(0).normal(0, 0.02, len(tags))).astype(np.float32)
    for tag, score in strong.items():
        photo[tags.index(tag)] = score
    return (photo / np.linalg.norm(photo))[None, :], matrix


def test_a_given_tag_brings_its_parents_beyond_max_tags_and_a_rejection_holds_one_back(tagger: Tagger) -> None:
    tags = ["puppy", "dog", "animal", "pet"] + [f"filler{i}" for i in range(100)]
    photo, matrix = _one_hot_photo(tags, {"puppy": 0.6, "dog": 0.1, "animal": 0.08})
    spec = TaggingSpec(min_z=2.5, max_tags=1)
    assert [t for t, _ in tagger.suggest(photo, tags, matrix, spec)[0]] == ["puppy", "dog", "animal"]
    for _ in range(int(OFFSET_RANGE[1] / REJECT_STEP)):  # the user rejected "animal" again and again
        tagger.tables.nudge_offset("animal", REJECT_STEP, *OFFSET_RANGE)
    assert [t for t, _ in tagger.suggest(photo, tags, matrix, spec)[0]] == ["puppy", "dog"]


def test_a_parent_below_the_photos_average_tag_is_not_implied(tagger: Tagger) -> None:
    tags = ["puppy", "dog", "animal"] + [f"filler{i}" for i in range(100)]
    photo, matrix = _one_hot_photo(tags, {"puppy": 0.6, "dog": 0.1, "animal": 0.0})
    assert [t for t, _ in tagger.suggest(photo, tags, matrix, TaggingSpec(2.5, 3))[0]] == ["puppy", "dog"]


def test_the_starter_tags_real_photos_with_the_generic_word(tagger: Tagger, starter_model) -> None:
    """The coffee photo's own z-scores put "drink" outside the card's best tags: the hierarchy adds it."""
    tags, matrix = tagger.tag_matrix(starter_model)
    vectors = starter_model.embed_images([load_photo(n, max_side=512) for n in ("coffee", "chelsea_cat")])
    spec = starter_model.card.tagging
    coffee, cat = ([t for t, _ in row] for row in tagger.suggest(vectors, tags, matrix, spec))
    assert "coffee" in coffee and "drink" in coffee and len(coffee) > spec.max_tags, coffee
    assert "cat" in cat and "animal" in cat, cat
