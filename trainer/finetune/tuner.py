"""The seam between the album fine-tune pipeline and a base family: the ``Tuner`` protocol and what all families
share (the error they raise, the parity sentences, a teacher's logit scale, a text-only package's image side).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from core.encoders import ModelPackage
from core.errors import PhotoSeekError
from core.model_card import (
    CARD_FILE,
    ModelCard,
    SharedImageSpec,
    image_key,
    image_side_files,
    is_text_side_file,
    write_card,
)
from core.model_card_types import Architecture, MobileCLIPArchitecture, Provenance
from trainer.finetune.reinforce import AlbumReinforcement
from trainer.train.data import ReinforcedTensors

Log = Callable[[str], None]
Evaluate = Callable[[torch.nn.Module], dict[str, float]]
CHECK_TEXTS = ("a dog on a beach at sunset", "receipts", "grandma's garden in spring, with roses")
STARTER_TEACHER_SCALE = 30.0  # NLL-optimal image->caption scale of the starter on the 17 PyPI corpus photos: 25-40


class FinetuneError(PhotoSeekError):
    """The base model cannot be fine-tuned (unsupported family, weights that cannot be rebuilt)."""


def teacher_scale(package: ModelPackage) -> float:
    """A teacher's fixed logit scale: its card's ``logit_scale`` (MobileCLIP: 100), else the starter's value."""
    arch = package.card.architecture
    value = arch.logit_scale if isinstance(arch, MobileCLIPArchitecture) else None
    return float(min(value, 100.0)) if value is not None and value > 0 else STARTER_TEACHER_SCALE


def keep_base_image_side(staged: Path, card: ModelCard, base: ModelPackage) -> ModelCard:
    """Make a staged text-only fine-tune embed photos exactly as its base: the base's image-side files byte for byte
    (an export may write the same tower in other bytes, or without the base's external data) and image specs, and
    the card says so. Core then keeps one store of photo embeddings for both (``core.model_card.image_key``):
    switching between them embeds nothing. Returns the card, written to ``staged`` again (still provisional)."""
    for path in staged.iterdir():
        if path.is_file() and path.name != CARD_FILE and not is_text_side_file(card, path.name):
            path.unlink()
    for name in image_side_files(base.card):
        shutil.copyfile(base.dir / name, staged / name)
    card = dataclasses.replace(
        card,
        embedding_dim=base.card.embedding_dim,
        preprocess=base.card.preprocess,
        image_encoder=base.card.image_encoder,
        image_check=base.card.image_check,
        shares_image_of=SharedImageSpec(base.id, image_key(base.card)),
    )
    write_card(staged, card)
    return card


class Tuner(Protocol):
    """What fine-tuning one base family takes: a student to train, its data and validation, and the package it
    becomes. The pipeline calls ``student_data`` before ``evaluator`` and ``write_package``, then ``commit`` once
    the package is installed or ``abort`` when it is not."""

    family: str
    default_lr: float
    default_steps: int
    default_anchor: float  # the text anchor's weight when the options give none (0: no anchor)

    def describe(self) -> dict[str, object]:
        """What trained, for the card's ``architecture.finetune``."""

    def student_data(
        self,
        reinf: AlbumReinforcement,
        dataset_dir: Path,
        device: torch.device,
        log: Log,
        extra_captions: Sequence[str] = (),
    ) -> tuple[torch.nn.Module, ReinforcedTensors]:
        """The student (on ``device``) and the tensors it trains on. ``extra_captions`` join the student's caption
        table after the dataset's captions (row ``len(reinf.captions) + i`` is extra caption ``i``): texts the loss
        reads beside the data, such as the text anchor's."""

    def evaluator(
        self, val_images: list[Image.Image], val_base: np.ndarray, truth: list[int], labels: list[str]
    ) -> Evaluate:
        """Validation accuracy of the torch student during training."""

    def generic_evaluator(self, images: list[Image.Image], captions: list[str]) -> Evaluate:
        """The torch student's generic caption -> photo recall@5 on a bank (key ``forgetting.GENERIC_KEY``)."""

    def write_package(
        self,
        staged: Path,
        *,
        model_id: str,
        name: str,
        architecture: Architecture,
        provenance: Provenance,
        check_images: list,
    ) -> ModelCard:
        """Fill ``staged`` with the package files; returns the provisional card (not yet hashed)."""

    def commit(self) -> None:
        """The package is installed: keep what lives outside it."""

    def abort(self) -> None:
        """The package was not installed: drop what was written outside the staging folder."""
