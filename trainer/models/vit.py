"""ViT image encoders: MobileCLIP-B (v1 names), MobileCLIP2-B (timm ``vit_base_mci_224`` names) and a plain timm
ViT-L/14 (MobileCLIP2-L-14).

MobileCLIP-B and MobileCLIP2-B share the architecture (conv stem 4/2/2 -> 14x14 tokens, position embedding on the
patch tokens only, CLS prepended afterwards, 12 pre-norm layers, CLS pooling, projection to 512) but differ in two
numbers: the v1 stem's first conv has padding 1 and LayerNorm eps 1e-5; timm uses padding 0 and eps 1e-6.
Nothing here is reparameterizable.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def multi_head_attention(x: Tensor, qkv: nn.Linear, proj: nn.Linear, num_heads: int) -> Tensor:
    """Self-attention over tokens ``x`` ``[B, N, C]`` with a fused ``qkv`` projection laid out as [3, heads, dim]."""
    head_dim = proj.in_features // num_heads  # a module constant, so traced exports stay batch-dynamic
    q, k, v = qkv(x).unflatten(-1, (3, num_heads, head_dim)).permute(2, 0, 3, 1, 4)
    attn = torch.softmax((q * head_dim**-0.5) @ k.transpose(-2, -1), dim=-1)
    return proj((attn @ v).transpose(1, 2).flatten(2))


class ConvNormAct(nn.Module):
    """v1 stem unit ``block.conv`` (+ ``block.norm`` BN and GELU when ``norm_act``)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, padding: int, norm_act: bool) -> None:
        super().__init__()
        layers: dict[str, nn.Module] = {"conv": nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=not norm_act)}
        if norm_act:
            layers["norm"] = nn.BatchNorm2d(out_ch)
            layers["act"] = nn.GELU()
        self.block = nn.Sequential()
        for name, layer in layers.items():
            self.block.add_module(name, layer)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class TimmConvBnAct(nn.Module):
    """timm stem unit: ``conv`` (+ ``bn`` and GELU when ``norm_act``)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, padding: int, norm_act: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=not norm_act)
        self.bn = nn.BatchNorm2d(out_ch) if norm_act else nn.Identity()
        self.act = nn.GELU() if norm_act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


def conv_stem(unit: type[nn.Module], dim: int, first_padding: int) -> nn.Sequential:
    """MCi ViT stem: 4x4/4 conv (3 -> dim/4) BN GELU, 2x2/2 conv BN GELU, 2x2/2 conv (-> dim, bias)."""
    return nn.Sequential(
        unit(3, dim // 4, 4, 4, first_padding, True),
        unit(dim // 4, dim // 4, 2, 2, 0, True),
        unit(dim // 4, dim, 2, 2, 0, False),
    )


class V1MultiHeadAttention(nn.Module):
    """v1 attention with ``qkv_proj`` and ``out_proj`` (both with bias)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return multi_head_attention(x, self.qkv_proj, self.out_proj, self.num_heads)


class V1TransformerLayer(nn.Module):
    """v1 pre-norm layer: ``pre_norm_mha`` = (LN, MHA), ``pre_norm_ffn`` = (LN, fc1, GELU, drop, fc2, drop)."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.pre_norm_mha = nn.Sequential(nn.LayerNorm(dim, eps=eps), V1MultiHeadAttention(dim, num_heads))
        self.pre_norm_ffn = nn.Sequential(
            nn.LayerNorm(dim, eps=eps), nn.Linear(dim, ffn_dim), nn.GELU(), nn.Identity(), nn.Linear(ffn_dim, dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pre_norm_mha(x)
        return x + self.pre_norm_ffn(x)


class _PosTable(nn.Module):
    """A learnable ``[1, 1, N, C]`` table stored as ``pos_embed``."""

    def __init__(self, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, 1, num_tokens, dim))


class _V1PosEmbed(nn.Module):
    """v1 nesting of the position table: key ``pos_embed.pos_embed.pos_embed`` under the trunk."""

    def __init__(self, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.pos_embed = _PosTable(num_tokens, dim)

    def table(self) -> Tensor:
        """The ``[N, C]`` table."""
        return self.pos_embed.pos_embed[0, 0]


class _V1Classifier(nn.Module):
    """CLS token ``@ proj`` (``[dim, embed_dim]``, no bias)."""

    def __init__(self, dim: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Parameter(torch.empty(dim, embed_dim).normal_(std=dim**-0.5))

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.proj


class V1VisionTransformer(nn.Module):
    """MobileCLIP-B trunk with ml-mobileclip names (``model.`` children of the v1 image encoder)."""

    def __init__(
        self,
        dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        embed_dim: int = 512,
        num_patches: int = 196,
        stem_padding: int = 1,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.patch_emb = conv_stem(ConvNormAct, dim, stem_padding)
        self.post_transformer_norm = nn.LayerNorm(dim, eps=eps)
        self.transformer = nn.Sequential(*[V1TransformerLayer(dim, num_heads, 4 * dim, eps) for _ in range(depth)])
        self.classifier = _V1Classifier(dim, embed_dim)
        self.pos_embed = _V1PosEmbed(num_patches, dim)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.patch_emb(x).flatten(2).transpose(1, 2)  # [B, N, C]
        tokens = tokens + self.pos_embed.table()
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = self.post_transformer_norm(self.transformer(torch.cat([cls, tokens], dim=1)))
        return self.classifier(tokens[:, 0])


class V1ViTImageEncoder(nn.Module):
    """MobileCLIP-B image encoder (v1 layout, one child ``model``); input 224x224 RGB in [0, 1]."""

    def __init__(self, stem_padding: int = 1, eps: float = 1e-5) -> None:
        super().__init__()
        self.model = V1VisionTransformer(stem_padding=stem_padding, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class TimmAttention(nn.Module):
    """timm attention: ``qkv`` (bias) and ``proj``."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return multi_head_attention(x, self.qkv, self.proj, self.num_heads)


class TimmMlp(nn.Module):
    """timm MLP: ``fc1``, GELU, ``fc2``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TimmBlock(nn.Module):
    """timm pre-norm block: ``norm1``, ``attn``, ``norm2``, ``mlp``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, eps: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = TimmAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = TimmMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _HybridEmbed(nn.Module):
    """timm conv-stem patch embedding: ``backbone`` then flatten to tokens."""

    def __init__(self, dim: int, first_padding: int) -> None:
        super().__init__()
        self.backbone = conv_stem(TimmConvBnAct, dim, first_padding)

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x).flatten(2).transpose(1, 2)


class _PatchEmbed(nn.Module):
    """timm patch embedding: one ``proj`` conv (kernel = stride = patch size, no bias for CLIP towers)."""

    def __init__(self, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class TimmVisionTransformer(nn.Module):
    """timm-named ViT trunk, token pooling, ``head`` Linear to ``embed_dim``.

    Args:
        stem: ``"mci"`` (conv stem, position embedding on patch tokens only, no pre-norm: ``vit_base_mci_224``)
            or ``"patch<k>"`` (plain k x k patches, CLS included in the position table, ``norm_pre``: CLIP ViTs).
        dim, depth, num_heads, mlp_ratio, embed_dim, img_size: sizes. eps: LayerNorm eps.
        stem_padding: padding of the first conv-stem conv (0 in timm; 1 reproduces the v1 reference).
    """

    def __init__(
        self,
        stem: str = "mci",
        dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        embed_dim: int = 512,
        img_size: int = 224,
        eps: float = 1e-6,
        stem_padding: int = 0,
    ) -> None:
        super().__init__()
        if stem == "mci":
            num_tokens, self.class_in_pos = (img_size // 16) ** 2, False
        elif stem.startswith("patch"):
            num_tokens, self.class_in_pos = (img_size // int(stem[5:])) ** 2 + 1, True
        else:
            raise ValueError(f"unknown stem {stem!r}")
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, dim))
        self.patch_embed = _HybridEmbed(dim, stem_padding) if stem == "mci" else _PatchEmbed(dim, int(stem[5:]))
        self.norm_pre = nn.LayerNorm(dim, eps=eps) if self.class_in_pos else nn.Identity()
        self.blocks = nn.Sequential(*[TimmBlock(dim, num_heads, mlp_ratio, eps) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.head = nn.Linear(dim, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.patch_embed(x)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        if self.class_in_pos:
            tokens = torch.cat([cls, tokens], dim=1) + self.pos_embed
        else:
            tokens = torch.cat([cls, tokens + self.pos_embed], dim=1)
        tokens = self.norm(self.blocks(self.norm_pre(tokens)))
        return self.head(tokens[:, 0])


class TimmViTImageEncoder(nn.Module):
    """open_clip ``TimmModel``-style ViT image tower (one child ``trunk``); keyword arguments as for the trunk."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__()
        self.trunk = TimmVisionTransformer(**kwargs)

    def forward(self, x: Tensor) -> Tensor:
        return self.trunk(x)
