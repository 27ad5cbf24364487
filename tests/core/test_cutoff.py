"""The query-adaptive search cutoff (core/cutoff.py): pure numpy, calibrated by the model card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.cutoff import DEFAULT_CUTOFF, BankStats, bank_stats, match_count, matches
from core.errors import ModelPackageError
from core.model_card import CARD_FILE, CutoffSpec, parse_card


def _stats(mean: list[float], std: list[float]) -> BankStats:
    return BankStats(np.array(mean, np.float32), np.array(std, np.float32))


def test_matches_stop_where_scores_fall_away_from_the_best() -> None:
    scores = np.array([0.30, 0.52, 0.49, 0.41, 0.55])
    stats = _stats([0.2] * 5, [0.05] * 5)  # every photo stands out (z >= 2) for this query
    assert matches(scores, stats, CutoffSpec(gap=0.06, min_photo_z=-2.0)).tolist() == [4, 1, 2]
    assert matches(scores, stats, CutoffSpec(gap=0.2, min_photo_z=-2.0)).tolist() == [4, 1, 2, 3]
    assert match_count(scores, stats, CutoffSpec(gap=0.001, min_photo_z=-2.0)) == 1


def test_a_photo_that_matches_everyday_words_better_than_the_query_is_left_out() -> None:
    # The best photo for an absent thing: its score 0.40 is far below its usual similarity to generic captions.
    scores = np.array([0.40, 0.39, 0.10])
    stats = _stats([0.55, 0.30, 0.30], [0.05, 0.05, 0.05])
    assert matches(scores, stats, CutoffSpec(gap=0.06, min_photo_z=-2.0)).tolist() == [1]
    assert matches(scores, _stats([0.55, 0.55, 0.3], [0.05] * 3), CutoffSpec(0.06, -2.0)).tolist() == []


def test_negative_terms_move_the_cutoff_with_the_ranking() -> None:
    positive = np.array([0.50, 0.48, 0.47])
    stats = _stats([0.3] * 3, [0.05] * 3)
    spec = CutoffSpec(gap=0.05, min_photo_z=-2.0)
    assert matches(positive, stats, spec).tolist() == [0, 1, 2]
    demoted = positive - np.array([0.2, 0.0, 0.0])  # "-leash" pulled photo 0 down
    assert matches(demoted, stats, spec).tolist() == [1, 2]


def test_bank_stats_are_each_photos_similarity_to_the_bank() -> None:
    rng = np.random.default_rng(3)
    photos = rng.standard_normal((4, 8)).astype(np.float32)
    bank = rng.standard_normal((10, 8)).astype(np.float32)
    stats = bank_stats(photos, bank)
    np.testing.assert_allclose(stats.mean, (photos @ bank.T).mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(stats.std, (photos @ bank.T).std(axis=1), rtol=1e-5)


def test_empty_library_and_default_calibration() -> None:
    assert matches(np.zeros(0), _stats([], [])).tolist() == []
    scores = np.array([0.5, 0.5 - DEFAULT_CUTOFF.gap / 2, 0.5 - DEFAULT_CUTOFF.gap * 2])
    assert matches(scores, _stats([0.3] * 3, [0.05] * 3)).tolist() == [0, 1]  # no card calibration: the default


@pytest.mark.parametrize(
    ("scores", "message"),
    [(np.array([0.1, np.nan]), "finite"), (np.array([0.1, 0.2, 0.3]), "do not match"), (np.zeros((2, 1)), "match")],
)
def test_bad_scores_are_refused(scores: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        matches(scores, _stats([0.3, 0.3], [0.1, 0.1]))


def test_bad_bank_is_refused() -> None:
    with pytest.raises(ValueError, match="same width"):
        bank_stats(np.zeros((2, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="at least 2"):
        bank_stats(np.zeros((2, 4)), np.zeros((1, 4)))


def test_card_cutoff_is_optional_and_validated(tiny_package_dir: Path) -> None:
    data = json.loads((tiny_package_dir / CARD_FILE).read_text(encoding="utf-8"))
    assert parse_card(data).cutoff is None
    assert parse_card(data | {"cutoff": {"gap": 0.06, "min_photo_z": -2.25}}).cutoff == CutoffSpec(0.06, -2.25)
    for bad in ({"gap": 0, "min_photo_z": 0}, {"gap": 0.1}, [0.1, 0.2], {"gap": 0.1, "min_photo_z": 99}):
        with pytest.raises(ModelPackageError, match="cutoff|gap|min_photo_z"):
            parse_card(data | {"cutoff": bad})


def test_on_the_real_starter_a_photos_caption_finds_it_and_an_absent_thing_finds_little(starter_model) -> None:
    from core.tagging import TAG_TEMPLATES, default_vocabulary
    from tests.photo_corpus import load_photo

    names = ["chelsea_cat", "coffee", "astronaut", "rocket_launch_pad", "orange_dahlia", "chinese_pagoda"]
    images = starter_model.embed_images([load_photo(n, 512) for n in names])
    vocab = default_vocabulary()
    bank = starter_model.embed_texts([t.format(v) for v in vocab for t in TAG_TEMPLATES])
    bank = bank.reshape(len(vocab), len(TAG_TEMPLATES), -1).mean(axis=1)
    stats = bank_stats(images, bank / np.linalg.norm(bank, axis=1, keepdims=True))
    cutoff = starter_model.card.cutoff
    assert cutoff is not None  # the starter measures its own
    cat = starter_model.embed_texts(["a cat"], as_query=True)[0] @ images.T
    assert 0 in matches(cat, stats, cutoff).tolist() and match_count(cat, stats, cutoff) < len(names)
    giraffe = starter_model.embed_texts(["a giraffe"], as_query=True)[0] @ images.T
    assert match_count(giraffe, stats, cutoff) <= 2
