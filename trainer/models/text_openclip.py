"""open_clip ``TextTransformer`` layout, used by every MobileCLIP2 checkpoint (docs/mobileclip-spec.md §3.2).

Same maths as the v1 base encoder, different names: ``token_embedding``, ``positional_embedding``
``[L, W]``, ``transformer.resblocks.<i>.{ln_1, attn.in_proj_*, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}``,
``ln_final`` and ``text_projection`` ``[W, D]``. State-dict keys equal the ``text.*`` entries of
``keys-MC2-<V>.json`` without that prefix. Only MobileCLIP2-B is causal; the causal mask is computed,
never stored, so it adds no state-dict entry (open_clip keeps it as a non-persistent buffer).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trainer.models.text_common import (
    CONTEXT_LENGTH,
    VOCAB_SIZE,
    LayerNormFP32,
    check_input_ids,
    eot_positions,
    gather_rows,
    packed_self_attention,
)


class PackedSelfAttention(nn.Module):
    """Self-attention with torch ``MultiheadAttention`` parameter names (packed ``in_proj_weight``)."""

    def __init__(self, width: int, num_heads: int, causal: bool) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"width {width} is not divisible by {num_heads} heads")
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        self.num_heads = num_heads
        self.causal = causal

    def forward(self, x: Tensor) -> Tensor:
        """Attend over ``x: [N, L, W]`` and project back to ``[N, L, W]``."""
        qkv = torch.nn.functional.linear(x, self.in_proj_weight, self.in_proj_bias)
        return self.out_proj(packed_self_attention(qkv, self.num_heads, self.causal))


class ResidualAttentionBlock(nn.Module):
    """Pre-norm block: ``x + attn(ln_1(x))`` then ``x + c_proj(GELU(c_fc(ln_2(x))))``."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: float, causal: bool) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.ln_1 = LayerNormFP32(width)
        self.attn = PackedSelfAttention(width, num_heads, causal)
        self.ln_2 = LayerNormFP32(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, hidden))
        self.mlp.add_module("gelu", nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(hidden, width))

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``x: [N, L, W]``."""
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class _Resblocks(nn.Module):
    """Container that gives the layers the ``transformer.resblocks.<i>`` names."""

    def __init__(self, blocks: list[ResidualAttentionBlock]) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(blocks)


class OpenClipTextTransformer(nn.Module):
    """MobileCLIP2 text encoder in the open_clip layout, returning raw projected EOT features.

    Args:
        width: 512 (MobileCLIP2-S0/S2/B) or 768 (S3/S4/L-14).
        num_heads: 8 for width 512, 12 for width 768.
        embed_dim: projection size (512 or 768).
        causal: causal attention mask (True only for MobileCLIP2-B).
        num_layers, mlp_ratio, context_length, vocab_size: 12, 4.0, 77, 49408 for every MobileCLIP2.
    """

    def __init__(
        self,
        width: int = 512,
        num_heads: int = 8,
        embed_dim: int = 512,
        causal: bool = False,
        num_layers: int = 12,
        mlp_ratio: float = 4.0,
        context_length: int = CONTEXT_LENGTH,
        vocab_size: int = VOCAB_SIZE,
    ) -> None:
        super().__init__()
        self.context_length = context_length
        self.causal = causal
        # Own parameters in checkpoint order: positional_embedding, then text_projection.
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=width**-0.5)
        self.token_embedding = nn.Embedding(vocab_size, width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        self.transformer = _Resblocks(
            [ResidualAttentionBlock(width, num_heads, mlp_ratio, causal) for _ in range(num_layers)]
        )
        self.ln_final = LayerNormFP32(width)

    def forward_tokens(self, input_ids: Tensor) -> Tensor:
        """Hidden states of every position after ``ln_final``, ``[N, L, width]``."""
        check_input_ids(input_ids, self.context_length)
        x = self.token_embedding(input_ids) + self.positional_embedding.to(self.token_embedding.weight.dtype)
        for block in self.transformer.resblocks:
            x = block(x)
        return self.ln_final(x)

    def forward(self, input_ids: Tensor, eot_index: Tensor | None = None) -> Tensor:
        """Encode ``input_ids: [N, 77]`` to raw (unnormalised) features ``[N, embed_dim]``.

        ``eot_index`` (``[N]``) overrides the argmax pooling position, e.g. when exporting to ONNX.
        """
        tokens = self.forward_tokens(input_ids)
        pooled = gather_rows(tokens, eot_positions(input_ids, eot_index))
        return pooled @ self.text_projection
