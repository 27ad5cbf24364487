"""The deterministic per-key fill of the MobileCLIP golden parity data (``tests/data/golden/README.md``), in numpy.

Each entry is filled from a PCG64 generator seeded with the CRC32 of its key, by the first matching rule, so a
re-implementation with the reference key names reproduces the reference golden tensors exactly. Torch-free so that
golden-filled checkpoints can be made where torch cannot be imported; the trainer fills its modules with it.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

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
