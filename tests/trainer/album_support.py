"""A small reinforced album of real corpus photos, with the real starter package as base and teacher."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from core.encoders import ModelPackage
from tests.photo_corpus import materialize
from trainer.finetune.album import read_album
from trainer.finetune.reinforce import build_album_dataset
from trainer.finetune.tuner import teacher_scale


def reinforced_album(
    root: Path, album: Mapping[str, Sequence[str]], base_dir: Path, vocabulary: Sequence[str], synthetic: int
) -> tuple[Path, ModelPackage]:
    """Label folders of the named photos under ``root/photos``, reinforced (2 augmentations a photo) into
    ``root/data`` with the base as the only teacher; returns (dataset folder, base)."""
    for label, names in album.items():
        materialize(root / "photos" / label, names, max_side=320)
    parsed, _ = read_album(root / "photos")
    base = ModelPackage(base_dir)
    teachers = [(base, teacher_scale(base))]
    out = build_album_dataset(parsed.photos, root / "data", teachers, vocabulary, augmentations=2, synthetic=synthetic)
    return out, base
