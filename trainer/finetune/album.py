"""An album to fine-tune on: one sub-folder per label, photos inside; validation and a stratified split."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from core.album_rules import MIN_LABELS, MIN_PER_LABEL  # shared with the app's Teach dialog
from core.errors import ImageDecodeError, PhotoSeekError
from core.preprocess import load_image
from core.scanning import PHOTO_EXTENSIONS
from trainer.reinforce.sources import label_text

LOAD_SIDE = 448  # JPEGs are decoded at a reduced scale that keeps at least this many pixels on the short side
KEEP_SIDE = 640  # and kept in memory at most this long (models take <= 256 px; 2.5:1 photos keep 256 px)


class AlbumError(PhotoSeekError):
    """The album cannot be fine-tuned on; the message says what to change."""


@dataclass(frozen=True)
class AlbumPhoto:
    """One readable photo of the album and its label (the name of its top-level folder)."""

    path: Path
    label: str
    sha256: str


@dataclass
class Album:
    """The readable photos by label, and the files that were skipped with the reason."""

    root: Path
    photos: list[AlbumPhoto]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return sorted({p.label for p in self.photos})

    def counts(self) -> dict[str, int]:
        return {label: sum(p.label == label for p in self.photos) for label in self.labels}

    def digest(self) -> str:
        """sha256 over (label, file name, content hash) of every photo: the album's identity in lineage records."""
        h = hashlib.sha256()
        for p in sorted(self.photos, key=lambda p: (p.label, p.path.name, p.sha256)):
            h.update(f"{p.label}\0{p.path.name}\0{p.sha256}\n".encode())
        return h.hexdigest()


def label_of(folder_name: str) -> str:
    """The search words of a label folder: ``grandmas_garden`` -> ``grandmas garden`` (case kept for display);
    the same rule as the reinforcement tool's album source, so labels agree across both."""
    return label_text(folder_name)


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_album(
    root: Path, *, open_image: Callable[[Path], Image.Image] | None = None
) -> tuple[Album, dict[Path, Image.Image]]:
    """Validate ``root`` and decode its photos (shrunk to at most ``KEEP_SIDE`` px).

    Label folders are the top-level sub-folders (photos in deeper folders count for their top-level label);
    hidden entries are ignored; photos that cannot be decoded are skipped and listed in ``Album.skipped``.
    Raises AlbumError when the folder is missing, or fewer than two labels have at least two readable photos.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise AlbumError(f"{root} is not a folder; an album is a folder with one sub-folder of photos per label")
    opener = open_image or (lambda p: load_image(p, min_side=LOAD_SIDE))
    photos: list[AlbumPhoto] = []
    images: dict[Path, Image.Image] = {}
    skipped: list[tuple[Path, str]] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            if entry.suffix.lower() in PHOTO_EXTENSIONS:
                skipped.append((entry, "not inside a label folder"))
            continue
        label = label_of(entry.name)
        for folder, dirs, files in os.walk(entry):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                path = Path(folder) / name
                if name.startswith(".") or path.suffix.lower() not in PHOTO_EXTENSIONS:
                    continue
                try:
                    image = opener(path)
                except (ImageDecodeError, OSError) as exc:
                    skipped.append((path, str(exc)))
                    continue
                image.thumbnail((KEEP_SIDE, KEEP_SIDE))
                photos.append(AlbumPhoto(path, label, _file_hash(path)))
                images[path] = image
    album = Album(root, photos, skipped)
    _check(album, root)
    return album, images


def _check(album: Album, root: Path) -> None:
    counts = album.counts()
    usable = {label: n for label, n in counts.items() if n >= MIN_PER_LABEL}
    few = {label: n for label, n in counts.items() if n < MIN_PER_LABEL}
    where = f"{root}"
    if album.skipped and not album.photos:
        raise AlbumError(f"{where}: none of the {len(album.skipped)} photo files could be read (first: "
                         f"{album.skipped[0][0].name}: {album.skipped[0][1]})")  # fmt: skip
    if not counts:
        raise AlbumError(
            f"{where} has no photos in label folders: make one sub-folder per label (e.g. {root}/Miso/, "
            f"{root}/receipts/) and put at least {MIN_PER_LABEL} photos in each"
        )
    if few:
        listed = ", ".join(f"'{label}' ({n})" for label, n in sorted(few.items()))
        raise AlbumError(
            f"{where}: every label needs at least {MIN_PER_LABEL} readable photos; too few in {listed}"
            + (f" ({len(album.skipped)} unreadable files skipped)" if album.skipped else "")
        )
    if len(usable) < MIN_LABELS:
        raise AlbumError(
            f"{where}: fine-tuning needs at least {MIN_LABELS} labels (sub-folders with photos) so the model "
            f"learns what tells them apart; found {len(usable)}: {', '.join(usable) or 'none'}"
        )
    lowered: dict[str, str] = {}
    for label in counts:
        other = lowered.setdefault(label.lower(), label)
        if other != label:
            raise AlbumError(f"{where}: labels '{other}' and '{label}' differ only in case; merge the folders")


def split_album(album: Album, val_fraction: float = 0.2, seed: int = 0) -> tuple[list[AlbumPhoto], list[AlbumPhoto]]:
    """Stratified, seeded train/validation split: per label round(fraction * n) photos (at least 1, and at least
    one left to train on) go to validation."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"the validation fraction must lie strictly between 0 and 1, got {val_fraction}")
    train, val = [], []
    rng = random.Random(seed)
    for label in album.labels:
        members = sorted((p for p in album.photos if p.label == label), key=lambda p: (p.sha256, str(p.path)))
        rng.shuffle(members)
        n_val = min(len(members) - 1, max(1, round(val_fraction * len(members))))
        val.extend(members[:n_val])
        train.extend(members[n_val:])
    return train, val
