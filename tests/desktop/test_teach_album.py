"""The album the app teaches from: concepts as label folders, entries linked or copied from the user's photos (which
are never changed), the trainer's minimum counts, and names that cannot be labels."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from desktop.teach_album import ConceptNameError, TeachAlbum, concept_folder_name
from tests.photo_corpus import materialize


@pytest.fixture()
def photos(tmp_path: Path) -> dict[str, Path]:
    return materialize(tmp_path / "photos", ["coffee", "book_page", "moon_surface"], max_side=128)


def state(path: Path) -> tuple[str, float, int]:
    stat = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_mtime, stat.st_mode


def test_photos_are_linked_into_concept_folders_and_never_changed(tmp_path: Path, photos: dict[str, Path]) -> None:
    before = {p: state(p) for p in photos.values()}
    album = TeachAlbum(tmp_path / "lib")
    result = album.add("grandma's  garden", [photos["coffee"], photos["book_page"]])
    assert result.added == 2 and not result.failed
    assert album.concepts() == {"grandma's_garden": 2}
    entries = sorted((album.root / "grandma's_garden").iterdir())
    assert all(os.path.samefile(e, photos[e.name.split("-")[0]]) for e in entries)  # hard links: no extra space
    again = album.add("Grandma's Garden", [photos["coffee"]])  # the same concept in other case: same folder
    assert again.added == 0 and again.already == 1 and album.concepts() == {"grandma's_garden": 2}
    assert {p: state(p) for p in photos.values()} == before


def test_photos_are_copied_where_links_fail(
    tmp_path: Path, photos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(_source: object, _target: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    album = TeachAlbum(tmp_path / "lib")
    assert album.add("cups", [photos["coffee"]]).added == 1
    (entry,) = (album.root / "cups").iterdir()
    assert not os.path.samefile(entry, photos["coffee"]) and entry.read_bytes() == photos["coffee"].read_bytes()
    missing = album.add("cups", [tmp_path / "gone.jpg"])
    assert missing.added == 0 and missing.failed and missing.failed[0][0] == tmp_path / "gone.jpg"


def test_the_shortfall_counts_photos_and_concepts_still_needed(tmp_path: Path, photos: dict[str, Path]) -> None:
    album = TeachAlbum(tmp_path / "lib")
    assert not album.shortfall().ready and album.shortfall().labels == 2
    counts = album.counts_with("cups", [photos["coffee"]])
    assert counts == {"cups": 1} and album.concepts() == {}  # nothing written by asking
    short = album.shortfall(counts)
    assert short.photos == {"cups": 1} and short.labels == 1
    assert "1 more photo of “cups”" in short.message() and "1 more concept" in short.message()
    album.add("cups", [photos["coffee"], photos["book_page"]])
    album.add("space", [photos["moon_surface"]])
    assert album.shortfall().photos == {"space": 1} and album.shortfall().labels == 0
    album.add("space", [photos["coffee"]])
    assert album.shortfall().ready and album.shortfall().message() == ""


@pytest.mark.parametrize(("name", "why"), [("  ", "Give the concept"), ("a/b", "cannot contain"), (".x", "dot"),
                                           ("x" * 61, "under 60")])  # fmt: skip
def test_names_that_cannot_be_labels_say_why(name: str, why: str) -> None:
    with pytest.raises(ConceptNameError, match=why):
        concept_folder_name(name)
