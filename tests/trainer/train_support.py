"""Shared by the training-loop tests: a tiny two-tower student, its reinforced data, a config, and the DDP run."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from trainer.train.config import TrainConfig
from trainer.train.data import ReinforcedTensors
from trainer.train.distributed import init_distributed, shutdown
from trainer.train.loop import train
from trainer.train.loss import Teacher
from trainer.train.state import trainable_state

torch.set_num_threads(1)  # the tiny models run fastest on one thread (also in the torchrun workers that import this)

TEACHERS = [Teacher("a", slice(0, 4), 20.0), Teacher("b", slice(4, 9), 30.0)]


class TinyStudent(nn.Module):
    """Two small towers with a norm, dropout and a learnable logit scale."""

    def __init__(self, in_dim: int = 8, vocab: int = 24, dim: int = 6, dropout: float = 0.1) -> None:
        super().__init__()
        self.image = nn.Sequential(nn.Linear(in_dim, 16), nn.LayerNorm(16), nn.GELU(), nn.Dropout(dropout))
        self.image_proj = nn.Linear(16, dim)
        self.token = nn.Embedding(vocab, 16)
        self.text_proj = nn.Linear(16, dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.image_proj(self.image(x))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text_proj(self.token(tokens).mean(dim=1))


def tiny_data(n: int = 24, augs: int = 3, seed: int = 0) -> ReinforcedTensors:
    """Samples of 4 classes; inputs, teacher embeddings and captions all carry the class, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    classes = torch.arange(n) % 4
    centres = torch.randn(4, 8, generator=gen)
    inputs = centres[classes][:, None, :] + 0.5 * torch.randn(n, augs, 8, generator=gen)
    t_centres = torch.randn(4, 9, generator=gen)
    image_emb = t_centres[classes][:, None, :] + 0.3 * torch.randn(n, augs, 9, generator=gen)
    # Caption c of class k: tokens (k, 4 + c); 4 real captions (one per class) and 8 synthetic ones.
    tokens = torch.tensor([[k, 4 + k] for k in range(4)] + [[k, 8 + c] for c in range(8) for k in [c % 4]])
    caption_emb = torch.cat([t_centres, t_centres[torch.arange(8) % 4]]) + 0.1 * torch.randn(12, 9, generator=gen)
    real = [[int(k)] for k in classes]
    syn = [[4 + c for c in range(8) if c % 4 == int(k)] for k in classes]
    return ReinforcedTensors(
        inputs,
        image_emb,
        tokens,
        caption_emb,
        real,
        syn,
        [f"class{int(k)}" for k in classes],
        [str(i) for i in range(n)],
    )


def config(tmp: Path, **overrides) -> TrainConfig:
    base = dict(
        out_dir=str(tmp), steps=8, batch_size=8, lr=3e-3, warmup=2, weight_decay=0.1, w_clip=0.5, w_kd=0.5,
        log_every=1, checkpoint_every=0, progress=False, device="cpu", seed=3,
    )  # fmt: skip
    base.update(overrides)
    return TrainConfig(**base)


def student(seed: int = 0, **kwargs) -> TinyStudent:
    torch.manual_seed(seed)
    return TinyStudent(**kwargs)


DDP_STEPS = 4  # optimiser steps of `ddp_run`


def ddp_run(out: Path) -> tuple[list[float], dict[str, torch.Tensor]]:
    """test_train_ddp's run, in each torchrun worker and as one process: global batch 8, features gathered across
    ranks, clipping and accumulation on."""
    info = init_distributed("cpu")
    model = student(dropout=0.0)  # no dropout: ranks draw different dropout masks than one process would
    cfg = config(out, steps=DDP_STEPS, batch_size=8, accum=2, grad_clip=0.5, w_clip=0.5, w_kd=0.5)
    result = train(model, tiny_data(), cfg, teachers=TEACHERS, info=info)
    if info.is_main:
        torch.save({"losses": result.losses(), "state": trainable_state(model)}, out / "result.pt")
    shutdown(info)
    return result.losses(), trainable_state(model)
