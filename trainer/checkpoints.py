"""Read official MobileCLIP checkpoints safely, recognise the variant and layout, convert, and load them.

A checkpoint is read with ``torch.load(weights_only=True)`` (or safetensors), so a pickle that would run code is
refused. ``{"state_dict": ...}`` wrappers and a ``module.`` prefix are accepted. The variant is recognised from the
key names and shapes; v1 models that Apple also publishes in the open_clip layout (MobileCLIP-S1/S2/B ``-OpenCLIP``)
are converted back to the ml-mobileclip layout, whose module reproduces Apple's reference (for B the stem padding
and LayerNorm eps differ from timm's, docs/mobileclip-spec.md §13.2).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import torch
from torch import Tensor

from core.errors import PhotoSeekError
from trainer.models.clip import MODELS, MobileCLIP, create_model, model_info, resolve_name


class CheckpointError(PhotoSeekError):
    """A checkpoint file cannot be read, is refused as unsafe, or does not fit the model."""


# --- reading --------------------------------------------------------------------------------------------------------


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" (it references {found.group(1)})" if found else ""
        raise CheckpointError(
            f"{path}: refused: the file holds Python objects other than tensors{what}, and loading it could run "
            "code. Official MobileCLIP checkpoints are plain tensor dictionaries; this file may be malicious."
        ) from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as exc:
        raise CheckpointError(
            f"{path}: cannot read it as a PyTorch checkpoint (truncated or damaged download, or another kind of "
            f"file): {type(exc).__name__}: {str(exc)[:200]}"
        ) from exc


def _safetensors_load(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read it as a safetensors file: {exc}") from exc


def read_state_dict(path: Path) -> tuple[dict[str, Tensor], list[str]]:
    """The tensors of a checkpoint file and notes on how they were unwrapped.

    Accepts a plain state dict, ``{"state_dict": {...}}`` (other entries such as ``epoch`` are ignored) and keys
    that all start with ``module.`` (DataParallel). Raises CheckpointError for unreadable, unsafe or non-tensor
    content.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    data = _safetensors_load(path) if path.suffix == ".safetensors" else _torch_load(path)
    notes: list[str] = []
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]
        notes.append("unwrapped the 'state_dict' entry")
    if not isinstance(data, Mapping) or not data:
        raise CheckpointError(f"{path}: not a state dict (found {type(data).__name__})")
    bad = [str(k) for k, v in data.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"{path}: entries that are not tensors: {', '.join(bad[:5])}")
    state = dict(data)
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
        notes.append("removed the 'module.' prefix")
    return state, notes


# --- v1 <-> open_clip key names (docs/mobileclip-spec.md §7.2; checked against golden keymap-v1-to-openclip-*.json) ---

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


def convert_v1_to_openclip(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A v1 MobileCLIP-S1/S2/B state dict in the open_clip layout (as open_clip's converter writes it)."""
    out: dict[str, Tensor] = {}
    for key, tensor in state.items():
        new_key, op = v1_to_openclip_key(key)
        if op == "transpose":
            out[new_key] = tensor.T.contiguous()
            out[HEAD_BIAS_KEYS[0] if new_key.endswith("fc.weight") else HEAD_BIAS_KEYS[1]] = tensor.new_zeros(
                tensor.shape[1]
            )
        elif op == "reshape":
            out[new_key] = tensor.reshape(tensor.shape[2:] if new_key.startswith("text.") else tensor.shape[1:])
        else:
            out[new_key] = tensor
    return out


def convert_openclip_to_v1(state: Mapping[str, Tensor], name: str) -> dict[str, Tensor]:
    """An open_clip-layout file of v1 model ``name`` (S1/S2/B/B-LT) as a v1 state dict.

    The open_clip head bias has no place in the v1 model; it must be zero (as open_clip's converter writes it).
    Raises CheckpointError naming missing entries or a non-zero head bias.
    """
    target = layout_of(name)
    out: dict[str, Tensor] = {}
    missing = []
    for key, shape in target.items():
        oc_key, op = v1_to_openclip_key(key)
        if oc_key not in state:
            if not key.endswith("num_batches_tracked"):  # counters are optional (see load_model_from_state)
                missing.append(oc_key)
            continue
        tensor = state[oc_key]
        out[key] = tensor.T.contiguous() if op == "transpose" else tensor.reshape(shape) if op == "reshape" else tensor
    if missing:
        raise CheckpointError(f"open_clip checkpoint lacks {len(missing)} entries of {name}: {', '.join(missing[:8])}")
    for bias_key in HEAD_BIAS_KEYS:
        if bias_key in state and bool(state[bias_key].count_nonzero()):
            raise CheckpointError(
                f"{bias_key} is not zero, so this is not a converted {model_info(name).display} checkpoint (the v1 "
                "model has no head bias); import it as the MobileCLIP2 model with the same architecture"
            )
    return out


# --- recognising the variant ----------------------------------------------------------------------------------------

Layout = dict[str, tuple[int, ...]]


def _signature(state: Mapping[str, Tensor] | Layout) -> frozenset[tuple[str, tuple[int, ...]]]:
    """Key names and shapes, without BatchNorm ``num_batches_tracked`` (unused in eval; some exporters drop it)."""
    return frozenset(
        (k, tuple(v.shape) if isinstance(v, Tensor) else tuple(v))
        for k, v in state.items()
        if not k.endswith("num_batches_tracked")
    )


@cache
def layout_of(name: str) -> Layout:
    """Key -> shape of the official checkpoint of ``name`` (from the model built on the meta device)."""
    with torch.device("meta"):
        model = create_model(name)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@cache
def _openclip_signature(name: str) -> frozenset[tuple[str, tuple[int, ...]]]:
    with torch.device("meta"):
        converted = convert_v1_to_openclip(create_model(name).state_dict())
    return _signature(converted)


@cache
def _known_layouts(v1_names: bool) -> tuple[tuple[str, str, frozenset[tuple[str, tuple[int, ...]]]], ...]:
    """(name, file layout, signature) of every published file form: v1-named files or open_clip-named ones."""
    rows = []
    for name, info in MODELS.items():
        if (info.layout == "v1") == v1_names:
            rows.append((name, info.layout, _signature(layout_of(name))))
        if info.openclip_form and not v1_names:
            rows.append((name, "openclip", _openclip_signature(name)))
    return tuple(rows)


@dataclass(frozen=True)
class Detection:
    """Which model a checkpoint holds: registry ``name``, the ``file_layout`` it is stored in, and why."""

    name: str
    file_layout: str
    reason: str
    alternatives: tuple[str, ...] = field(default=())


def _diff_message(state: Mapping[str, Tensor], expected: Layout, what: str) -> str:
    keys = {k for k in state if not k.endswith("num_batches_tracked")}
    want = {k for k in expected if not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(want - keys), sorted(keys - want)
    shapes = [
        f"{k} {tuple(state[k].shape)} != {expected[k]}" for k in sorted(keys & want) if state[k].shape != expected[k]
    ]
    parts = [f"the checkpoint does not match {what}"]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            parts.append(f"{len(items)} {label}: {', '.join(items[:10])}{' ...' if len(items) > 10 else ''}")
    return "; ".join(parts)


def _head_bias_is_zero(state: Mapping[str, Tensor]) -> bool:
    return any(k in state and not bool(state[k].count_nonzero()) for k in HEAD_BIAS_KEYS)


def _pick(matches: list[tuple[str, str]], state: Mapping[str, Tensor], filename: str | None) -> Detection:
    """Choose among registry entries whose checkpoints have identical keys and shapes.

    Evidence in order: the open_clip head bias (zero only in files converted from a v1 model), the file name,
    then the newest release.
    """
    names = [n for n, _ in matches]
    reasons = ["keys and shapes match exactly"]
    v1_forms = [m for m in matches if MODELS[m[0]].layout == "v1"]
    mc2_forms = [m for m in matches if MODELS[m[0]].layout != "v1"]
    if v1_forms and mc2_forms:
        zero = _head_bias_is_zero(state)
        matches = v1_forms if zero else mc2_forms
        reasons = [
            "open_clip layout with a zero head bias: a v1 model converted by open_clip"
            if zero
            else "open_clip layout with a trained (non-zero) head bias: a MobileCLIP2 model"
        ]
    chosen = matches[0]
    if len(matches) > 1:
        try:
            hinted = resolve_name(Path(filename or "").name.split(".")[0])
        except KeyError:
            hinted = None
        by_name = [m for m in matches if m[0] == hinted]
        if by_name:
            chosen = by_name[0]
            reasons.append(f"the file name {filename!r} names it among models with the same architecture")
        else:  # B / B-LT, MobileCLIP-S3 / MobileCLIP2-S3: the newest release unless --name says otherwise
            chosen = next((m for m in matches if m[0].startswith("mobileclip2-")), matches[0])
            reasons.append("same architecture as other models; pass --name to pick another")
    return Detection(chosen[0], chosen[1], "; ".join(reasons), tuple(n for n in names if n != chosen[0]))


def detect_model(state: Mapping[str, Tensor], name: str | None = None, filename: str | None = None) -> Detection:
    """Recognise which registry model ``state`` holds (or check that it holds ``name``).

    Raises CheckpointError listing missing, unexpected and wrongly shaped keys when nothing matches.
    """
    signature = _signature(state)
    rows = _known_layouts(any(k.startswith("image_encoder.") for k in state))
    if name is not None:
        try:
            name = resolve_name(name)
        except KeyError as exc:
            raise CheckpointError(str(exc.args[0])) from None
        for row_name, layout, sig in rows:
            if row_name == name and sig == signature:
                return Detection(name, layout, "checked against --name")
        info = MODELS[name]
        holds = [row_name for row_name, _, sig in rows if sig == signature]
        if holds:
            raise CheckpointError(f"the checkpoint holds {MODELS[holds[0]].display}, not {info.display} (--name)")
        uses_openclip_names = any(k.startswith(("visual.", "text.")) for k in state)
        if info.openclip_form and uses_openclip_names:
            with torch.device("meta"):
                expected = {
                    k: tuple(v.shape) for k, v in convert_v1_to_openclip(create_model(name).state_dict()).items()
                }
            raise CheckpointError(_diff_message(state, expected, f"{info.display} (open_clip layout)"))
        raise CheckpointError(_diff_message(state, layout_of(name), info.display))
    matches = [(row_name, layout) for row_name, layout, sig in rows if sig == signature]
    if matches:
        return _pick(matches, state, filename)
    # Nothing matches: report against the registry model whose key names overlap most.
    keys = {k for k, _ in signature}
    best = max(MODELS, key=lambda n: len(keys & set(layout_of(n))))
    raise CheckpointError(
        "not a MobileCLIP checkpoint this version knows. Closest: " + _diff_message(state, layout_of(best), best)
    )


# --- loading --------------------------------------------------------------------------------------------------------


@dataclass
class LoadedCheckpoint:
    """A train-time model with the checkpoint's weights, and how the file was read."""

    model: MobileCLIP
    detection: Detection
    notes: list[str]
    source_dtypes: list[str]


def load_model_from_state(state: Mapping[str, Tensor], detection: Detection) -> tuple[MobileCLIP, list[str]]:
    """Build ``detection.name`` and load ``state`` into it strictly (float32, eval mode); returns notes."""
    notes: list[str] = []
    if detection.file_layout != MODELS[detection.name].layout:
        state = convert_openclip_to_v1(state, detection.name)
        notes.append(f"converted the open_clip layout to the ml-mobileclip (v1) layout of {detection.name}")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    expected = layout_of(detection.name)
    filled = [k for k in expected if k.endswith("num_batches_tracked") and k not in state]
    for key in filled:
        state[key] = torch.zeros((), dtype=torch.long)
    if filled:
        notes.append(f"added {len(filled)} missing BatchNorm num_batches_tracked counters (unused in eval)")
    with torch.device("meta"):
        model = create_model(detection.name)
    model = model.to_empty(device="cpu")  # no random init: every state entry is overwritten below
    persistent = set(model.state_dict())
    if any(buffer not in persistent for buffer, _ in model.named_buffers()):  # would stay uninitialised
        model = create_model(detection.name)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(_diff_message(state, expected, MODELS[detection.name].display))
    return model.eval(), notes


def load_checkpoint(path: Path, name: str | None = None) -> LoadedCheckpoint:
    """Read ``path``, recognise (or check) the model, convert the layout if needed, and load it strictly."""
    state, notes = read_state_dict(path)
    dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in state.values() if v.is_floating_point()})
    detection = detect_model(state, name, filename=Path(path).name)
    model, load_notes = load_model_from_state(state, detection)
    if dtypes != ["float32"]:
        load_notes.append(f"cast {', '.join(dtypes)} weights to float32")
    return LoadedCheckpoint(model, detection, notes + load_notes, dtypes)
