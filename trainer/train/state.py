"""Training state that resumes exactly: trainable weights, optimiser, scheduler, EMA, RNG states, data position."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

CHECKPOINT_FILE = "last.pt"


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices) so that model initialisation and dropout repeat."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """This process's RNG states in a form ``torch.load(weights_only=True)`` accepts (no numpy objects)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos)},
        "numpy_gauss": (int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` captured."""
    random.setstate(state["python"])
    numpy = state["numpy"]
    has_gauss, cached = state["numpy_gauss"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"], has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model: nn.Module) -> dict[str, Tensor]:
    """The parameters that train plus every buffer: what changes during training.

    Frozen weights are not stored; the student is rebuilt from its base model before a checkpoint is loaded.
    """
    names = {n for n, p in model.named_parameters() if p.requires_grad} | {n for n, _ in model.named_buffers()}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k in names}


def load_trainable_state(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Load a ``trainable_state``; raises KeyError when it does not cover the model's trainable parameters."""
    missing = {n for n, p in model.named_parameters() if p.requires_grad} - set(state)
    if missing:
        raise KeyError(f"checkpoint lacks trainable parameters: {sorted(missing)[:5]}")
    model.load_state_dict(state, strict=False)


class ModelEMA:
    """Exponential moving average of the trainable parameters (``shadow = d * shadow + (1 - d) * param``)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for name, param in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(param.detach(), 1.0 - self.decay)

    def state_dict(self) -> dict[str, Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for name, value in state.items():
            self.shadow[name].copy_(value)

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily put the averaged weights into ``model`` (for evaluation or export)."""
        params = dict(model.named_parameters())
        saved = {n: params[n].detach().clone() for n in self.shadow}
        with torch.no_grad():
            for name, value in self.shadow.items():
                params[name].copy_(value)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, value in saved.items():
                    params[name].copy_(value)


def save_checkpoint(path: Path, state: dict) -> Path:
    """Write a checkpoint atomically (a crash mid-write leaves the previous one intact)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by ``save_checkpoint`` (tensors and plain Python values only)."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)
