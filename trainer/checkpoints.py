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
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
from torch import Tensor

from core import mobileclip_keys
from core.errors import CheckpointError
from core.mobileclip_detect import Candidate, Detection, detect, diff_message
from core.mobileclip_keys import HEAD_BIAS_KEYS, Layout, openclip_layout, v1_to_openclip_key
from trainer.models.clip import MODELS, MobileCLIP, create_model, model_info, resolve_name

__all__ = ["HEAD_BIAS_KEYS", "CheckpointError", "Detection", "v1_to_openclip_key"]


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


# --- v1 <-> open_clip layouts (key names in core.mobileclip_keys) -------------------------------------------


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

    Raises CheckpointError naming missing entries or a non-zero head bias (see ``core.mobileclip_keys``).
    """
    out = mobileclip_keys.convert_openclip_to_v1(state, layout_of(name), model_info(name).display)
    return {k: v.contiguous() for k, v in out.items()}


# --- recognising the variant ----------------------------------------------------------------------------------------


@cache
def layout_of(name: str) -> Layout:
    """Key -> shape of the official checkpoint of ``name`` (from the model built on the meta device)."""
    with torch.device("meta"):
        model = create_model(name)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@cache
def candidates() -> tuple[Candidate, ...]:
    """Every published file form of every registry model: its own layout, and the open_clip form of S1/S2/B."""
    rows = []
    for name, info in MODELS.items():
        v1_model = info.layout == "v1"
        rows.append(Candidate(name, info.display, info.layout, v1_model, layout_of(name)))
        if info.openclip_form:
            rows.append(Candidate(name, info.display, "openclip", v1_model, openclip_layout(layout_of(name))))
    return tuple(rows)


def detect_model(state: Mapping[str, Tensor], name: str | None = None, filename: str | None = None) -> Detection:
    """Recognise which registry model ``state`` holds (or check that it holds ``name``); see ``core.mobileclip_detect``."""
    return detect(state, candidates(), resolve_name, name, filename)


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
        raise CheckpointError(diff_message(state, expected, MODELS[detection.name].display))
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
