"""Pieces shared by the MobileCLIP text encoders (v1 layout and open_clip layout).

Both layouts compute the same thing: token embedding + learned positions, pre-norm transformer
layers with a packed q/k/v projection, a final LayerNorm and pooling at the end-of-text token.
Only parameter names and shapes differ, so the maths lives here once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CONTEXT_LENGTH = 77
VOCAB_SIZE = 49408


class LayerNormFP32(nn.LayerNorm):
    """LayerNorm computed in float32 and cast back to the input dtype (keeps fp16 runs stable)."""

    def forward(self, x: Tensor) -> Tensor:
        """Normalise the last axis in float32 (also for half-precision weights); return the input dtype."""
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


def _plain_attention(q: Tensor, k: Tensor, v: Tensor, causal: bool) -> Tensor:
    """Scaled dot-product attention written out, softmax in float32 (the v1 reference's numerics)."""
    scale = q.shape[-1] ** -0.5
    scores = torch.matmul(q * scale, k.transpose(-2, -1))
    if causal:
        length = scores.shape[-1]
        mask = torch.full((length, length), float("-inf"), device=scores.device, dtype=scores.dtype).triu(1)
        scores = scores + mask
    weights = scores.float().softmax(dim=-1).to(v.dtype)
    return torch.matmul(weights, v)


def packed_self_attention(qkv: Tensor, num_heads: int, causal: bool) -> Tensor:
    """Multi-head self-attention from a packed projection.

    Args:
        qkv: ``[N, L, 3 * C]`` laid out as ``[q | k | v]``, each split into ``num_heads`` contiguous heads
            (the layout of both v1 ``qkv_proj`` and torch/open_clip ``in_proj_weight``).
        num_heads: number of heads; ``C`` must be divisible by it.
        causal: add the usual upper-triangular ``-inf`` mask.

    Returns:
        ``[N, L, C]`` attention output before the output projection.
    """
    length = qkv.shape[1]
    width = qkv.shape[2] // 3
    # [N, L, 3, H, Dh] -> [3, N, H, L, Dh]
    q, k, v = qkv.reshape(-1, length, 3, num_heads, width // num_heads).permute(2, 0, 3, 1, 4).unbind(0)
    if torch.onnx.is_in_onnx_export():
        # Explicit graph with a float32 softmax: exports to plain MatMul/Softmax on every opset and stays
        # numerically safe if the ONNX file is later converted to float16.
        out = _plain_attention(q, k, v, causal)
    else:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    return out.transpose(1, 2).reshape(-1, length, width)


def eot_positions(input_ids: Tensor, eot_index: Tensor | None) -> Tensor:
    """Pooling positions: the caller's ``eot_index`` if given, else the first argmax of each row.

    The end-of-text id (49407) is the largest id, so argmax finds it (docs/mobileclip-spec.md §3.1, step 5).
    """
    if eot_index is not None:
        return eot_index.to(torch.long)
    return input_ids.argmax(dim=-1)


def gather_rows(x: Tensor, positions: Tensor) -> Tensor:
    """Pick ``x[i, positions[i]]`` for every row of ``x: [N, L, C]`` (ONNX-friendly gather)."""
    index = positions.reshape(-1, 1, 1).expand(-1, 1, x.shape[-1])
    return torch.gather(x, 1, index).squeeze(1)


def check_input_ids(input_ids: Tensor, context_length: int) -> None:
    """Raise ``ValueError`` unless ``input_ids`` is ``[N, context_length]``.

    The non-causal encoders attend to padding, so the exact length is part of the model
    (docs/mobileclip-spec.md §13, risk 3).
    """
    if torch.jit.is_tracing():
        return  # shapes are symbolic while exporting; the export itself fixes the length
    if input_ids.dim() != 2 or input_ids.shape[1] != context_length:
        raise ValueError(f"expected token ids of shape [N, {context_length}], got {tuple(input_ids.shape)}")
