"""Which models a fine-tune uses and makes: its base (by default the active model, or the base of an active
fine-tune), its teachers, the tuner for the base's family, the number of steps, and the new model's id."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from core.encoders import ModelPackage
from core.errors import ModelPackageError
from core.model_store import ModelStore
from trainer.finetune.album import Album
from trainer.finetune.mobileclip import MobileCLIPTuner, is_mobileclip
from trainer.finetune.options import FinetuneOptions
from trainer.finetune.starter import StarterTuner
from trainer.finetune.tuner import FinetuneError, Log, Tuner


def _slug(text: str) -> str:
    """An album folder's name as the tail of a model id."""
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")[:40] or "album"


def teacher_models(store: ModelStore, base: ModelPackage, wanted: Sequence[str] | None, log: Log) -> list[ModelPackage]:
    """The base first, then the other installed models (not earlier album fine-tunes, unless named)."""
    installed = {m.id: m for m in store.list()}
    if wanted is not None:
        unknown = sorted(set(wanted) - set(installed))
        if unknown:
            raise ModelPackageError(f"unknown teacher(s) {', '.join(unknown)}; installed: {', '.join(installed)}")
    out = [base]
    for model_id, model in installed.items():
        if model_id == base.id or (wanted is None and model.card.architecture.finetune is not None):
            continue
        if wanted is not None and model_id not in wanted:
            continue
        try:
            out.append(ModelPackage(model.dir))
        except ModelPackageError as exc:
            log(f"not using '{model_id}' as a teacher: {exc}")
    return out


def training_steps(options: FinetuneOptions, n_train: int, batch: int, default: int) -> int:
    if options.steps is not None:
        return options.steps
    if options.epochs is not None:
        return max(1, options.epochs * max(1, n_train // batch))
    return default


def make_tuner(base: ModelPackage, library: Path, options: FinetuneOptions, log: Log) -> Tuner:
    """The family-specific part of fine-tuning ``base``; raises FinetuneError for a base that cannot be trained."""
    if is_mobileclip(base):
        return MobileCLIPTuner(
            base, library, image_blocks=options.image_blocks, text_layers=options.train_layers, log=log,
            text_only=options.text_only,
        )  # fmt: skip
    return StarterTuner(base, options.train_layers, text_only=options.text_only)


def default_base(store: ModelStore) -> str:
    """The active model, or, when that is itself an album fine-tune, the model it was fine-tuned from: running the
    command again re-trains from the same base instead of stacking fine-tunes (``--base`` can still stack them)."""
    active = store.find(store.active_id())
    finetune = active.card.architecture.finetune
    installed = {m.id for m in store.list()}
    return finetune.base if finetune is not None and finetune.base in installed else active.id


def new_model_id(options: FinetuneOptions, base_id: str, album: Album, store: ModelStore) -> str:
    model_id = options.model_id or f"{base_id}-{_slug(album.root.resolve().name)}"
    if model_id == base_id:
        raise FinetuneError(f"the fine-tuned model needs another id than its base '{base_id}'")
    for model in store.list():
        if model.id == model_id and model.card.architecture.finetune is None:
            raise FinetuneError(f"'{model_id}' is an installed model that no fine-tune made; choose another --name")
    return model_id
