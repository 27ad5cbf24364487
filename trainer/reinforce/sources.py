"""Where images and real captions come from: an image folder, an album, or webdataset tar shards.

* image folder: the photos directly inside a folder; a photo's real caption is the text of ``<stem>.txt`` beside
  it (photos without one are skipped, since no caption is ever invented);
* album: one sub-folder per label; the label becomes the real caption through a template chosen per photo;
* webdataset shards: ``.tar`` files (or a folder of them) whose samples hold an image and a ``txt`` caption.

A source is split into units, each of which becomes one output shard: ``shard_size`` photos for folders, one
input shard for tar sources. Units and keys depend only on the source and the settings, never on the process.
"""

from __future__ import annotations

import io
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from core.errors import ImageDecodeError, PhotoSeekError
from core.pixels import to_rgb
from core.preprocess import decode_photo
from core.raw import RAW_EXTENSIONS
from core.scanning import PHOTO_EXTENSIONS
from trainer.reinforce.augment import sample_rng
from trainer.reinforce.safetar import DEFAULT_LIMITS, Limits, ShardError, iter_samples
from trainer.reinforce.shards import IMAGE_EXTS

# Our own wording; several templates so an album's captions are not all the same sentence.
CAPTION_TEMPLATES: tuple[str, ...] = (
    "a photo of {}.",
    "a picture of {}.",
    "a photograph showing {}.",
    "an image of {}.",
    "a snapshot of {}.",
)
_STORED_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
_ORIENTATION_TAG = 0x0112


class SourceError(PhotoSeekError):
    """The source cannot be read or holds nothing usable."""


@dataclass(frozen=True)
class SourceSample:
    """One image to reinforce: output key, where it came from, real caption, label, and its bytes on demand."""

    key: str
    origin: str
    caption: str | None
    label: str
    load: Callable[[], tuple[bytes, str]]  # -> (stored image bytes, extension)


def stored_image(data: bytes, max_side: int | None) -> tuple[bytes, str]:
    """Image bytes as they go into a shard: the original file when it is already upright JPEG/PNG/WebP small
    enough, else an upright RGB JPEG (quality 95) at most ``max_side`` pixels on its long side."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                ext = _STORED_FORMATS.get(image.format or "")
                orientation = image.getexif().get(_ORIENTATION_TAG, 1)
                fits = max_side is None or max(image.size) <= max_side
                if ext is not None and orientation in (0, 1) and fits:
                    return data, ext
                if image.format == "JPEG" and max_side is not None:
                    image.draft("RGB", (max_side, max_side))  # decode at a reduced scale: fast, bounded memory
                image.load()
                return encode_upright(ImageOps.exif_transpose(image), max_side), "jpg"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"image too large: {exc}") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageDecodeError(f"not a readable image: {exc}") from exc


def encode_upright(image: Image.Image, max_side: int | None) -> bytes:
    """An upright image as RGB JPEG bytes, shrunk to ``max_side`` on its long side if larger."""
    image = to_rgb(image)
    if max_side is not None and max(image.size) > max_side:
        image = image.copy()
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95)
    return out.getvalue()


def _file_loader(path: Path, max_side: int | None) -> Callable[[], tuple[bytes, str]]:
    def load() -> tuple[bytes, str]:
        if path.suffix.lower() in RAW_EXTENSIONS:
            return encode_upright(decode_photo(path, max_side)[0], max_side), "jpg"
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageDecodeError(f"cannot read {path}: {exc}") from exc
        return stored_image(data, max_side)

    return load


def _photos_in(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in PHOTO_EXTENSIONS
    )


def sample_key(unit: int, index: int) -> str:
    """Output key of the ``index``-th sample of unit ``unit`` (no dots: webdataset splits keys at the first dot)."""
    return f"{unit:06d}_{index:06d}"


class Source(ABC):
    """A dataset to reinforce, split into units (output shards)."""

    kind: str

    @property
    @abstractmethod
    def num_units(self) -> int:
        """Number of units, i.e. of output shards."""

    @abstractmethod
    def samples(self, unit: int) -> Iterator[SourceSample]:
        """The samples of one unit, in order. Problems with single samples surface when a sample is loaded."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What the source is, for the dataset card."""


class _ListSource(Source):
    """A source whose samples are a sorted list of files, cut into units of ``shard_size``."""

    def __init__(self, root: Path, shard_size: int, max_side: int | None) -> None:
        if shard_size < 1:
            raise SourceError("shard size must be at least 1")
        self.root = Path(root)
        self.shard_size = shard_size
        self.max_side = max_side
        self.items = self._list()
        if not self.items:
            raise SourceError(f"{self.root}: no photos found for a {self.kind} source")

    @abstractmethod
    def _list(self) -> list[tuple[Path, str | None, str]]:
        """(photo, caption or None, label) of every sample, in a fixed order."""

    @property
    def num_units(self) -> int:
        return (len(self.items) + self.shard_size - 1) // self.shard_size

    def samples(self, unit: int) -> Iterator[SourceSample]:
        start = unit * self.shard_size
        for index, (path, caption, label) in enumerate(self.items[start : start + self.shard_size]):
            origin = self._origin(start + index, path)
            yield SourceSample(sample_key(unit, index), origin, caption, label, _file_loader(path, self.max_side))

    def _origin(self, position: int, path: Path) -> str:
        """Where the ``position``-th sample came from, as recorded in its shard."""
        return path.relative_to(self.root).as_posix()

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.root), "photos": len(self.items), "shard_size": self.shard_size}


class FolderSource(_ListSource):
    """Photos directly inside ``root``; captions from ``<stem>.txt`` beside each photo."""

    kind = "folder"

    def _list(self) -> list[tuple[Path, str | None, str]]:
        items = []
        for path in _photos_in(self.root):
            sidecar = path.with_suffix(".txt")
            caption = None
            if sidecar.is_file():
                caption = sidecar.read_text(encoding="utf-8", errors="replace").strip()[:2000] or None
            items.append((path, caption, ""))
        return items


def label_text(folder_name: str) -> str:
    """A folder name as a caption phrase: separators become spaces."""
    return " ".join(folder_name.replace("_", " ").replace("-", " ").split())


class AlbumSource(_ListSource):
    """One sub-folder per label; each photo's real caption is its label through one of ``templates``."""

    kind = "album"

    def __init__(
        self, root: Path, shard_size: int, max_side: int | None, *, seed: int = 0,
        templates: Sequence[str] = CAPTION_TEMPLATES,
    ) -> None:  # fmt: skip
        if not templates or any(t.count("{}") != 1 for t in templates):
            raise SourceError("caption templates must each contain exactly one '{}'")
        self.seed = seed
        self.templates = tuple(templates)
        super().__init__(root, shard_size, max_side)

    def _list(self) -> list[tuple[Path, str | None, str]]:
        folders = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        items: list[tuple[Path, str | None, str]] = []
        for folder in folders:
            label = label_text(folder.name)
            items.extend((path, None, label) for path in _photos_in(folder) if label)
        return items

    def samples(self, unit: int) -> Iterator[SourceSample]:
        for sample in super().samples(unit):
            pick = int(sample_rng(self.seed, sample.key, "template").integers(len(self.templates)))
            caption = self.templates[pick].format(sample.label)
            yield SourceSample(sample.key, sample.origin, caption, sample.label, sample.load)

    def describe(self) -> dict[str, Any]:
        labels = sorted({label for _, _, label in self.items})
        return {**super().describe(), "labels": labels, "caption_templates": list(self.templates)}


class PhotoListSource(AlbumSource):
    """Labelled photos handed over as a list (an album already read and split in memory), in the given order; like
    ``AlbumSource`` otherwise. ``photos`` holds (path, label, origin): the origin is recorded in each sample."""

    def __init__(
        self, photos: Sequence[tuple[Path, str, str]], shard_size: int, max_side: int | None, *, seed: int = 0,
        templates: Sequence[str] = CAPTION_TEMPLATES,
    ) -> None:  # fmt: skip
        self.photos = [(Path(path), label, origin) for path, label, origin in photos]
        super().__init__(Path(), shard_size, max_side, seed=seed, templates=templates)

    def _list(self) -> list[tuple[Path, str | None, str]]:
        return [(path, None, label) for path, label, _ in self.photos if label]

    def _origin(self, position: int, path: Path) -> str:
        return self.photos[position][2]

    def describe(self) -> dict[str, Any]:
        return {key: value for key, value in super().describe().items() if key != "path"}


class TarSource(Source):
    """Webdataset tar shards with an image and a ``txt`` caption per sample; one unit per input shard."""

    kind = "webdataset"

    def __init__(self, shards: Sequence[Path], max_side: int | None, limits: Limits = DEFAULT_LIMITS) -> None:
        self.shards = [Path(p) for p in shards]
        if not self.shards:
            raise SourceError("no tar shards given")
        self.max_side = max_side
        self.limits = limits

    @property
    def num_units(self) -> int:
        return len(self.shards)

    def samples(self, unit: int) -> Iterator[SourceSample]:
        shard = self.shards[unit]
        try:
            for index, (key, members) in enumerate(iter_samples(shard, self.limits)):
                ext = next((e for e in IMAGE_EXTS if e in members), None)
                raw_caption = members.get("txt")
                caption = raw_caption.decode("utf-8", errors="replace").strip()[:2000] if raw_caption else None
                yield SourceSample(
                    sample_key(unit, index),
                    f"{shard.name}:{key}",
                    caption,
                    "",
                    _bytes_loader(members.get(ext or ""), self.max_side),
                )
        except ShardError as exc:
            raise SourceError(str(exc)) from exc

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "shards": [p.name for p in self.shards]}


def _bytes_loader(data: bytes | None, max_side: int | None) -> Callable[[], tuple[bytes, str]]:
    def load() -> tuple[bytes, str]:
        if data is None:
            raise ImageDecodeError("the sample has no image member (jpg, jpeg, png or webp)")
        return stored_image(data, max_side)

    return load


def open_source(
    path: Path, *, kind: str = "auto", shard_size: int = 256, max_side: int | None = 1024, seed: int = 0
) -> Source:
    """The source at ``path``; ``kind`` auto picks tar shards, an album (sub-folders) or an image folder."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path} does not exist")
    tars = [path] if path.is_file() else sorted(path.glob("*.tar")) if path.is_dir() else []
    if kind == "auto":
        if tars:
            kind = "webdataset"
        elif path.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
            kind = "album" if not _photos_in(path) else "folder"
        else:
            kind = "folder"
    if kind == "webdataset":
        return TarSource(tars, max_side)
    if not path.is_dir():
        raise SourceError(f"{path} is not a folder")
    if kind == "album":
        return AlbumSource(path, shard_size, max_side, seed=seed)
    if kind == "folder":
        return FolderSource(path, shard_size, max_side)
    raise SourceError(f"unknown source kind {kind!r} (auto, folder, album, webdataset)")
