"""Training configuration: a small dataclass, loadable from JSON or TOML (``python -m trainer train CONFIG``)."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.train.loss import LossWeights

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class TrainConfig:
    """Everything the loop needs; defaults follow the MobileCLIP recipe (docs/mobileclip-spec.md §9.3, §9.4), scaled to
    one machine.

    ``batch_size`` is the global batch (all ranks, one optimiser step is ``accum`` micro-batches of it /
    ``accum``). ``precision`` ``auto`` uses bf16 autocast on GPUs that support it and fp32 elsewhere.
    ``syn_w_*`` default to the real caption's weights, as in ``DRClipLoss``.
    """

    # what to train on (the ``train`` command; album fine-tuning fills these itself)
    model: str = "mobileclip-s0"
    init: str | None = None
    data: str | None = None
    out_dir: str = "runs/train"
    # optimisation (recipe: lr 1e-3, betas 0.9/0.95, wd 0.2, clip 1.0, 1k warm-up then cosine)
    steps: int = 1000
    batch_size: int = 256
    accum: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.2
    beta1: float = 0.9
    beta2: float = 0.95
    warmup: int = 100
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    precision: str = "auto"
    device: str = "auto"
    ema_decay: float | None = None
    seed: int = 0
    # loss (recipe for MobileCLIP-S: distillation only, teacher scale 100)
    w_clip: float = 0.0
    w_kd: float = 1.0
    syn_w_clip: float | None = None
    syn_w_kd: float | None = None
    use_syn: bool = True
    teacher_scales: list[float] | None = None
    # bookkeeping
    log_every: int = 10
    checkpoint_every: int = 200
    eval_every: int = 0
    num_workers: int = 0
    progress: bool = True
    resume: bool = True

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("steps", "batch_size", "accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.batch_size % self.accum:
            raise ValueError(f"batch_size {self.batch_size} must be divisible by accum {self.accum}")

    @property
    def real_weights(self) -> LossWeights:
        return LossWeights(self.w_clip, self.w_kd)

    @property
    def syn_weights(self) -> LossWeights:
        clip = self.w_clip if self.syn_w_clip is None else self.syn_w_clip
        kd = self.w_kd if self.syn_w_kd is None else self.syn_w_kd
        return LossWeights(clip, kd)

    @property
    def distills(self) -> bool:
        """Whether any term needs teacher embeddings."""
        return bool(self.real_weights.kd or (self.use_syn and self.syn_weights.kd))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_from_dict(data: dict[str, Any], where: str = "config") -> TrainConfig:
    """Build a config from a dict; unknown keys are an error that lists the known ones."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return TrainConfig(**data)


def read_config_table(path: Path) -> dict[str, Any]:
    """The settings table of a ``.json`` or ``.toml`` config file (a ``[train]`` table in TOML is also accepted)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        data = tomllib.loads(text)
        data = data.get("train", data)
    elif path.suffix == ".json":
        data = json.loads(text)
    else:
        raise ValueError(f"{path}: a config must be a .json or .toml file")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the config must be a table / object")
    return dict(data)


def load_config(path: Path) -> TrainConfig:
    """Read a ``.json`` or ``.toml`` config file into a TrainConfig."""
    return config_from_dict(read_config_table(path), str(path))
