"""What trains when an album fine-tunes the starter model (ConSE image tower + MiniLM text tower).

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
"""

from __future__ import annotations

import math

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from core.encoders import ModelPackage
from core.errors import PhotoSeekError
from trainer.starter.minilm import MiniLMTextEncoder, load_minilm

TEXT_STATE_FILE = "finetune_text.safetensors"
CHECK_TEXTS = ("a dog on a beach at sunset", "receipts", "grandma's garden in spring, with roses")
STARTER_TEACHER_SCALE = 30.0  # NLL-optimal image->caption scale of the starter on the 17 PyPI corpus photos: 25-40


class FinetuneError(PhotoSeekError):
    """The base model cannot be fine-tuned (unsupported family, weights that cannot be rebuilt)."""


class AlbumStudent(nn.Module):
    """Student over a frozen image trunk (its output is the input here) and a partly trainable MiniLM."""

    def __init__(self, text: MiniLMTextEncoder, dim: int, train_layers: int = 2, logit_scale: float = 30.0) -> None:
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
    return base.card.architecture.get("family") == "conse" and base.card.tokenizer.kind == "wordpiece"


def teacher_scale(package: ModelPackage) -> float:
    """A teacher's fixed logit scale: its card's ``logit_scale`` (MobileCLIP: 100), else the starter's value."""
    value = package.card.architecture.get("logit_scale")
    return float(min(value, 100.0)) if isinstance(value, int | float) and value > 0 else STARTER_TEACHER_SCALE


def base_text_state(base: ModelPackage) -> dict[str, Tensor]:
    """Text weights a fine-tuned base package carries (empty for the starter itself)."""
    path = base.dir / TEXT_STATE_FILE
    return load_file(str(path)) if path.is_file() else {}


def save_text_state(path, state: dict[str, Tensor]) -> None:
    """Write the trained text weights into a package (safetensors: no code runs when it is read)."""
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def load_base_text_encoder(base: ModelPackage) -> MiniLMTextEncoder:
    """MiniLM as the base package's text encoder computes it: the PyPI weights plus the base's fine-tuned layers.

    Checked against the package's ONNX text encoder; raises FinetuneError for another family or a mismatch.
    """
    if not is_starter_family(base):
        raise FinetuneError(
            f"model '{base.id}' ({base.card.architecture.get('family', 'unknown')} family) cannot be fine-tuned on an "
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
