"""Build the MobileCLIP / MobileCLIP2 text encoder for a variant tag.

Tags follow the golden data (``tests/data/golden``): v1 tags ``S0``, ``S1``, ``S2``, ``B`` use the
official ``mobileclip_*.pt`` names (checkpoint prefix ``text_encoder.``); ``MC2-*`` tags use the
open_clip names of the MobileCLIP2 checkpoints (prefix ``text.``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from trainer.models.text_openclip import OpenClipTextTransformer
from trainer.models.text_v1 import TextTransformerV1


@dataclass(frozen=True)
class TextConfig:
    """Architecture of one text tower (docs/mobileclip-spec.md §1 and §3)."""

    layout: str  # "v1" or "openclip"
    variant: str  # "base" or "mct" (v1 only)
    num_layers: int
    width: int
    num_heads: int
    embed_dim: int
    causal: bool

    @property
    def checkpoint_prefix(self) -> str:
        """Prefix of the text entries in the full CLIP checkpoint."""
        return "text_encoder." if self.layout == "v1" else "text."


_V1_BASE = TextConfig("v1", "base", 12, 512, 8, 512, causal=False)
_MC2_512 = TextConfig("openclip", "base", 12, 512, 8, 512, causal=False)
_MC2_768 = TextConfig("openclip", "base", 12, 768, 12, 768, causal=False)

TEXT_CONFIGS: dict[str, TextConfig] = {
    "S0": TextConfig("v1", "mct", 4, 512, 8, 512, causal=False),
    "S1": _V1_BASE,
    "S2": _V1_BASE,
    "B": TextConfig("v1", "base", 12, 512, 8, 512, causal=True),
    "MC2-S0": _MC2_512,
    "MC2-S2": _MC2_512,
    "MC2-B": TextConfig("openclip", "base", 12, 512, 8, 512, causal=True),
    "MC2-S3": _MC2_768,
    "MC2-S4": _MC2_768,
    # Key layout checked against keys-MC2-L-14.json; no golden features exist for L-14, and its mask is
    # assumed to equal S3/S4's (spec: "same as S3").
    "MC2-L-14": _MC2_768,
}


def text_config(tag: str) -> TextConfig:
    """Return the text-tower configuration of ``tag``; raise ``KeyError`` naming the known tags."""
    try:
        return TEXT_CONFIGS[tag]
    except KeyError:
        raise KeyError(f"unknown MobileCLIP tag {tag!r}; known: {', '.join(TEXT_CONFIGS)}") from None


def build_text_encoder(tag: str) -> nn.Module:
    """Build the train-time (unfused) text encoder of ``tag`` in eval mode, randomly initialised.

    The returned module's ``state_dict()`` matches the checkpoint's text entries with the prefix removed
    (see :func:`text_config` ``.checkpoint_prefix``); ``forward(input_ids, eot_index=None)`` returns raw
    projected features.
    """
    cfg = text_config(tag)
    if cfg.layout == "v1":
        model: nn.Module = TextTransformerV1(
            variant=cfg.variant,
            num_layers=cfg.num_layers,
            causal=cfg.causal,
            width=cfg.width,
            num_heads=cfg.num_heads,
            embed_dim=cfg.embed_dim,
        )
    else:
        model = OpenClipTextTransformer(
            width=cfg.width,
            num_heads=cfg.num_heads,
            embed_dim=cfg.embed_dim,
            causal=cfg.causal,
            num_layers=cfg.num_layers,
        )
    return model.eval()
