"""The general training run behind ``python -m trainer train CONFIG``: a MobileCLIP student on reinforced shards.

The student is ``create_model(cfg.model)``, initialised from ``cfg.init`` (an official or own checkpoint) when
given; every parameter trains. Data: ``trainer.reinforce.reader.ReinforcedDataset`` over ``cfg.data`` (a dataset
folder with a card, ours or DataCompDR joined with its images), augmentations replayed at the student's resolution
and normalisation; teachers and their scales come from the dataset card (``cfg.teacher_scales`` overrides).
The final weights (EMA when enabled) are written as ``model.safetensors`` in the checkpoint layout. With
``export`` (config ``export = true`` or ``"ID"``, or ``--export [ID]``) the run then ends in a model package the app
loads: ``export_trained`` reparameterizes and exports those weights into the library (``library`` / ``--library``)
and keeps them in its ``checkpoints/`` folder, so the package can be fine-tuned on an album later.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from core.model_card import MODEL_ID_PATTERN
from core.tokenizers.clip_bpe import ClipBpeTokenizer, bundled_vocab_path
from trainer.train.config import TrainConfig, config_from_dict, read_config_table
from trainer.train.data import Batch, StreamSource
from trainer.train.distributed import DistInfo, init_distributed, shutdown
from trainer.train.loop import TrainResult, train
from trainer.train.loss import Teacher
from trainer.train.metrics import read_metrics
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


# --- ending a run in a model package ---------------------------------------------------------------------------------

EXPORT_KEYS = ("export", "library")  # settings of the run, not of the loop: TrainConfig does not carry them


@dataclass(frozen=True)
class ExportSettings:
    """Whether a run ends by exporting a model package: ``model_id`` (None: no export, ``""``: the default id
    ``<model>-<out_dir name>``) and the library to install it in (None: the default library)."""

    model_id: str | None = None
    library: str | None = None

    def resolved_id(self, cfg: TrainConfig) -> str | None:
        """The package id to export as, or None when no export was asked for."""
        if self.model_id is None:
            return None
        from trainer.models.clip import model_info

        default = f"{model_info(cfg.model).name}-{re.sub(r'[^a-z0-9._-]+', '-', Path(cfg.out_dir).name.lower())}"
        model_id = self.model_id or default.strip("-._")[:64]
        if not MODEL_ID_PATTERN.match(model_id):
            raise ValueError(f"package id {model_id!r} must be lower-case letters, digits, '.', '_' or '-'")
        return model_id


def load_run_config(path: Path) -> tuple[TrainConfig, ExportSettings]:
    """Read a ``.json`` or ``.toml`` training config (``load_config``'s rules) plus its ``export`` and ``library``
    settings. ``export`` is ``true`` / ``false`` or the package id. Raises ValueError for unknown or bad settings."""
    data = read_config_table(path)
    export, library = data.pop("export", False), data.pop("library", None)
    if not isinstance(export, bool | str) or not isinstance(library, str | None):
        raise ValueError(f"{path}: 'export' must be true, false or a model id, and 'library' a folder")
    settings = ExportSettings("" if export is True else export or None, library)
    return config_from_dict(data, str(path)), settings


def export_trained(
    cfg: TrainConfig,
    model_id: str,
    library: Path,
    result: TrainResult | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Export the finished run's ``model.safetensors`` as the model package ``model_id`` in ``library``.

    The weights are kept as ``<library>/checkpoints/<id>.safetensors`` and recorded in the card (what album
    fine-tuning rebuilds the model from); the card carries the run's config, data, teachers and final training
    metrics. Returns the installed package folder; raises FileNotFoundError when the run has not finished.
    """
    from core.kept_checkpoints import checkpoint_record, keep_checkpoint
    from core.model_card import sha256_file
    from core.model_card_types import InitStep, TrainedCheckpoint, TrainingData, TrainProvenance
    from core.model_store import ModelStore
    from core.package_writer import finalize_package, install_package, staging_dir
    from trainer.checkpoints import load_checkpoint
    from trainer.mobileclip_export import write_mobileclip_package
    from trainer.reinforce.reader import read_card

    weights = Path(cfg.out_dir) / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing: the run has not finished, so there is nothing to export")
    loaded = load_checkpoint(weights, cfg.model)
    store = ModelStore(Path(library))
    sha = sha256_file(weights)
    kept = keep_checkpoint(weights, store.library, sha, name=f"{model_id}.safetensors")
    info = loaded.model.info
    checkpoint = checkpoint_record(
        kept, store.library, sha, record=TrainedCheckpoint, file_layout=info.layout, variant=info.name
    )
    records = read_metrics(Path(cfg.out_dir) / "metrics.jsonl")
    last = next((r for r in reversed(records) if "loss" in r), {})
    data_card = read_card(Path(cfg.data)) if cfg.data else {}
    init = checkpoint_record(Path(cfg.init), None) if cfg.init else None
    provenance = TrainProvenance(
        built_by="python -m trainer train",
        checkpoint=checkpoint,
        init=init,
        lineage=(InitStep(id=None, checkpoint=init.file, checkpoint_sha256=init.sha256),) if init else (),
        data=TrainingData(path=str(Path(cfg.data).resolve()) if cfg.data else None, samples=data_card.get("samples")),
        teachers=tuple(t.get("id") for t in data_card.get("teachers", []) if isinstance(t, dict)),
        steps=result.step if result is not None else last.get("step"),
        config=cfg.to_dict(),
    )
    metrics = {k: last[k] for k in ("step", "loss", "clip", "kd", "clip_syn", "kd_syn", "acc") if k in last}
    staged = staging_dir(store.install_dir, model_id)
    try:
        card = write_mobileclip_package(
            loaded.model, staged, model_id=model_id, name=f"{info.display} ({Path(cfg.out_dir).name})",
            provenance=provenance, metrics={"final_training": metrics}, log=log,
        )  # fmt: skip
        finalize_package(staged, card)
        return install_package(staged, store.install_dir, model_id)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
