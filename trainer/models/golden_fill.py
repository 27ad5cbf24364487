"""Deterministic per-key fill of a state dict (the scheme of ``tests/data/golden/README.md``).

Each entry is filled from a PCG64 generator seeded with the CRC32 of its key, by the first matching rule, so that a
re-implementation with the reference key names reproduces the reference golden tensors exactly. Also used to make
fake "official" checkpoints for import tests.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

LOGIT_SCALE_INIT = math.log(1 / 0.07)


def fill_rule(name: str, shape: tuple[int, ...], is_integer: bool) -> str:
    """Name of the first fill rule that applies to an entry (as in the ``fill_rule`` field of ``keys-<V>.json``)."""
    if is_integer:
        return "int_zero"
    if name.endswith("running_mean"):
        return "running_mean"
    if name.endswith("running_var"):
        return "running_var"
    if name == "logit_scale":
        return "logit_scale"
    if "layer_scale" in name:
        return "layer_scale"
    if len(shape) == 1 and name.endswith(".weight"):
        return "norm_weight"
    if name.endswith(".bias") or name.endswith("_bias"):
        return "bias"
    if "pos_embed" in name or "positional_embedding" in name or "cls_token" in name:
        return "pos_or_cls"
    if len(shape) >= 2:
        return "fan_in"
    return "other"


def golden_value(name: str, shape: tuple[int, ...], is_integer: bool = False) -> np.ndarray:
    """The float64 (or int64) array the golden fill gives the entry ``name`` of ``shape``."""
    rule = fill_rule(name, shape, is_integer)
    if rule == "int_zero":
        return np.zeros(shape, dtype=np.int64)
    rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
    if rule == "running_mean":
        return rng.standard_normal(shape) * 0.1
    if rule == "running_var":
        return rng.uniform(0.5, 1.5, shape)
    if rule == "logit_scale":
        return np.full(shape, LOGIT_SCALE_INIT, dtype=np.float64)
    if rule == "layer_scale":
        return rng.uniform(0.1, 0.3, shape)
    if rule == "norm_weight":
        return rng.uniform(0.8, 1.2, shape)
    values = rng.standard_normal(shape)
    if rule == "fan_in":
        values /= math.sqrt(math.prod(shape[1:]))  # in place: these arrays reach 128 MB for MobileCLIP2-S4
    else:  # bias, pos_or_cls, other
        values *= 0.02
    return values


def fill_state_dict(model: nn.Module, prefix: str = "") -> None:
    """Fill every state-dict entry of ``model`` in place with the golden values of key ``prefix + name``.

    ``prefix`` lets a sub-module be filled with the values of its place in the full model (for example
    ``"image_encoder."`` for a v1 image encoder, ``"visual."`` for a MobileCLIP2 one).
    """
    with torch.no_grad():
        for name, tensor in model.state_dict(keep_vars=True).items():
            is_int = not (tensor.is_floating_point() or tensor.is_complex())
            value = golden_value(prefix + name, tuple(tensor.shape), is_int)
            tensor.copy_(torch.from_numpy(np.asarray(value)))  # copy_ casts float64 -> float32 without a temporary


def build_filled(factory: Callable[[], nn.Module], prefix: str = "", device: str | torch.device = "cpu") -> nn.Module:
    """Build ``factory()`` without running its random initialisation (on the meta device), then fill it.

    Much faster than building normally and overwriting for the large encoders (MobileCLIP2-S4: ~5 s saved).
    Every state-dict entry is written by the fill; the module is returned in the mode ``factory`` left it in.
    """
    with torch.device("meta"):
        model = factory()
    model = model.to_empty(device=device)
    fill_state_dict(model, prefix)
    return model
