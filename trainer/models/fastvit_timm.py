"""MCi image encoders in the timm / open_clip state-dict layout (MobileCLIP2 and the ``*-OpenCLIP`` checkpoints).

``FastVitImageEncoder(config)`` has keys ``trunk.stem.*``, ``trunk.stages.<s>.{downsample,pos_emb,blocks}.*``,
``trunk.final_conv.*`` and ``trunk.head.fc.{weight,bias}``, i.e. open_clip's ``visual.`` keys without the prefix.
Covers MCi0/1/2 (4 stages) and MCi3/4 (5 stages, channel-LayerNorm attention, no stem 1x1 branches).
"""

from __future__ import annotations

from torch import Tensor, nn

from trainer.models.blocks import TIMM_NAMES, RepCPE
from trainer.models.mci import MCiConfig, PatchEmbed, build_blocks, build_final_conv, build_stem


class FastVitStage(nn.Module):
    """One stage: optional ``downsample`` (PatchEmbed), optional ``pos_emb`` (RepCPE), ``blocks``."""

    def __init__(self, cfg: MCiConfig, stage: int) -> None:
        super().__init__()
        names = TIMM_NAMES
        dim = cfg.widths[stage]
        self.downsample = (
            PatchEmbed(cfg.widths[stage - 1], dim, cfg.downsample_se[stage], names) if stage > 0 else nn.Identity()
        )
        self.pos_emb = RepCPE(dim, 7, names) if cfg.cpe[stage] else nn.Identity()
        self.blocks = build_blocks(cfg, stage, names)

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.pos_emb(self.downsample(x)))


class ClassifierHead(nn.Module):
    """Mean over H, W followed by ``fc`` (Linear with bias; timm ``head.fc``)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.mean(dim=(2, 3)))


class FastVit(nn.Module):
    """timm-named FastViT-MCi trunk: ``stem``, ``stages``, ``final_conv``, ``head``."""

    def __init__(self, cfg: MCiConfig) -> None:
        super().__init__()
        self.stem = build_stem(cfg, TIMM_NAMES)
        self.stages = nn.Sequential(*[FastVitStage(cfg, s) for s in range(len(cfg.layers))])
        self.final_conv = build_final_conv(cfg, TIMM_NAMES)
        self.head = ClassifierHead(2 * cfg.widths[-1], cfg.embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.final_conv(self.stages(self.stem(x))))


class FastVitImageEncoder(nn.Module):
    """open_clip ``TimmModel``-style image tower: one child ``trunk``.

    ``forward(x)`` takes ``[N, 3, R, R]`` (preprocessed by the caller) and returns raw ``[N, embed_dim]`` features.
    """

    def __init__(self, cfg: MCiConfig) -> None:
        super().__init__()
        self.config = cfg
        self.trunk = FastVit(cfg)

    def forward(self, x: Tensor) -> Tensor:
        return self.trunk(x)
