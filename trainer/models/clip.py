"""MobileCLIP / MobileCLIP2 CLIP models (image + text tower + logit scale) and the registry of named variants.

``create_model(name)`` builds the train-time model whose ``state_dict()`` is exactly the official checkpoint's
layout (``keys-<V>.json`` of the golden data): ``image_encoder.*`` / ``text_encoder.*`` for the MobileCLIP v1
files, ``visual.*`` / ``text.*`` (open_clip / timm names) for MobileCLIP2 and MobileCLIP-S3/S4/L-14. ``MODELS``
holds per name what a model package needs besides the weights: resolution, preprocessing, licence notice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from core.mobileclip_detect import resolve_model_name
from trainer.models import build_image_encoder, image_resolution
from trainer.models.text_factory import build_text_encoder, text_config

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
NO_MEAN = (0.0, 0.0, 0.0)
NO_STD = (1.0, 1.0, 1.0)
V1_LOGIT_SCALE_MAX = 100.0

LICENSE_NOTICE = """\
{display} weights: copyright Apple Inc.

The weights in this package were converted by PhotoSeek from a checkpoint file that Apple publishes for
{display} (github.com/apple/ml-mobileclip and huggingface.co/apple). They are Apple's and stay under
Apple's licence for them: the Apple ML Research Model Terms of Use (LICENSE_MODELS in apple/ml-mobileclip
and the LICENSE file of the Hugging Face repository; the first MobileCLIP releases carried the Apple Sample
Code License). Those terms, not PhotoSeek's MIT licence, govern how the weights and this converted package
may be used and redistributed: read them before sharing this package. PhotoSeek itself does not ship the weights.

The tokenizer vocabulary (bpe_simple_vocab_16e6.txt.gz) comes from OpenAI CLIP via open_clip, MIT licence:
see clip-tokenizer-LICENSE.txt.
"""

_V1_NOTE = (
    "MobileCLIP v1 preprocessing (ml-mobileclip): shorter side resized to {r} with PIL bilinear, centre crop "
    "{r}x{r}, pixels / 255 with no mean/std normalisation."
)
_MC2_AMBIGUITY = (
    "Preprocessing uses open_clip's and timm's pretrained-tag settings for this model (bilinear, shortest-side "
    "resize + centre crop, mean 0 / std 1). Open_clip loading a local file the way Apple's README does falls "
    "back to bicubic + OpenAI mean/std instead, and the training script's default is OpenAI mean/std, so which "
    "normalisation the released weights expect cannot be settled from code (docs/mobileclip-spec.md §5 and "
    "§13.1). Check zero-shot accuracy on labelled photos both ways before relying on it."
)
_OPENAI_NOTE = "OpenAI CLIP mean/std normalisation ({interp}), as open_clip's and timm's pretrained configs give."
_S34_V1_NOTE = (
    "MobileCLIP-S3/S4/L-14 are the DataCompDR-trained weights in the open_clip layout; they are built like "
    "MobileCLIP2-S3/S4/L-14 (same keys and text tower) with the same preprocessing."
)


@dataclass(frozen=True)
class ModelInfo:
    """One named MobileCLIP variant: architecture tag, checkpoint layout and what its package needs.

    Attributes:
        name: registry name (``mobileclip-s0`` ...). display: human name. tag: golden-data tag of the
        architecture (``S0``, ``MC2-S3`` ...). layout: ``v1`` (ml-mobileclip names) or ``openclip``.
        checkpoint_file: the official file name. interpolation, mean, std: image preprocessing
        (docs/mobileclip-spec.md §5).
        notes: facts about the weights a user should know (written into the model card).
    """

    name: str
    display: str
    tag: str
    layout: str
    checkpoint_file: str
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    notes: tuple[str, ...] = ()

    @property
    def resolution(self) -> int:
        """Square input size: 256 for the MCi encoders, 224 for the ViTs."""
        return image_resolution(self.tag)

    @property
    def embed_dim(self) -> int:
        """Size of the joint embedding (512, or 768 for S3/S4/L-14)."""
        return text_config(self.tag).embed_dim

    @property
    def openclip_form(self) -> bool:
        """Whether a v1 model is also published in the open_clip layout (the ``*-OpenCLIP`` repos)."""
        return self.layout == "v1" and self.tag in ("S1", "S2", "B")

    def license_text(self) -> str:
        """The licence notice written into the model package as ``LICENSE.txt``."""
        return LICENSE_NOTICE.format(display=self.display)


def _v1(name: str, display: str, tag: str, file: str) -> ModelInfo:
    note = _V1_NOTE.format(r=image_resolution(tag))
    return ModelInfo(name, display, tag, "v1", file, "bilinear", NO_MEAN, NO_STD, (note,))


def _mc2(name: str, display: str, tag: str, file: str, *, openai: bool, interp: str = "bilinear") -> ModelInfo:
    if openai:
        notes: tuple[str, ...] = (_OPENAI_NOTE.format(interp=interp),)
        if name.startswith("mobileclip-"):
            notes += (_S34_V1_NOTE,)
        return ModelInfo(name, display, tag, "openclip", file, interp, OPENAI_MEAN, OPENAI_STD, notes)
    return ModelInfo(name, display, tag, "openclip", file, interp, NO_MEAN, NO_STD, (_MC2_AMBIGUITY,))


MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        _v1("mobileclip-s0", "MobileCLIP-S0", "S0", "mobileclip_s0.pt"),
        _v1("mobileclip-s1", "MobileCLIP-S1", "S1", "mobileclip_s1.pt"),
        _v1("mobileclip-s2", "MobileCLIP-S2", "S2", "mobileclip_s2.pt"),
        _v1("mobileclip-b", "MobileCLIP-B", "B", "mobileclip_b.pt"),
        _v1("mobileclip-blt", "MobileCLIP-B (LT)", "B", "mobileclip_blt.pt"),
        _mc2("mobileclip-s3", "MobileCLIP-S3", "MC2-S3", "mobileclip_s3.pt", openai=True),
        _mc2("mobileclip-s4", "MobileCLIP-S4", "MC2-S4", "mobileclip_s4.pt", openai=True),
        _mc2("mobileclip-l14", "MobileCLIP-L/14", "MC2-L-14", "mobileclip_l14.pt", openai=True, interp="bicubic"),
        _mc2("mobileclip2-s0", "MobileCLIP2-S0", "MC2-S0", "mobileclip2_s0.pt", openai=False),
        _mc2("mobileclip2-s2", "MobileCLIP2-S2", "MC2-S2", "mobileclip2_s2.pt", openai=False),
        _mc2("mobileclip2-b", "MobileCLIP2-B", "MC2-B", "mobileclip2_b.pt", openai=False),
        _mc2("mobileclip2-s3", "MobileCLIP2-S3", "MC2-S3", "mobileclip2_s3.pt", openai=True),
        _mc2("mobileclip2-s4", "MobileCLIP2-S4", "MC2-S4", "mobileclip2_s4.pt", openai=True),
        _mc2("mobileclip2-l14", "MobileCLIP2-L/14", "MC2-L-14", "mobileclip2_l14.pt", openai=True, interp="bicubic"),
    )
}


def resolve_name(name: str) -> str:
    """Canonical registry name for ``name``; accepts ``MobileCLIP2-S0``, ``mobileclip_s0``, ``mobileclip-b-lt``,
    ``MobileCLIP-L-14`` and the like. Raises ``KeyError`` listing the known names."""
    return resolve_model_name(name, tuple(MODELS))


def model_info(name: str) -> ModelInfo:
    """Registry entry of ``name`` (any spelling :func:`resolve_name` accepts)."""
    return MODELS[resolve_name(name)]


class MobileCLIP(nn.Module):
    """Shared CLIP behaviour; subclasses own the towers under the checkpoint's attribute names."""

    info: ModelInfo

    def _init_scale(self) -> None:
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @property
    def image_tower(self) -> nn.Module:
        """The image encoder module (``image_encoder`` or ``visual``)."""
        raise NotImplementedError

    @property
    def text_tower(self) -> nn.Module:
        """The text encoder module (``text_encoder`` or ``text``)."""
        raise NotImplementedError

    def encode_image(self, pixels: Tensor, normalize: bool = False) -> Tensor:
        """Image features ``[N, D]`` of preprocessed ``pixels`` ``[N, 3, R, R]``; L2-normalised if asked."""
        features = self.image_tower(pixels)
        return nn.functional.normalize(features, dim=-1) if normalize else features

    def encode_text(self, input_ids: Tensor, eot_index: Tensor | None = None, normalize: bool = False) -> Tensor:
        """Text features ``[N, D]`` of token ids ``[N, 77]``, pooled at ``eot_index`` (default: argmax of ids)."""
        features = self.text_tower(input_ids, eot_index)
        return nn.functional.normalize(features, dim=-1) if normalize else features

    def logit_scale_exp(self) -> Tensor:
        """The similarity scale ``exp(logit_scale)`` as the reference forward returns it."""
        return self.logit_scale.exp()

    def forward(self, pixels: Tensor, input_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(normalised image features, normalised text features, scale), like the reference ``forward``."""
        return self.encode_image(pixels, True), self.encode_text(input_ids, normalize=True), self.logit_scale_exp()

    def logits_per_image(self, pixels: Tensor, input_ids: Tensor) -> Tensor:
        """``scale * image_n @ text_n^T``, ``[N_images, N_texts]``."""
        image, text, scale = self(pixels, input_ids)
        return scale * image @ text.T


class MobileCLIPv1(MobileCLIP):
    """ml-mobileclip layout: ``logit_scale``, ``image_encoder.*``, ``text_encoder.*``; scale clamped at 100."""

    def __init__(self, info: ModelInfo) -> None:
        super().__init__()
        self.info = info
        self._init_scale()
        self.image_encoder = build_image_encoder(info.tag)
        self.text_encoder = build_text_encoder(info.tag)

    @property
    def image_tower(self) -> nn.Module:
        return self.image_encoder

    @property
    def text_tower(self) -> nn.Module:
        return self.text_encoder

    def logit_scale_exp(self) -> Tensor:
        return self.logit_scale.exp().clamp(0, V1_LOGIT_SCALE_MAX)


class MobileCLIPOpenClip(MobileCLIP):
    """open_clip layout: ``logit_scale``, ``visual.*``, ``text.*``; scale not clamped."""

    def __init__(self, info: ModelInfo) -> None:
        super().__init__()
        self.info = info
        self._init_scale()
        self.visual = build_image_encoder(info.tag)
        self.text = build_text_encoder(info.tag)

    @property
    def image_tower(self) -> nn.Module:
        return self.visual

    @property
    def text_tower(self) -> nn.Module:
        return self.text


def create_model(name: str) -> MobileCLIP:
    """Train-time (unfused) MobileCLIP model ``name`` with random weights, in ``eval()`` mode.

    Its ``state_dict()`` has exactly the official checkpoint's keys, shapes and dtypes, so an official file
    loads with ``strict=True``. Build it under ``torch.device("meta")`` to get the layout without allocating.
    """
    info = model_info(name)
    model: MobileCLIP = MobileCLIPv1(info) if info.layout == "v1" else MobileCLIPOpenClip(info)
    return model.eval()


__all__ = ["MODELS", "MobileCLIP", "MobileCLIPOpenClip", "MobileCLIPv1", "ModelInfo", "create_model", "model_info"]
