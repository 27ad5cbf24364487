"""Album fine-tuning of the starter family (ConSE image tower + MiniLM text tower): the ``Tuner`` that
``trainer.train.finetune`` runs for it. What trains and why is in ``album_student``; the package is written by
``album_export`` (the base graph + adapter, the fine-tuned text tower).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.encoders import ModelPackage
from core.model_card import ModelCard
from trainer.train.album_export import write_album_package
from trainer.train.album_reinforce import AlbumReinforcement, label_prompts
from trainer.train.album_student import AlbumStudent, base_text_state, load_base_text_encoder, teacher_scale
from trainer.train.data import ReinforcedTensors
from trainer.train.evaluate import zero_shot

Log = Callable[[str], None]
Evaluate = Callable[[torch.nn.Module], dict[str, float]]


def caption_tokens(base: ModelPackage, texts: Sequence[str]) -> torch.Tensor:
    """The base tokenizer's ids of ``texts`` as a tensor ``[N, L]``."""
    return torch.from_numpy(base.tokenizer(list(texts))["input_ids"])


def student_data(reinf: AlbumReinforcement, base: ModelPackage, student: AlbumStudent) -> ReinforcedTensors:
    """The student's view: frozen-trunk outputs are the base teacher's columns; texts are caption-table rows; the
    label captions' distillation targets are the label prototypes (``AlbumReinforcement.distill_caption_emb``)."""
    student.cache_captions(caption_tokens(base, reinf.captions))
    cols = reinf.columns(base.id)
    return ReinforcedTensors(
        inputs=reinf.image_emb[:, :, cols].contiguous(),
        image_emb=reinf.image_emb,
        caption_tokens=torch.arange(len(reinf.captions)),
        caption_emb=reinf.distill_caption_emb(),
        real=reinf.real,
        syn=reinf.syn,
        labels=reinf.labels,
        keys=reinf.keys,
    )


def val_evaluator(base: ModelPackage, val_base: np.ndarray, truth: list[int], labels: list[str]) -> Evaluate:
    """Zero-shot accuracy of the torch student on the validation photos, for the training curves."""
    prompts = [p for label in labels for p in label_prompts(label)]
    tokens = caption_tokens(base, prompts)
    inputs = torch.from_numpy(val_base)

    @torch.no_grad()
    def evaluate(student: AlbumStudent) -> dict[str, float]:
        device = student.logit_scale.device
        images = student.encode_image(inputs.to(device)).float().cpu().numpy()
        texts = torch.nn.functional.normalize(student.encode_text(tokens.to(device)).float(), dim=-1).cpu().numpy()
        matrix = texts.reshape(len(labels), -1, texts.shape[-1]).mean(axis=1)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        scores = zero_shot(images, matrix, truth, labels)
        return {"val_accuracy": scores["accuracy"], "val_balanced_accuracy": scores["balanced_accuracy"]}

    return evaluate


class StarterTuner:
    """Fine-tunes the starter or a fine-tune of it: the top MiniLM layers and a linear image adapter train."""

    family = "starter"
    default_lr = 1e-4  # the usual BERT fine-tuning rate (the adapter starts at the identity)
    default_steps = 300  # ~1 minute of training on 2 CPU cores at batch 32; see README for the measured curve

    def __init__(self, base: ModelPackage, train_layers: int) -> None:
        self.base = base
        self.train_layers = train_layers
        self.text = load_base_text_encoder(base)  # a base we cannot train fails before any teacher runs
        self.student: AlbumStudent | None = None

    def describe(self) -> dict[str, str]:
        """What trained, for the card's ``architecture.finetune``."""
        return {
            "image": "base image encoder followed by a learnt linear map (I + W)",
            "text": f"top {self.train_layers} MiniLM layers fine-tuned",
        }

    def student_data(self, reinf: AlbumReinforcement, dataset_dir: Path, device: torch.device, log: Log):
        """The student and what it trains on."""
        self.student = AlbumStudent(self.text, self.base.dim, self.train_layers, logit_scale=teacher_scale(self.base))
        return self.student, student_data(reinf, self.base, self.student)

    def evaluator(self, val_images: list[Image.Image], val_base: np.ndarray, truth: list[int], labels: list[str]):
        """Validation accuracy during training."""
        return val_evaluator(self.base, val_base, truth, labels)

    def write_package(
        self, staged: Path, *, model_id: str, name: str, architecture: dict, provenance: dict, check_images: list
    ) -> ModelCard:
        """Fill ``staged`` with the package files; returns the provisional card."""
        assert self.student is not None, "student_data() runs before write_package()"
        check_pixels = np.stack([self.base.preprocess(image) for image in check_images[:4]])
        return write_album_package(
            self.student, self.base, staged, model_id=model_id, name=name, architecture=architecture,
            provenance=provenance, metrics={}, previous_text_state=base_text_state(self.base), check_pixels=check_pixels,
        )  # fmt: skip

    def commit(self) -> None:
        """Nothing lives outside the package."""

    def abort(self) -> None:
        """Nothing to clean up outside the staging folder."""
