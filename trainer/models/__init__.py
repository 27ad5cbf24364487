"""MobileCLIP / MobileCLIP2 model pieces (PyTorch).

Image encoders: ``build_image_encoder(tag)`` for the golden variant tags. Each returns an ``nn.Module`` whose
``state_dict()`` keys are the official checkpoint's image keys without ``image_key_prefix(tag)``; ``forward`` maps
``[N, 3, R, R]`` (R = ``image_resolution(tag)``) to raw ``[N, D]`` features.
"""

from __future__ import annotations

from torch import nn

from trainer.models.fastvit_timm import FastVitImageEncoder
from trainer.models.golden_fill import build_filled, fill_state_dict
from trainer.models.mci import MCI_CONFIGS, MCiConfig, MCiImageEncoder
from trainer.models.reparam import reparameterize_model
from trainer.models.vit import TimmViTImageEncoder, V1ViTImageEncoder

V1_TAGS = ("S0", "S1", "S2", "B")
MC2_TAGS = ("MC2-S0", "MC2-S2", "MC2-B", "MC2-S3", "MC2-S4", "MC2-L-14")
IMAGE_TAGS = V1_TAGS + MC2_TAGS

_MCI_OF_TAG = {
    "S0": "mci0",
    "S1": "mci1",
    "S2": "mci2",
    "MC2-S0": "mci0",
    "MC2-S2": "mci2",
    "MC2-S3": "mci3",
    "MC2-S4": "mci4",
}


def _check_tag(tag: str) -> None:
    if tag not in IMAGE_TAGS:
        raise ValueError(f"unknown image encoder tag {tag!r}; expected one of {', '.join(IMAGE_TAGS)}")


def image_key_prefix(tag: str) -> str:
    """Prefix of the image keys in the full checkpoint: ``image_encoder.`` (v1) or ``visual.`` (MobileCLIP2)."""
    _check_tag(tag)
    return "image_encoder." if tag in V1_TAGS else "visual."


def image_resolution(tag: str) -> int:
    """Square input size the encoder was trained at (224 for the ViTs, 256 for MCi)."""
    _check_tag(tag)
    return 224 if tag in ("B", "MC2-B", "MC2-L-14") else 256


def build_image_encoder(tag: str) -> nn.Module:
    """Train-time (unfused) image encoder for ``tag`` with randomly initialised weights, in ``eval()`` mode.

    Tags: S0, S1, S2, B (v1 layout) and MC2-S0, MC2-S2, MC2-B, MC2-S3, MC2-S4, MC2-L-14 (open_clip/timm layout;
    MC2-S3/S4 also serve MobileCLIP-S3/S4). MobileCLIP-B uses stem padding 1 and LayerNorm eps 1e-5 (v1
    reference), MobileCLIP2-B padding 0 and eps 1e-6 (timm).
    """
    _check_tag(tag)
    if tag == "B":
        model: nn.Module = V1ViTImageEncoder(stem_padding=1, eps=1e-5)
    elif tag == "MC2-B":
        model = TimmViTImageEncoder(stem="mci", stem_padding=0, eps=1e-6)
    elif tag == "MC2-L-14":
        model = TimmViTImageEncoder(stem="patch14", dim=1024, depth=24, num_heads=16, embed_dim=768, eps=1e-5)
    elif tag in V1_TAGS:
        model = MCiImageEncoder(MCI_CONFIGS[_MCI_OF_TAG[tag]])
    else:
        model = FastVitImageEncoder(MCI_CONFIGS[_MCI_OF_TAG[tag]])
    return model.eval()


__all__ = [
    "IMAGE_TAGS",
    "MC2_TAGS",
    "V1_TAGS",
    "FastVitImageEncoder",
    "MCI_CONFIGS",
    "MCiConfig",
    "MCiImageEncoder",
    "TimmViTImageEncoder",
    "V1ViTImageEncoder",
    "build_filled",
    "build_image_encoder",
    "fill_state_dict",
    "image_key_prefix",
    "image_resolution",
    "reparameterize_model",
]
