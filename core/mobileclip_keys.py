"""MobileCLIP checkpoint key names: the ml-mobileclip (v1) and open_clip/timm layouts, and recognising a variant.

Pure names and shapes, shared by the trainer (torch tensors) and core (numpy arrays): both only read ``.shape`` and
index, transpose or reshape entries. The v1 <-> open_clip names follow docs/mobileclip-spec.md §7.2 and are checked
against the golden ``keymap-v1-to-openclip-*.json`` files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from core.errors import CheckpointError

Layout = dict[str, tuple[int, ...]]
Signature = frozenset[tuple[str, tuple[int, ...]]]

_NETWORK_TO_STAGE = {
    0: "stages.0.blocks",
    1: "stages.1.downsample",
    2: "stages.1.blocks",
    3: "stages.2.downsample",
    4: "stages.2.blocks",
    5: "stages.3.downsample",
    6: "stages.3.pos_emb",
    7: "stages.3.blocks",
}
_MCI_SUBS = [
    (r"^patch_embed\.", "stem."),
    (r"^conv_exp\.", "final_conv."),
    (r"^network\.6\.pe\.", "network.6.pos_enc."),
    (r"\.rbr_conv\.", ".conv_kxk."),
    (r"\.rbr_scale\.", ".conv_scale."),
    (r"\.rbr_skip\.", ".identity."),
    (r"\.lkb_origin\.", ".large_conv."),
    (r"\.convffn\.", ".mlp."),
    (r"\.se\.reduce\.", ".se.fc1."),
    (r"\.se\.expand\.", ".se.fc2."),
    (r"(layer_scale(_\d)?)$", r"\1.gamma"),
]
_VIT_SUBS = [
    (r"^patch_emb\.(\d+)\.block\.conv\.", r"patch_embed.backbone.\1.conv."),
    (r"^patch_emb\.(\d+)\.block\.norm\.", r"patch_embed.backbone.\1.bn."),
    (r"^transformer\.(\d+)\.pre_norm_mha\.0\.", r"blocks.\1.norm1."),
    (r"^transformer\.(\d+)\.pre_norm_mha\.1\.qkv_proj\.", r"blocks.\1.attn.qkv."),
    (r"^transformer\.(\d+)\.pre_norm_mha\.1\.out_proj\.", r"blocks.\1.attn.proj."),
    (r"^transformer\.(\d+)\.pre_norm_ffn\.0\.", r"blocks.\1.norm2."),
    (r"^transformer\.(\d+)\.pre_norm_ffn\.1\.", r"blocks.\1.mlp.fc1."),
    (r"^transformer\.(\d+)\.pre_norm_ffn\.4\.", r"blocks.\1.mlp.fc2."),
    (r"^post_transformer_norm\.", "norm."),
]
_TEXT_SUBS = [
    (r"^embedding_layer\.", "token_embedding."),
    (r"^transformer\.(\d+)\.pre_norm_mha\.0\.", r"transformer.resblocks.\1.ln_1."),
    (r"^transformer\.(\d+)\.pre_norm_mha\.1\.qkv_proj\.(weight|bias)$", r"transformer.resblocks.\1.attn.in_proj_\2"),
    (r"^transformer\.(\d+)\.pre_norm_mha\.1\.out_proj\.", r"transformer.resblocks.\1.attn.out_proj."),
    (r"^transformer\.(\d+)\.pre_norm_ffn\.0\.", r"transformer.resblocks.\1.ln_2."),
    (r"^transformer\.(\d+)\.pre_norm_ffn\.1\.", r"transformer.resblocks.\1.mlp.c_fc."),
    (r"^transformer\.(\d+)\.pre_norm_ffn\.4\.", r"transformer.resblocks.\1.mlp.c_proj."),
    (r"^final_layer_norm\.", "ln_final."),
    (r"^projection_layer$", "text_projection"),
]
# Entries whose tensor changes form, not only its name: v1 key -> (open_clip key, op).
_SPECIAL = {
    "image_encoder.model.head.proj": ("visual.trunk.head.fc.weight", "transpose"),
    "image_encoder.model.classifier.proj": ("visual.trunk.head.weight", "transpose"),
    "image_encoder.model.pos_embed.pos_embed.pos_embed": ("visual.trunk.pos_embed", "reshape"),
    "text_encoder.positional_embedding.pos_embed.pos_embed": ("text.positional_embedding", "reshape"),
}
# The open_clip head has a bias the v1 projection lacks; the converter writes zeros there.
HEAD_BIAS_KEYS = ("visual.trunk.head.fc.bias", "visual.trunk.head.bias")


def _subs(name: str, rules: Iterable[tuple[str, str]]) -> str:
    for pattern, repl in rules:
        name = re.sub(pattern, repl, name)
    return name


def v1_to_openclip_key(key: str) -> tuple[str, str]:
    """The open_clip/timm name of a v1 checkpoint key and how its tensor converts (``copy``/``transpose``/``reshape``).

    Covers MCi0-2 and the ViT-B image towers and the base text tower; raises KeyError for keys outside them
    (the MCt text tower of MobileCLIP-S0 has no open_clip form).
    """
    if key in _SPECIAL:
        return _SPECIAL[key]
    if key == "logit_scale":
        return key, "copy"
    if key.startswith("text_encoder."):
        rest = key.removeprefix("text_encoder.")
        if "repmixer" in rest or "token_mixer" in rest:
            raise KeyError(f"{key}: the MCt text encoder has no open_clip layout")
        return "text." + _subs(rest, _TEXT_SUBS), "copy"
    if not key.startswith("image_encoder.model."):
        raise KeyError(f"{key}: not a MobileCLIP v1 key")
    rest = key.removeprefix("image_encoder.model.")
    if rest.startswith(("cls_token", "patch_emb.", "transformer.", "post_transformer_norm.")):
        return "visual.trunk." + _subs(rest, _VIT_SUBS), "copy"
    rest = _subs(rest, _MCI_SUBS)
    match = re.match(r"network\.(\d+)\.", rest)
    if match:
        rest = _NETWORK_TO_STAGE[int(match.group(1))] + "." + rest[match.end() :]
    return "visual.trunk." + rest, "copy"


def openclip_layout(v1_layout: Mapping[str, tuple[int, ...]]) -> Layout:
    """Key -> shape of the open_clip form of a v1 layout (as open_clip's converter writes the file)."""
    out: Layout = {}
    for key, shape in v1_layout.items():
        new_key, op = v1_to_openclip_key(key)
        if op == "transpose":
            out[new_key] = tuple(reversed(shape))
            bias_key = HEAD_BIAS_KEYS[0] if new_key.endswith("fc.weight") else HEAD_BIAS_KEYS[1]
            out[bias_key] = (shape[1],)
        elif op == "reshape":
            out[new_key] = tuple(shape[2:] if new_key.startswith("text.") else shape[1:])
        else:
            out[new_key] = tuple(shape)
    return out


def convert_openclip_to_v1(state: Mapping[str, Any], v1_layout: Mapping[str, tuple[int, ...]], display: str) -> dict:
    """An open_clip-layout file of a v1 model (S1/S2/B/B-LT) as a v1 state dict; works on tensors and arrays.

    The open_clip head bias has no place in the v1 model; it must be zero (as open_clip's converter writes it).
    Raises CheckpointError naming missing entries or a non-zero head bias.
    """
    out: dict[str, Any] = {}
    missing = []
    for key, shape in v1_layout.items():
        oc_key, op = v1_to_openclip_key(key)
        if oc_key not in state:
            if not key.endswith("num_batches_tracked"):  # counters are optional (unused in eval)
                missing.append(oc_key)
            continue
        value = state[oc_key]
        out[key] = value.T if op == "transpose" else value.reshape(shape) if op == "reshape" else value
    if missing:
        raise CheckpointError(
            f"open_clip checkpoint lacks {len(missing)} entries of {display}: {', '.join(missing[:8])}"
        )
    for bias_key in HEAD_BIAS_KEYS:
        if bias_key in state and bool((state[bias_key] != 0).any()):
            raise CheckpointError(
                f"{bias_key} is not zero, so this is not a converted {display} checkpoint (the v1 model has no head "
                "bias); import it as the MobileCLIP2 model with the same architecture"
            )
    return out
