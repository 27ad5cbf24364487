"""The training loop: reinforced loss, AdamW + warm-up/cosine, clipping, bf16 autocast, EMA, exact resume,
torchrun DDP with gathered features, metrics JSONL + PNG, tqdm. Gradient accumulation is exact: with ``accum > 1``
the loss is still that of the whole global batch (all micro-batches on all ranks), by feature caching
(``trainer.train.accumulate``), so a small device trains with a big contrastive batch.

A *student* is any module with ``encode_image(x)``, ``encode_text(tokens)`` and a ``logit_scale`` parameter
(log form, clamped at 100 after exp as MobileCLIP v1 does): MobileCLIP models and the album students both are.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from trainer.train.accumulate import Features, accumulate_gradients
from trainer.train.config import TrainConfig
from trainer.train.data import Batch, BatchSource
from trainer.train.distributed import DistInfo, all_gather_objects, barrier, gather_no_grad, gather_with_grad
from trainer.train.loss import Teacher, reinforced_loss, retrieval_accuracy
from trainer.train.metrics import MetricsLog, plot_curves, read_metrics
from trainer.train.optim import make_optimizer, make_scheduler
from trainer.train.state import (
    CHECKPOINT_FILE,
    ModelEMA,
    load_checkpoint,
    load_trainable_state,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    trainable_state,
)

LOGIT_SCALE_MAX = 100.0
Evaluate = Callable[[nn.Module], dict[str, float]]


@dataclass
class TrainResult:
    """What a run left: the step reached, per-step records, and its files."""

    step: int
    records: list[dict] = field(default_factory=list)
    checkpoint: Path | None = None
    metrics: Path | None = None
    plot: Path | None = None

    def losses(self) -> list[float]:
        """The training loss of every step this call ran, in order."""
        return [r["loss"] for r in self.records if "loss" in r]


class _Forward(nn.Module):
    """The student's two towers as one forward, so DDP sees (and synchronises) every step."""

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.student = student

    def forward(self, image: Tensor, texts: Sequence[Tensor]) -> tuple[Tensor, list[Tensor], Tensor]:
        u = F.normalize(self.student.encode_image(image), dim=-1)
        if len(texts) > 1 and all(t.shape[1:] == texts[0].shape[1:] for t in texts):
            joint = F.normalize(self.student.encode_text(torch.cat(list(texts))), dim=-1)  # one pass for both kinds
            vs = list(joint.split([t.shape[0] for t in texts]))
        else:
            vs = [F.normalize(self.student.encode_text(t), dim=-1) for t in texts]
        scale = self.student.logit_scale.exp().clamp(max=LOGIT_SCALE_MAX)
        return u, vs, scale


def use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    """bf16 autocast: asked for explicitly, or ``auto`` on a GPU that supports it (CPU bf16 is often slower)."""
    if cfg.precision == "bf16":
        return True
    return cfg.precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()


def _to(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}


def _encode(forward: nn.Module, batch: Batch, cfg: TrainConfig) -> Features:
    return forward(batch["image"], [batch["text"]] + ([batch["syn_text"]] if cfg.use_syn else []))


def _batch_loss(
    features: Features, batch: Batch, cfg: TrainConfig, teachers: Sequence[Teacher], info: DistInfo
) -> dict[str, Tensor]:
    """The loss parts of the global batch from this rank's features and the batch's teacher embeddings and keys."""
    u, vs, scale = features
    u = gather_with_grad(u, info)
    vs = [gather_with_grad(v, info) for v in vs]
    kd = cfg.distills

    def g(key: str) -> Tensor | None:
        value = batch.get(key)
        return gather_no_grad(value, info) if isinstance(value, Tensor) else None

    out = reinforced_loss(
        u,
        vs[0],
        vs[1] if cfg.use_syn else None,
        scale,
        real=cfg.real_weights,
        syn=cfg.syn_weights,
        image_emb=g("image_emb") if kd else None,
        text_emb=g("text_emb") if kd else None,
        syn_text_emb=g("syn_text_emb") if kd and cfg.use_syn else None,
        teachers=teachers,
        text_keys=g("text_key"),
        syn_keys=g("syn_key") if cfg.use_syn else None,
    )
    out["acc"] = torch.tensor(retrieval_accuracy(u.detach(), vs[0].detach(), g("text_key")))
    out["scale"] = scale.detach()
    return out


def _loss(
    forward: nn.Module, batch: Batch, cfg: TrainConfig, teachers: Sequence[Teacher], info: DistInfo
) -> dict[str, Tensor]:
    return _batch_loss(_encode(forward, batch, cfg), batch, cfg, teachers, info)


def backward_step(
    forward: nn.Module,
    batches: Sequence[Batch],
    cfg: TrainConfig,
    teachers: Sequence[Teacher] = (),
    info: DistInfo | None = None,
    autocast: contextlib.AbstractContextManager | None = None,
) -> dict[str, Tensor]:
    """Back-propagate the loss of one optimiser step's micro-batches (on ``info.device``) as one global batch.

    ``forward`` is the loop's ``_Forward`` (or its DDP wrapper). One micro-batch takes a single pass; several go
    through feature caching, with the same gradient as one pass over their concatenation. Returns the loss parts
    of the global batch, detached.
    """
    info = info or DistInfo()
    autocast = autocast if autocast is not None else contextlib.nullcontext()
    if len(batches) == 1:
        with autocast:
            parts = _loss(forward, batches[0], cfg, teachers, info)
        parts["loss"].backward()
        return {k: v.detach() for k, v in parts.items()}
    return accumulate_gradients(
        forward,
        batches,
        lambda batch: _encode(forward, batch, cfg),
        lambda features, merged: _batch_loss(features, merged, cfg, teachers, info),
        autocast=autocast,
        device=info.device,
    )


def _batches(source: BatchSource, cfg: TrainConfig, info: DistInfo, epoch: int, position: int):
    """Endless micro-batches from (epoch, position); yields (batch, epoch, position after it)."""
    micro = cfg.batch_size // cfg.accum
    while True:
        any_batch = False
        for batch in source.batches(epoch, position, micro, info, cfg.seed):
            any_batch = True
            position += 1
            yield batch, epoch, position
        if not any_batch and position == 0:
            raise ValueError(f"the data gives no batch of {micro} samples; lower the batch size")
        epoch, position = epoch + 1, 0


class _Run:
    """One ``train`` call's moving parts: the student (DDP-wrapped when distributed), its optimiser, schedule and
    EMA, the data position, and how to checkpoint and resume all of them exactly."""

    def __init__(self, student: nn.Module, source: BatchSource, cfg: TrainConfig, info: DistInfo, out: Path) -> None:
        self.student, self.source, self.cfg, self.info = student, source, cfg, info
        student.to(info.device)
        self.forward: nn.Module = _Forward(student)
        if info.distributed:
            self.forward = nn.parallel.DistributedDataParallel(
                self.forward, device_ids=[info.device.index] if info.device.type == "cuda" else None
            )
        self.optimizer = make_optimizer(student, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2))
        self.scheduler = make_scheduler(self.optimizer, cfg.warmup, cfg.steps, cfg.min_lr_ratio)
        self.ema = ModelEMA(student, cfg.ema_decay) if cfg.ema_decay else None
        self.step, self.epoch, self.position = 0, 0, 0
        self.checkpoint_path = out / CHECKPOINT_FILE
        self.autocast = torch.autocast(info.device.type, dtype=torch.bfloat16, enabled=use_bf16(cfg, info.device))

    def resume_or_seed(self, log: Callable[[str], None]) -> None:
        """Continue from the checkpoint when asked and there is one (weights, optimiser, schedule, EMA, data
        position, random state), else seed a fresh run; then open the batch stream where the run stands."""
        if self.cfg.resume and self.checkpoint_path.is_file():
            state = load_checkpoint(self.checkpoint_path)
            load_trainable_state(self.student, state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if self.ema is not None and state.get("ema") is not None:
                self.ema.load_state_dict(state["ema"])
            self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
            set_rng_state(state["rng"][min(self.info.rank, len(state["rng"]) - 1)])
            log(f"resumed from {self.checkpoint_path} at step {self.step}")
        else:
            seed_everything(self.cfg.seed + self.info.rank)
        self.trainable = [p for p in self.student.parameters() if p.requires_grad]
        self.stream = _batches(self.source, self.cfg, self.info, self.epoch, self.position)

    def save(self) -> Path:
        """Checkpoint everything resuming needs (every rank's random state, gathered; rank 0 writes)."""
        rngs = all_gather_objects(rng_state(), self.info)
        if self.info.is_main:
            save_checkpoint(
                self.checkpoint_path,
                {
                    "step": self.step,
                    "epoch": self.epoch,
                    "position": self.position,
                    "model": trainable_state(self.student),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "ema": self.ema.state_dict() if self.ema is not None else None,
                    "rng": rngs,
                    "config": self.cfg.to_dict(),
                },
            )
        barrier(self.info)
        return self.checkpoint_path

    def optimise(self, teachers: Sequence[Teacher], regularise: Callable[[nn.Module], Tensor] | None) -> dict:
        """One optimiser step over ``cfg.accum`` micro-batches; returns the step's record (loss parts, lr, time)."""
        started = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        batches = []
        for _ in range(self.cfg.accum):
            batch, self.epoch, self.position = next(self.stream)
            batches.append(_to(batch, self.info.device))
        parts = backward_step(self.forward, batches, self.cfg, teachers, self.info, self.autocast)
        parts = {k: float(v) for k, v in parts.items()}
        if regularise is not None:
            with self.autocast:
                extra = regularise(self.student)
            extra.backward()  # gradients add up with the main loss's
            parts["regulariser"] = float(extra.detach())
            parts["loss"] += parts["regulariser"]
        clip = self.cfg.grad_clip
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable, clip) if clip > 0 else None
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.student)
        self.step += 1
        record = {"step": self.step, "epoch": self.epoch, "lr": lr, **parts, "step_s": time.perf_counter() - started}
        if grad_norm is not None:
            record["grad_norm"] = float(grad_norm)
        return record


def train(
    student: nn.Module,
    source: BatchSource,
    cfg: TrainConfig,
    *,
    teachers: Sequence[Teacher] = (),
    out_dir: Path | None = None,
    info: DistInfo | None = None,
    evaluate: Evaluate | None = None,
    stop_after: int | None = None,
    stop_when: Callable[[dict[str, float]], bool] | None = None,
    on_step: Callable[[int], None] | None = None,
    regularise: Callable[[nn.Module], Tensor] | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> TrainResult:
    """Train ``student`` in place for ``cfg.steps`` optimiser steps (resuming from ``out_dir/last.pt`` if present).

    ``stop_after`` ends the call after that step with a checkpoint, as an interruption would. ``evaluate`` runs on
    rank 0 every ``cfg.eval_every`` steps and at the end; its numbers go into the metrics. Raises ValueError for
    a config the data or teachers cannot serve. ``stop_when`` (one process only) sees each evaluation's scores;
    when it returns True the run ends at that step, an early stop (``TrainResult.step`` says where). ``on_step``
    hears each finished step's number on rank 0 (a progress display other than the tqdm bar). ``regularise`` (one
    process only) is an extra loss term of the student alone, added to every step's loss (its value is recorded as
    ``regulariser``), e.g. the album fine-tune's text anchor.
    """
    info = info or DistInfo()
    out = Path(out_dir or cfg.out_dir)
    if (stop_when is not None or regularise is not None) and info.distributed:
        raise ValueError("an early stop (stop_when) and a regulariser run in one process only")
    if cfg.distills and not teachers:
        raise ValueError("the loss distils (w_kd > 0) but no teacher is given; set w_kd = 0 for plain CLIP training")
    run = _Run(student, source, cfg, info, out)
    run.resume_or_seed(log)
    metrics = MetricsLog(out / "metrics.jsonl", resume_step=run.step) if info.is_main else None
    result = TrainResult(step=run.step, metrics=metrics.path if metrics else None)
    bar = tqdm(total=cfg.steps, initial=run.step, disable=not (cfg.progress and info.is_main), desc="training")
    last = min(cfg.steps, stop_after) if stop_after is not None else cfg.steps
    student.train()
    while run.step < last:
        record = run.optimise(teachers, regularise)
        result.records.append(record)
        if metrics is not None and (run.step % cfg.log_every == 0 or run.step == last):
            metrics.write(record)
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.3f}")
        if on_step is not None and info.is_main:
            on_step(run.step)
        if evaluate is not None and ((cfg.eval_every and run.step % cfg.eval_every == 0) or run.step == cfg.steps):
            if _evaluate_step(run, evaluate, stop_when, result, metrics, log):
                last = run.step
        if run.step == last or (cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0):
            result.checkpoint = run.save()
    bar.close()
    result.step = run.step
    if metrics is not None:
        records = read_metrics(metrics.path)
        loss_keys = ["loss", "clip", "kd", "clip_syn", "kd_syn", "regulariser"]
        acc_keys = ["acc"] + sorted({k for r in records for k in r if k.startswith("val_")})
        result.plot = plot_curves(records, out / "curves.png", loss_keys, acc_keys)
    return result


def _evaluate_step(
    run: _Run,
    evaluate: Evaluate,
    stop_when: Callable[[dict[str, float]], bool] | None,
    result: TrainResult,
    metrics: MetricsLog | None,
    log: Callable[[str], None],
) -> bool:
    """Evaluate on rank 0 and record the scores; True when ``stop_when`` asks the run to end at this step."""
    stop = False
    if run.info.is_main:
        scores = _evaluate(run.student, run.ema, evaluate)
        result.records.append({"step": run.step, **scores})
        if metrics is not None:
            metrics.write({"step": run.step, **scores})
        if stop_when is not None and stop_when(scores):
            log(f"early stop at step {run.step}")
            stop = True
    barrier(run.info)
    return stop


def _evaluate(student: nn.Module, ema: ModelEMA | None, evaluate: Evaluate) -> dict[str, float]:
    """Run ``evaluate`` in eval mode (on the EMA weights when there are some), then return to training mode."""
    student.eval()
    try:
        with ema.applied(student) if ema is not None else contextlib.nullcontext():
            return {k: float(v) for k, v in evaluate(student).items()}
    finally:
        student.train()
