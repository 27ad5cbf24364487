"""Attention pieces of the FastViT / MCi image encoders (stage 4, and stage 5 of MCi3/4).

Split from ``blocks.py`` (the reparameterizable conv blocks); nothing here is fused by reparameterization.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainer.models.blocks import V1_NAMES, BlockNames, ConvFFN, layer_scale_value, make_layer_scale


class LayerNormChannel(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor (keys ``weight``, ``bias``)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps
        self.normalized_shape = (dim,)  # a constant, not x.shape[1]: traced exports need it static

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class MHSA2d(nn.Module):
    """Multi-head self-attention over the H*W positions of an NCHW map (``qkv`` without bias, ``proj`` with).

    Reshapes use module constants or the input's own shape (no Python ints read from ``x.shape``), so a traced
    ONNX export keeps a dynamic batch.
    """

    def __init__(self, dim: int, head_dim: int = 32, qkv_bias: bool = False) -> None:
        super().__init__()
        if dim % head_dim:
            raise ValueError(f"dim {dim} is not a multiple of head_dim {head_dim}")
        self.num_heads, self.head_dim = dim // head_dim, head_dim
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        tokens = x.flatten(2).transpose(1, 2)  # [B, N, C]
        qkv = self.qkv(tokens).unflatten(-1, (3, self.num_heads, self.head_dim)).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, heads, N, head_dim]
        attn = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        out = (attn @ v).transpose(1, 2).flatten(2)  # [B, N, C]
        return self.proj(out).transpose(1, 2).reshape_as(x)


class AttentionBlock(nn.Module):
    """FastViT attention block: ``x = x + ls1 * MHSA(norm(x))``, ``x = x + ls2 * ConvFFN(x)``.

    Args:
        dim: channels. mlp_ratio: ConvFFN hidden ratio. norm: ``"bn"`` (MCi0-2) or ``"ln"`` (channel
        LayerNorm, MCi3/4). head_dim: attention head size. layer_scale_init: init. names: layout.
    """

    def __init__(
        self,
        dim: int,
        mlp_ratio: float = 3.0,
        norm: str = "bn",
        head_dim: int = 32,
        layer_scale_init: float = 1e-5,
        names: BlockNames = V1_NAMES,
    ) -> None:
        super().__init__()
        if norm not in ("bn", "ln"):
            raise ValueError(f"norm must be 'bn' or 'ln', got {norm!r}")
        self.names = names
        self.norm = nn.BatchNorm2d(dim) if norm == "bn" else LayerNormChannel(dim)
        self.token_mixer = MHSA2d(dim, head_dim)
        self.layer_scale_1 = make_layer_scale(dim, names, layer_scale_init)
        setattr(self, names.ffn, ConvFFN(dim, int(dim * mlp_ratio)))
        self.layer_scale_2 = make_layer_scale(dim, names, layer_scale_init)

    def forward(self, x: Tensor) -> Tensor:
        x = x + layer_scale_value(self.layer_scale_1) * self.token_mixer(self.norm(x))
        return x + layer_scale_value(self.layer_scale_2) * getattr(self, self.names.ffn)(x)
