"""The checkpoint a model package was made from, kept in the library (``checkpoints/``) so it can be fine-tuned.

Packages hold only ONNX graphs; the card's provenance records the source checkpoint (``checkpoint_record``), which is
what ``python -m trainer finetune`` rebuilds the trainable model from. Shared by the trainer and core imports.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, TypeVar

from core.errors import ImportFailed
from core.model_card import sha256_file
from core.model_card_types import CheckpointRecord

CHECKPOINT_DIR = "checkpoints"  # inside the library folder
R = TypeVar("R", bound=CheckpointRecord)


def checkpoint_record(
    path: Path, library: Path | None, sha256: str | None = None, record: type[R] = CheckpointRecord, **details: Any
) -> R:
    """Where a package's train-time weights are, as a ``record`` (a CheckpointRecord class) with ``details``: the
    file's name, sha256, size, absolute path, and ``kept`` (its path relative to ``library`` when it lies inside it,
    else None)."""
    path = Path(path).resolve()
    kept = None
    if library is not None:
        try:
            kept = path.relative_to(Path(library).resolve()).as_posix()
        except ValueError:
            kept = None
    return record(
        file=path.name,
        sha256=sha256 or sha256_file(path),
        size_bytes=path.stat().st_size,
        path=str(path),
        kept=kept,
        **details,
    )


def keep_checkpoint(source: Path, library: Path, sha256: str, *, name: str | None = None) -> Path:
    """The copy of checkpoint ``source`` in ``library/checkpoints`` (copied there unless it is there already).

    Only files that ``load_checkpoint`` accepted are kept: plain tensor dictionaries read with
    ``weights_only=True``. ``name`` is the copy's file name, replaced if it holds another file (a package id's own
    checkpoint); without it the source's name is used, and a different file of that name gets the hash in its
    name. The copy is written under a temporary name and renamed, so a cut copy never passes for a kept one.
    """
    source = Path(source).resolve()
    folder = Path(library) / CHECKPOINT_DIR
    if name is None and source.parent == folder.resolve():
        return source
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / (name or source.name)
    if name is None and dest.is_file() and sha256_file(dest) != sha256:
        dest = folder / f"{source.stem}-{sha256[:12]}{source.suffix}"
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        shutil.copyfile(source, partial)
        if sha256_file(partial) != sha256:
            raise ImportFailed(f"{source} changed while it was copied into {folder}")
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest
