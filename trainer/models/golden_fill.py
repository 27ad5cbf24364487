"""Fill torch modules with the golden parity values (``core.golden_fill``: the scheme of tests/data/golden/README.md).

Each entry is filled from a PCG64 generator seeded with the CRC32 of its key, by the first matching rule, so that a
re-implementation with the reference key names reproduces the reference golden tensors exactly. Also used to make
fake "official" checkpoints for import tests.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from core.golden_fill import LOGIT_SCALE_INIT, fill_rule, golden_value

__all__ = ["LOGIT_SCALE_INIT", "build_filled", "fill_rule", "fill_state_dict", "golden_value"]


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
