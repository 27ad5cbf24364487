"""MCi image encoders (FastViT variants of MobileCLIP) in the ml-mobileclip v1 state-dict layout.

``MCiImageEncoder(config)`` has keys ``model.patch_embed.*``, ``model.network.<i>.*``, ``model.conv_exp.*`` and
``model.head.proj``, i.e. the official ``mobileclip_s{0,1,2}.pt`` image keys without ``image_encoder.``. The
configuration and the stem / downsampler / stage builders are shared with the timm layout (``fastvit_timm.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from trainer.models.attention2d import AttentionBlock
from trainer.models.blocks import V1_NAMES, BlockNames, MobileOneBlock, ReparamLargeKernelConv, RepCPE, RepMixerBlock


@dataclass(frozen=True)
class MCiConfig:
    """Architecture of one MCi variant.

    Attributes:
        layers: blocks per stage. widths: channels per stage. mixers: ``"repmixer"`` or ``"attention"`` per stage.
        mlp_ratio: ConvFFN ratio. downsample_se: per stage, whether its downsampler has SE (stage 0 has none).
        cpe: per stage, whether a RepCPE precedes its blocks. attn_norm: ``"bn"`` or ``"ln"``.
        stem_scale: whether the stem's 3x3 blocks have 1x1 branches. embed_dim: output feature size.
    """

    layers: tuple[int, ...]
    widths: tuple[int, ...]
    mixers: tuple[str, ...]
    mlp_ratio: float
    downsample_se: tuple[bool, ...]
    cpe: tuple[bool, ...]
    attn_norm: str = "bn"
    stem_scale: bool = True
    embed_dim: int = 512


_MIX4 = ("repmixer", "repmixer", "repmixer", "attention")
_MIX5 = ("repmixer", "repmixer", "repmixer", "attention", "attention")
MCI_CONFIGS: dict[str, MCiConfig] = {
    "mci0": MCiConfig((2, 6, 10, 2), (64, 128, 256, 512), _MIX4, 3.0, (False, False, True, True), (0, 0, 0, 1)),
    "mci1": MCiConfig((4, 12, 20, 4), (64, 128, 256, 512), _MIX4, 3.0, (False, False, True, True), (0, 0, 0, 1)),
    "mci2": MCiConfig((4, 12, 24, 4), (80, 160, 320, 640), _MIX4, 3.0, (False, False, True, True), (0, 0, 0, 1)),
    "mci3": MCiConfig(
        (2, 12, 24, 4, 2), (96, 192, 384, 768, 1536), _MIX5, 4.0, (False,) * 5, (0, 0, 0, 1, 1), "ln", False, 768
    ),
    "mci4": MCiConfig(
        (2, 12, 24, 4, 4), (128, 256, 512, 1024, 2048), _MIX5, 4.0, (False,) * 5, (0, 0, 0, 1, 1), "ln", False, 768
    ),
}


def build_stem(cfg: MCiConfig, names: BlockNames) -> nn.Sequential:
    """Stride-4 stem: 3x3/2 conv block, 3x3/2 depthwise block, 1x1 block (all MobileOne with GELU)."""
    c = cfg.widths[0]
    return nn.Sequential(
        MobileOneBlock(3, c, 3, 2, 1, use_scale=cfg.stem_scale, names=names),
        MobileOneBlock(c, c, 3, 2, c, use_scale=cfg.stem_scale, names=names),
        MobileOneBlock(c, c, 1, 1, 1, names=names),
    )


class PatchEmbed(nn.Module):
    """Downsampler between stages: 7x7/2 large-kernel conv (groups = in_ch, optional SE), then a 1x1 MobileOne."""

    def __init__(self, in_ch: int, out_ch: int, use_se: bool, names: BlockNames) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            ReparamLargeKernelConv(in_ch, out_ch, 7, 2, in_ch, 3, use_se=use_se, act=True, names=names),
            MobileOneBlock(out_ch, out_ch, 1, 1, 1, names=names),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


def build_blocks(cfg: MCiConfig, stage: int, names: BlockNames) -> nn.Sequential:
    """The blocks of one stage (RepMixer blocks or attention blocks)."""
    dim = cfg.widths[stage]
    if cfg.mixers[stage] == "repmixer":
        blocks = [RepMixerBlock(dim, 3, cfg.mlp_ratio, names=names) for _ in range(cfg.layers[stage])]
    else:
        blocks = [AttentionBlock(dim, cfg.mlp_ratio, cfg.attn_norm, names=names) for _ in range(cfg.layers[stage])]
    return nn.Sequential(*blocks)


def build_final_conv(cfg: MCiConfig, names: BlockNames) -> MobileOneBlock:
    """Head expansion: depthwise-grouped 3x3 MobileOne C -> 2C with SE (ratio 1/16) and GELU."""
    c = cfg.widths[-1]
    return MobileOneBlock(c, 2 * c, 3, 1, c, use_scale=True, se_ratio=1 / 16, names=names)


class GlobalPoolProjection(nn.Module):
    """Mean over H, W followed by ``@ proj`` (``proj`` is ``[in_dim, out_dim]``, no bias; v1 ``head.proj``)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Parameter(torch.empty(in_dim, out_dim).normal_(std=in_dim**-0.5))

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3)) @ self.proj


class MCi(nn.Module):
    """FastViT-MCi trunk with v1 names: ``patch_embed``, flat ``network`` list, ``conv_exp``, ``head``."""

    def __init__(self, cfg: MCiConfig) -> None:
        super().__init__()
        names = V1_NAMES
        self.patch_embed = build_stem(cfg, names)
        network: list[nn.Module] = []
        for s in range(len(cfg.layers)):
            if s > 0:
                network.append(PatchEmbed(cfg.widths[s - 1], cfg.widths[s], cfg.downsample_se[s], names))
            if cfg.cpe[s]:
                network.append(RepCPE(cfg.widths[s], 7, names))
            network.append(build_blocks(cfg, s, names))
        self.network = nn.ModuleList(network)
        self.conv_exp = build_final_conv(cfg, names)
        self.head = GlobalPoolProjection(2 * cfg.widths[-1], cfg.embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        for module in self.network:
            x = module(x)
        return self.head(self.conv_exp(x))


class MCiImageEncoder(nn.Module):
    """v1 image encoder (``image_encoder`` of ml-mobileclip's CLIP): one child ``model``.

    ``forward(x)`` takes ``[N, 3, R, R]`` RGB in [0, 1] (no mean/std) and returns raw ``[N, embed_dim]`` features.
    """

    def __init__(self, cfg: MCiConfig) -> None:
        super().__init__()
        self.config = cfg
        self.model = MCi(cfg)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)
