"""The general training run behind ``python -m trainer train CONFIG``: a MobileCLIP student on reinforced shards.

The student is ``create_model(cfg.model)``, initialised from ``cfg.init`` (an official or own checkpoint) when
given; every parameter trains. Data: ``trainer.reinforce.reader.ReinforcedDataset`` over ``cfg.data`` (a dataset
folder with a card, ours or DataCompDR joined with its images), augmentations replayed at the student's resolution
and normalisation; teachers and their scales come from the dataset card (``cfg.teacher_scales`` overrides).
The final weights (EMA when enabled) are written as ``model.safetensors`` in the checkpoint layout, which
``python -m trainer import`` turns into a model package.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from safetensors.torch import save_file

from core.tokenizers.clip_bpe import ClipBpeTokenizer, bundled_vocab_path
from trainer.train.config import TrainConfig
from trainer.train.data import Batch, StreamSource
from trainer.train.distributed import DistInfo, init_distributed, shutdown
from trainer.train.loop import TrainResult, train
from trainer.train.loss import Teacher
from trainer.train.state import ModelEMA

WEIGHTS_FILE = "model.safetensors"


class ClipTokenize:
    """Caption -> 77 CLIP BPE ids as a tensor (a class, so DataLoader workers can pickle it)."""

    def __init__(self) -> None:
        self.tokenizer = ClipBpeTokenizer(bundled_vocab_path())

    def __call__(self, text: str) -> torch.Tensor:
        return torch.from_numpy(self.tokenizer([text])["input_ids"][0])


class BudgetedStream(StreamSource):
    """A stream whose epochs stop at the same number of batches on every rank (ranks' shards differ in size)."""

    def batches(self, epoch: int, start: int, batch_size: int, info: DistInfo, seed: int) -> Iterator[Batch]:
        counts = self.dataset.rank_samples(info.world_size) if hasattr(self.dataset, "rank_samples") else None
        budget = None
        if counts:
            self.dataset.set_epoch(epoch)
            budget = min(counts) // (batch_size // info.world_size)
        for n, batch in enumerate(super().batches(epoch, start, batch_size, info, seed), start=start):
            if budget is not None and n >= budget:
                return
            yield batch


def build_student(cfg: TrainConfig) -> torch.nn.Module:
    """The MobileCLIP model to train, from ``cfg.init`` when given, in training mode with every weight trainable."""
    from trainer.checkpoints import load_checkpoint
    from trainer.models.clip import create_model

    model = load_checkpoint(Path(cfg.init), cfg.model).model if cfg.init else create_model(cfg.model)
    for param in model.parameters():
        param.requires_grad_(True)
    return model.train()


def run_training(cfg: TrainConfig, log: Callable[[str], None] = lambda _m: None) -> TrainResult:
    """Train as ``cfg`` says (joining torchrun's process group when launched by it); returns the result."""
    from trainer.reinforce.reader import ReinforcedDataset, replay_transform, teacher_slices

    if not cfg.data:
        raise ValueError("the config names no reinforced dataset ('data')")
    info = init_distributed(cfg.device)
    try:
        student = build_student(cfg)
        spec = student.info
        dataset = ReinforcedDataset(
            Path(cfg.data),
            image_transform=replay_transform(spec.resolution, spec.mean, spec.std, spec.interpolation),
            tokenize=ClipTokenize(),
            seed=cfg.seed,
        )
        if dataset.card is None:
            raise ValueError(f"{cfg.data}: a training dataset needs its dataset card (a folder made by reinforce)")
        slices = teacher_slices(dataset.card)
        scales = cfg.teacher_scales or [scale for _, _, scale in slices]
        if len(scales) != len(slices):
            raise ValueError(f"teacher_scales has {len(scales)} values for {len(slices)} teachers")
        teachers = [Teacher(tid, cols, float(s)) for (tid, cols, _), s in zip(slices, scales, strict=True)]
        if info.is_main:
            log(f"training {spec.display} on {cfg.data} with teachers {', '.join(t.name for t in teachers)}")
        result = train(student, BudgetedStream(dataset, cfg.num_workers), cfg, teachers=teachers, info=info, log=log)
        if info.is_main and result.step >= cfg.steps:
            _save_weights(student, result, Path(cfg.out_dir))
        return result
    finally:
        shutdown(info)


def _save_weights(student: torch.nn.Module, result: TrainResult, out: Path) -> Path:
    """Final weights (the EMA ones when the checkpoint holds an EMA) in the model's checkpoint layout."""
    ema_state = None
    if result.checkpoint is not None:
        ema_state = torch.load(result.checkpoint, map_location="cpu", weights_only=True).get("ema")
    context = contextlib.nullcontext()
    if ema_state:
        ema = ModelEMA(student, 0.5)
        ema.load_state_dict(ema_state)
        context = ema.applied(student)
    with context:
        state = {k: v.detach().cpu().contiguous() for k, v in student.state_dict().items()}
    path = out / WEIGHTS_FILE
    save_file(state, str(path))
    return path
