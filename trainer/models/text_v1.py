"""MobileCLIP v1 text encoders with the parameter names of the official ``mobileclip_*.pt`` files.

Two variants (docs/mobileclip-spec.md §3.1):

* ``base`` (MobileCLIP-S1, S2, B): 12 pre-norm transformer layers, causal mask only for B.
* ``mct`` (MobileCLIP-S0): ``[RepMixer block, 4 transformer layers, RepMixer block]``; the RepMixer blocks
  see the tokens as a ``[N, C, 1, L]`` image and mix them with (1, 11) depthwise convolutions.

State-dict keys equal the ``text_encoder.*`` entries of ``keys-<V>.json`` without that prefix.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trainer.models.blocks import V1_NAMES, RepMixerBlock
from trainer.models.text_common import (
    CONTEXT_LENGTH,
    VOCAB_SIZE,
    LayerNormFP32,
    check_input_ids,
    eot_positions,
    gather_rows,
    packed_self_attention,
)


class _PositionTable(nn.Module):
    """Holds the learned ``[1, 1, L, C]`` position table (the inner ``pos_embed`` of the v1 naming)."""

    def __init__(self, context_length: int, width: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, 1, context_length, width))


class V1PositionalEmbedding(nn.Module):
    """Learned positional embedding stored as ``pos_embed.pos_embed`` with shape ``[1, 1, L, C]``."""

    def __init__(self, context_length: int, width: int) -> None:
        super().__init__()
        self.pos_embed = _PositionTable(context_length, width)
        nn.init.trunc_normal_(self.pos_embed.pos_embed, std=width**-0.5)

    def forward(self) -> Tensor:
        """Return the table as ``[1, L, C]``, ready to add to token embeddings."""
        table = self.pos_embed.pos_embed
        return table.reshape(1, table.shape[2], table.shape[3])


class V1Attention(nn.Module):
    """Multi-head self-attention with a packed ``qkv_proj`` (v1 ``MultiHeadAttention``)."""

    def __init__(self, width: int, num_heads: int, causal: bool) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"width {width} is not divisible by {num_heads} heads")
        self.qkv_proj = nn.Linear(width, 3 * width)
        self.out_proj = nn.Linear(width, width)
        self.num_heads = num_heads
        self.causal = causal

    def forward(self, x: Tensor) -> Tensor:
        """Attend over ``x: [N, L, C]`` and project back to ``[N, L, C]``."""
        return self.out_proj(packed_self_attention(self.qkv_proj(x), self.num_heads, self.causal))


class V1TransformerLayer(nn.Module):
    """Pre-norm transformer layer: ``x + attn(LN(x))`` then ``x + fc2(GELU(fc1(LN(x))))``.

    ``pre_norm_mha`` = [LN, attention] and ``pre_norm_ffn`` = [LN, fc1, GELU, (dropout), fc2]; the
    placeholder keeps fc2 at index 4 as in the checkpoints.
    """

    def __init__(self, width: int, num_heads: int, ffn_dim: int, causal: bool) -> None:
        super().__init__()
        self.pre_norm_mha = nn.ModuleList([LayerNormFP32(width), V1Attention(width, num_heads, causal)])
        self.pre_norm_ffn = nn.Sequential(
            LayerNormFP32(width),
            nn.Linear(width, ffn_dim),
            nn.GELU(),
            nn.Identity(),  # dropout slot (p = 0 in every MobileCLIP config)
            nn.Linear(ffn_dim, width),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Apply the layer to ``x: [N, L, C]``."""
        x = x + self.pre_norm_mha[1](self.pre_norm_mha[0](x))
        return x + self.pre_norm_ffn(x)


class TextRepMixerBlock(RepMixerBlock):
    """MCt RepMixer block on token sequences: (1, k) depthwise mixing, no 1x1 branch, ConvFFN ratio 4.

    Takes and returns ``[N, L, C]``; internally the tokens are laid along the width of a ``[N, C, 1, L]``
    feature map, as in the reference. ``reparameterize()`` (inherited) fuses the token mixer.
    """

    def __init__(self, width: int, kernel: int = 11, mlp_ratio: float = 4.0) -> None:
        super().__init__(width, (1, kernel), mlp_ratio, ffn_kernel_size=(1, kernel), use_scale=False, names=V1_NAMES)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``x: [N, L, C]``."""
        y = super().forward(x.transpose(1, 2).unsqueeze(2))
        return y.squeeze(2).transpose(1, 2)


def v1_ffn_dim(width: int, multiplier: float = 4.0) -> int:
    """FFN width as the v1 code computes it: ``ceil(width * multiplier / 16) * 16``."""
    return int(-(-width * multiplier // 16) * 16)


class TextTransformerV1(nn.Module):
    """MobileCLIP v1 text encoder (``base`` or ``mct``) returning raw projected EOT features.

    Args:
        variant: ``"base"`` (S1, S2, B) or ``"mct"`` (S0).
        num_layers: transformer layers (12 for base, 4 for MCt, which adds a RepMixer block on each side).
        causal: causal attention mask (True only for MobileCLIP-B).
        width, num_heads, embed_dim, context_length, vocab_size: sizes; defaults are every v1 model's.
        repmixer_kernel: token-mixing kernel length of the MCt RepMixer blocks.
    """

    def __init__(
        self,
        variant: str = "base",
        num_layers: int = 12,
        causal: bool = False,
        width: int = 512,
        num_heads: int = 8,
        embed_dim: int = 512,
        context_length: int = CONTEXT_LENGTH,
        vocab_size: int = VOCAB_SIZE,
        repmixer_kernel: int = 11,
    ) -> None:
        super().__init__()
        if variant not in ("base", "mct"):
            raise ValueError(f"unknown v1 text encoder variant {variant!r}; expected 'base' or 'mct'")
        self.variant = variant
        self.context_length = context_length
        self.causal = causal
        # Own parameter first: the checkpoints list projection_layer before the submodules.
        self.projection_layer = nn.Parameter(torch.empty(width, embed_dim))
        nn.init.normal_(self.projection_layer, std=width**-0.5)
        self.embedding_layer = nn.Embedding(vocab_size, width)
        nn.init.normal_(self.embedding_layer.weight, std=width**-0.5)
        self.positional_embedding = V1PositionalEmbedding(context_length, width)
        ffn_dim = v1_ffn_dim(width)
        layers: list[nn.Module] = [V1TransformerLayer(width, num_heads, ffn_dim, causal) for _ in range(num_layers)]
        if variant == "mct":
            layers = [TextRepMixerBlock(width, repmixer_kernel), *layers, TextRepMixerBlock(width, repmixer_kernel)]
        self.transformer = nn.ModuleList(layers)
        self.final_layer_norm = LayerNormFP32(width)

    def forward_tokens(self, input_ids: Tensor) -> Tensor:
        """Hidden states of every position after the final LayerNorm, ``[N, L, width]``."""
        check_input_ids(input_ids, self.context_length)
        x = self.embedding_layer(input_ids)
        # The v1 code computes an embedding scale of width**-0.5 but never applies it (docs/mobileclip-spec.md §3.1).
        x = x + self.positional_embedding().to(x.dtype)
        for layer in self.transformer:
            x = layer(x)
        return self.final_layer_norm(x)

    def forward(self, input_ids: Tensor, eot_index: Tensor | None = None) -> Tensor:
        """Encode ``input_ids: [N, 77]`` to raw (unnormalised) features ``[N, embed_dim]``.

        ``eot_index`` (``[N]``) overrides the argmax pooling position, e.g. when exporting to ONNX.
        """
        tokens = self.forward_tokens(input_ids)
        pooled = gather_rows(tokens, eot_positions(input_ids, eot_index))
        return pooled @ self.projection_layer
