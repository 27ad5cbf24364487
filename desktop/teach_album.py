"""The album the app teaches from: ``<library>/albums/<album>/<concept>/`` with one entry per photo the user taught.

Entries are hard links to the user's photos where the file system allows it (no extra space, and the photo
survives if the original is moved or deleted), else copies; the originals are only ever read. Concept folders
keep the user's words ("grandma's garden" -> ``grandma's_garden``) so the trainer reads them back as the same
label. No Qt and no trainer here: the dialog and the tests use it directly.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.album_rules import AlbumShortfall, album_shortfall
from core.scanning import PHOTO_EXTENSIONS

ALBUMS_FOLDER = "albums"
DEFAULT_ALBUM = "taught"  # the app keeps one album per library; every fine-tune sees all its concepts
MAX_CONCEPT_LENGTH = 60


class ConceptNameError(ValueError):
    """A concept name that cannot be a label; the message says why."""


@dataclass
class AddResult:
    """What adding photos to a concept did."""

    added: int = 0
    already: int = 0  # the concept had them
    failed: list[tuple[Path, str]] = field(default_factory=list)


def concept_folder_name(concept: str) -> str:
    """A concept's folder name: its words joined by '_' (the trainer turns '_' back into spaces).

    Raises ConceptNameError for an empty name, a path separator or a name too long.
    """
    words = " ".join(concept.split())
    if not words:
        raise ConceptNameError("Give the concept a name, for example “Miso” or “grandma's garden”.")
    if any(sep in words for sep in ("/", "\\", "\0")) or words.startswith("."):
        raise ConceptNameError("A concept name cannot contain / or \\ or start with a dot.")
    if len(words) > MAX_CONCEPT_LENGTH:
        raise ConceptNameError(f"Keep the concept name under {MAX_CONCEPT_LENGTH} characters.")
    return words.replace(" ", "_")


def concept_label(folder_name: str) -> str:
    """The words of a concept folder, as the trainer reads them (separators become spaces)."""
    return " ".join(folder_name.replace("_", " ").replace("-", " ").split())


def is_photo(path: Path) -> bool:
    return path.suffix.lower() in PHOTO_EXTENSIONS and not path.name.startswith(".")


def photos_in(folder: Path) -> list[Path]:
    """The photos under ``folder`` (sub-folders included, hidden entries left out), in name order."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(root) / name for name in sorted(files) if is_photo(Path(name)))
    return found


def _entry_name(source: Path) -> str:
    """An album entry's file name: the photo's name plus a short hash of its full path, so two photos with one
    name from two folders both fit, and the same photo taught twice is found again."""
    tag = hashlib.sha256(os.fsencode(source.resolve())).hexdigest()[:10]
    return f"{source.stem}-{tag}{source.suffix.lower()}"


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, FAT, no permission to link: a copy instead
        shutil.copyfile(source, target)


class TeachAlbum:
    """One album folder: its concepts, adding photos to one, and whether it can be trained on."""

    def __init__(self, library: Path, name: str = DEFAULT_ALBUM) -> None:
        self.root = Path(library) / ALBUMS_FOLDER / name

    @property
    def name(self) -> str:
        return self.root.name

    def concepts(self) -> dict[str, int]:
        """Photos per concept (folder name -> count), concepts in name order; {} for a new album."""
        if not self.root.is_dir():
            return {}
        folders = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        return {folder.name: len(photos_in(folder)) for folder in folders}

    def folder_for(self, concept: str) -> str:
        """The folder of ``concept``: an existing one whose words match in any case, else a new name."""
        wanted = concept_folder_name(concept)
        for existing in self.concepts():
            if concept_label(existing).lower() == concept_label(wanted).lower():
                return existing
        return wanted

    def add(self, concept: str, photos: Iterable[Path]) -> AddResult:
        """Put ``photos`` into ``concept`` (created when new); photos it has already are left as they are."""
        folder = self.root / self.folder_for(concept)
        folder.mkdir(parents=True, exist_ok=True)
        result = AddResult()
        for source in photos:
            source = Path(source)
            target = folder / _entry_name(source)
            if target.exists():
                result.already += 1
                continue
            try:
                _link_or_copy(source, target)
            except OSError as exc:
                result.failed.append((source, exc.strerror or str(exc)))
                continue
            result.added += 1
        return result

    def counts_with(self, concept: str, photos: Iterable[Path]) -> dict[str, int]:
        """Photos per concept once ``photos`` are added to ``concept`` (nothing is written)."""
        counts = self.concepts()
        folder = self.folder_for(concept)
        have = {p.name for p in photos_in(self.root / folder)} if folder in counts else set()
        new = {_entry_name(Path(p)) for p in photos} - have
        counts[folder] = counts.get(folder, 0) + len(new)
        return counts

    def shortfall(self, counts: dict[str, int] | None = None) -> AlbumShortfall:
        """What the album (or ``counts``) lacks before it can be trained on, by concept words."""
        counts = self.concepts() if counts is None else counts
        return album_shortfall({concept_label(folder): n for folder, n in counts.items()})
