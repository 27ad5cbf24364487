"""Structural reparameterization of a whole model (train-time branches -> inference convs)."""

from __future__ import annotations

import copy

from torch import nn


def reparameterize_model(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Return ``model`` with every module that has a ``reparameterize()`` method fused to its inference form.

    By default a deep copy is fused and the input is left unchanged; ``inplace=True`` fuses ``model`` itself
    (saves a copy of the weights for the big encoders). Parents are visited before their children (a fused
    parent drops its branch children, so they are not visited). Train/eval mode is kept.
    """
    fused = model if inplace else copy.deepcopy(model)
    for module in fused.modules():
        if hasattr(module, "reparameterize"):
            module.reparameterize()
    return fused
