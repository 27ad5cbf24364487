"""Thumbnail cache: small JPEG copies of photos kept in the library folder for fast grids.

Each thumbnail is keyed by the photo's absolute path, its size in bytes, its mtime and the requested size,
so an edited photo gets a new thumbnail and an unchanged one is decoded only once. Files are written to a
temporary name first and moved into place, so threads or processes racing on one photo never see half a file.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from PIL import Image

from core.errors import ImageDecodeError, LibraryError
from core.preprocess import load_image

THUMBNAIL_DIR = "thumbnails"
DEFAULT_SIZE = 256
JPEG_QUALITY = 85


class ThumbnailCache:
    """Make and find thumbnails of photos under `library/thumbnails/`."""

    def __init__(self, library: Path, quality: int = JPEG_QUALITY) -> None:
        self.root = Path(library) / THUMBNAIL_DIR
        self.quality = quality

    def path_for(self, photo: str | os.PathLike[str], size: int = DEFAULT_SIZE) -> Path:
        """Where the thumbnail of the photo as it is now on disk lives (it may not exist yet).

        Raises ImageDecodeError when the photo cannot be found.
        """
        if size < 1:
            raise ValueError(f"thumbnail size must be a positive number of pixels, got {size}")
        source = os.path.abspath(os.fspath(photo))
        try:
            stat = os.stat(source)
        except FileNotFoundError:
            raise ImageDecodeError(f"{source}: file not found") from None
        except OSError as exc:
            raise ImageDecodeError(f"{source}: cannot read: {exc.strerror or exc}") from exc
        key = f"{source}\0{stat.st_size}\0{stat.st_mtime_ns}\0{size}".encode("utf-8", "surrogatepass")
        digest = hashlib.sha1(key, usedforsecurity=False).hexdigest()
        return self.root / str(size) / digest[:2] / f"{digest}.jpg"

    def get(self, photo: str | os.PathLike[str], size: int = DEFAULT_SIZE) -> Path:
        """The thumbnail of `photo` that fits in a `size` x `size` box, made on first use.

        Aspect ratio and EXIF orientation are kept; photos smaller than the box are not enlarged.
        Raises ImageDecodeError when the photo is not a readable picture, LibraryError when the cache
        folder cannot be written.
        """
        target = self.path_for(photo, size)
        if target.is_file():
            return target
        return self._write(target, load_image(Path(photo), min_side=size), size)

    def save_from(self, photo: str | os.PathLike[str], image: Image.Image, size: int = DEFAULT_SIZE) -> Path:
        """Make the thumbnail from an image already decoded for something else (the indexer's decode)."""
        target = self.path_for(photo, size)
        return target if target.is_file() else self._write(target, image.copy(), size)

    def _write(self, target: Path, image: Image.Image, size: int) -> Path:
        # reducing_gap lets Pillow shrink big photos in a cheap integer step first; quality stays the same.
        image.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=2.0)
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            image.save(tmp, format="JPEG", quality=self.quality, optimize=False)
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise LibraryError(f"cannot write a thumbnail in {self.root}: {exc}") from exc
        return target

    def size_on_disk(self) -> int:
        """Bytes used by every cached thumbnail (all sizes)."""
        if not self.root.is_dir():
            return 0
        return sum(f.stat().st_size for f in self.root.rglob("*.jpg") if f.is_file())
