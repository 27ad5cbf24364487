"""A model card's optional measured tagging settings: old cards load without them, the tagger obeys them, and the
user's confirm/reject still moves each tag's threshold on top of them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import ModelPackageError
from core.index_db import PhotoIndex
from core.model_card import CARD_FILE, TaggingSpec, parse_card
from core.tagging import DEFAULT_Z, MAX_TAGS, OFFSET_RANGE, REJECT_STEP, Tagger


def _card_json(package: Path) -> dict:
    return json.loads((package / CARD_FILE).read_text(encoding="utf-8"))


def test_cards_without_tagging_still_load_and_use_the_defaults(tiny_package_dir: Path) -> None:
    data = _card_json(tiny_package_dir)
    assert "tagging" not in data or data["tagging"] is None
    assert parse_card(data).tagging is None


def test_tagging_settings_round_trip_through_the_card(tiny_package_dir: Path) -> None:
    data = _card_json(tiny_package_dir) | {"tagging": {"min_z": 3.0, "max_tags": 2}}
    card = parse_card(data)
    assert card.tagging == TaggingSpec(min_z=3.0, max_tags=2)
    assert parse_card(json.loads(json.dumps(card.to_json()))).tagging == card.tagging


@pytest.mark.parametrize(
    "bad",
    [
        "strict",
        {"min_z": 3.0},
        {"min_z": 0, "max_tags": 3},
        {"min_z": 2.5, "max_tags": 0},
        {"min_z": "2", "max_tags": 3},
    ],
)
def test_bad_tagging_settings_are_refused(tiny_package_dir: Path, bad: object) -> None:
    with pytest.raises(ModelPackageError, match="tagging|min_z|max_tags"):
        parse_card(_card_json(tiny_package_dir) | {"tagging": bad})


@pytest.fixture()
def tagger(tmp_path: Path):
    index = PhotoIndex(tmp_path)
    yield Tagger(index)
    index.close()


def _photo_and_tags(n_tags: int = 200) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """One photo vector that stands out for tags 0-3 (in that order) among n_tags one-hot tag vectors, and its z."""
    rng = np.random.default_rng(0)
    matrix = np.eye(n_tags, dtype=np.float32)
    photo = np.abs(rng.normal(0, 0.02, n_tags)).astype(np.float32)
    photo[:4] = [0.5, 0.45, 0.4, 0.35]
    photo /= np.linalg.norm(photo)
    scores = matrix @ photo
    z = (scores - scores.mean()) / scores.std()
    return photo[None, :], [f"tag{i}" for i in range(n_tags)], matrix, z


def test_the_cards_max_tags_and_min_z_replace_the_defaults(tagger: Tagger) -> None:
    photo, tags, matrix, z = _photo_and_tags()
    assert z[3] > DEFAULT_Z and np.sort(z)[-5] < DEFAULT_Z  # exactly tags 0-3 pass the default threshold
    default = [t for t, _ in tagger.suggest(photo, tags, matrix)[0]]
    assert default == ["tag0", "tag1", "tag2", "tag3"] and len(default) <= MAX_TAGS
    two = [t for t, _ in tagger.suggest(photo, tags, matrix, TaggingSpec(min_z=DEFAULT_Z, max_tags=2))[0]]
    assert two == ["tag0", "tag1"]
    strict = TaggingSpec(min_z=float(z[2] - 0.01), max_tags=8)
    assert [t for t, _ in tagger.suggest(photo, tags, matrix, strict)[0]] == ["tag0", "tag1", "tag2"]


def test_a_rejection_still_raises_that_tags_threshold_under_the_cards_settings(tagger: Tagger) -> None:
    photo, tags, matrix, z = _photo_and_tags()
    spec = TaggingSpec(min_z=float(z[2] - 0.1), max_tags=3)  # tag2 just passes
    assert [t for t, _ in tagger.suggest(photo, tags, matrix, spec)[0]] == ["tag0", "tag1", "tag2"]
    tagger.add_to_vocabulary("tag2")
    tagger.tables.nudge_offset("tag2", REJECT_STEP, *OFFSET_RANGE)  # what rejecting tag2 on a photo does to it
    assert [t for t, _ in tagger.suggest(photo, tags, matrix, spec)[0]] == ["tag0", "tag1"]
