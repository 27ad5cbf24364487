"""The forgetting check: generic caption-to-photo retrieval on real photos outside the album, before and after.

A *generic bank* is a folder of photos with a caption beside each (``<stem>.txt``, the reinforcement tool's folder
convention), none of them from the album. Each caption is a query that has exactly one right photo; recall@5 is
the share of captions whose photo ranks in the top 5 of the bank. A fine-tune *forgets* when its recall@5 falls
by more than the limit (default one point, 0.01) below the base's on the same bank: that model is installed but
not activated unless the user insists (``--force``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import ImageDecodeError
from core.preprocess import load_image
from core.scanning import PHOTO_EXTENSIONS
from trainer.finetune.album import KEEP_SIDE, LOAD_SIDE, AlbumError
from trainer.finetune.evaluate import retrieval

DEFAULT_LIMIT = 0.01  # one point of recall@5
MIN_BANK = 6  # fewer photos than this and recall@5 says nothing (5 of 5 is always a hit)
EmbedTexts = Callable[[list[str]], np.ndarray]


@dataclass
class GenericBank:
    """Captioned real photos that are not in the album, decoded once."""

    root: Path
    names: list[str]
    images: list[Image.Image]
    captions: list[str]


@dataclass(frozen=True)
class ForgettingCheck:
    """Generic recall@5 of the base and of the fine-tune on one bank, and the limit it is held to."""

    photos: int
    before: float
    after: float
    limit: float = DEFAULT_LIMIT

    @property
    def drop(self) -> float:
        return self.before - self.after

    @property
    def forgets(self) -> bool:
        return self.drop > self.limit + 1e-9

    def summary(self) -> str:
        verdict = "FORGETS (over the limit)" if self.forgets else "within the limit"
        return (
            f"forgetting check, generic R@5 on {self.photos} photos outside the album: {self.before:.3f} -> "
            f"{self.after:.3f} (drop {self.drop:+.3f}, limit {self.limit:.3f}): {verdict}"
        )


def read_generic_bank(root: Path) -> GenericBank:
    """Every photo directly in ``root`` that has a non-empty ``<stem>.txt`` caption, in name order.

    Raises AlbumError when the folder is missing or holds fewer than ``MIN_BANK`` readable captioned photos.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise AlbumError(
            f"{root} is not a folder; a generic bank is a folder of photos, each with a <name>.txt caption"
        )
    names, images, captions = [], [], []
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in PHOTO_EXTENSIONS or not path.is_file():
            continue
        sidecar = path.with_suffix(".txt")
        caption = sidecar.read_text(encoding="utf-8", errors="replace").strip() if sidecar.is_file() else ""
        if not caption:
            continue
        try:
            image = load_image(path, min_side=LOAD_SIDE)
        except (ImageDecodeError, OSError):
            continue
        image.thumbnail((KEEP_SIDE, KEEP_SIDE))
        names.append(path.name)
        images.append(image)
        captions.append(caption[:2000])
    if len(images) < MIN_BANK:
        raise AlbumError(
            f"{root}: a generic bank needs at least {MIN_BANK} readable photos with a caption beside each "
            f"(photo.jpg + photo.txt); found {len(images)}"
        )
    return GenericBank(root, names, images, captions)


def generic_recall(images: np.ndarray, embed_queries: EmbedTexts, captions: list[str]) -> float:
    """Recall@5 of caption queries over the bank's photo embeddings ``[N, D]`` (caption i belongs to photo i)."""
    queries = np.asarray(embed_queries(list(captions)), dtype=np.float32)
    return retrieval(images, queries, list(range(len(captions))), ks=(5,))["recall@5"]
