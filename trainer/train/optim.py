"""AdamW with the CLIP parameter groups, and warm-up followed by cosine decay (docs/mobileclip-spec.md §9.4).

Recipe defaults (ml-mobileclip ``run_datacompdr*.sh`` via docs/mobileclip-spec.md): lr 1e-3, betas (0.9, 0.95),
weight decay 0.2, 1,000 warm-up steps then cosine to 0 (open_clip's ``cosine_lr``). Norms, biases, layer scales and
the logit scale get no weight decay: decaying them pulls scales towards 0 and fights the normalisation they implement.
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

# Names of parameters exempt from decay even when they have more than one dimension: layer scales (C, 1, 1)
# and everything called a norm; 0/1-d parameters (biases, norm weights, the logit scale) are exempt anyway.
_NO_DECAY = re.compile(r"(^|\.)(bias|logit_scale|layer_scale\w*|gamma|\w*norm\w*|bn\w*|ln\w*)(\.|$)")


def no_weight_decay(name: str, param: nn.Parameter) -> bool:
    """Whether a parameter is exempt from weight decay: any tensor of at most one dimension, or a name above."""
    return param.ndim <= 1 or bool(_NO_DECAY.search(name))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups over the trainable parameters: with ``weight_decay`` and without."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if no_weight_decay(name, param) else decay).append(param)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters")
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(
    model: nn.Module, lr: float = 1e-3, weight_decay: float = 0.2, betas: tuple[float, float] = (0.9, 0.95)
) -> torch.optim.AdamW:
    """AdamW over ``param_groups`` (eps 1e-6 as open_clip)."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=1e-6)


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """LR multiplier at ``step``: linear from 1/warmup to 1 over ``warmup`` steps, then cosine to ``min_ratio``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, warmup: int, total: int, min_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepping once per optimiser step with ``warmup_cosine``; its state dict resumes exactly."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, warmup, total, min_ratio))
