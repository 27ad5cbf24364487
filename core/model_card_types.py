"""The model card's `architecture` and `provenance`, typed: one class per family and per builder.

Their JSON keys differ by who wrote the card: the starter build, a MobileCLIP import (trainer or core), a training
run's export, an album fine-tune. The key names are the field names, so the JSON stays the contract it was. Three
rules keep old and other cards loading and a written card's keys as they were:

- a field with ``opt()`` is written only when set (its builders never wrote null there); older cards may lack it;
- a ``T | None = None`` field is always written, null when unknown (its builders write null there);
- keys no class here knows are kept, verbatim, in ``extra`` and written back after the known ones.

A value of the wrong type raises ModelPackageError naming the key (``architecture.finetune.labels``). Which class a
record gets: the architecture's ``family``, the provenance's ``built_by``; anything else gets the plain base class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.card_records import Record, decode, opt

# --- architecture ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class FinetuneRecord(Record):
    """``architecture.finetune``: what an album fine-tune (``python -m trainer finetune``) trained, from which base."""

    json_order = ("base", "family", "image", "text", "text_only")
    json_order += ("trainable_parameters", "parameters", "source_checkpoint_sha256", "labels")

    base: str
    family: str  # the tuner's family: "conse" (starter) or "mobileclip"
    image: str
    text: str
    labels: tuple[str, ...]
    text_only: bool | None = opt()  # fine-tunes before --text-only lack it
    trainable_parameters: int | None = opt()  # MobileCLIP fine-tunes
    parameters: int | None = opt()  # MobileCLIP fine-tunes
    source_checkpoint_sha256: str | None = opt()  # MobileCLIP fine-tunes: the base's checkpoint

    def key_order(self) -> tuple[str, ...]:
        if self.family == "mobileclip":  # its tuner writes text_only before text
            return ("base", "family", "image", "text_only", "text", *self.json_order[5:])
        return self.json_order


@dataclass(frozen=True, kw_only=True)
class Architecture(Record):
    """Any family's architecture: its family, towers in words, and (a fine-tune) what trained."""

    json_order = ("family", "image", "text")

    family: str | None = opt()
    image: str | None = opt()
    text: str | None = opt()
    finetune: FinetuneRecord | None = opt()  # set on album fine-tunes: the rest is their base's


@dataclass(frozen=True, kw_only=True)
class StarterArchitecture(Architecture):
    """Family ``conse``: the starter (EfficientNet-Lite0 ConSE + MiniLM) and its fine-tunes. The fields after
    ``prompt_templates`` came with later starter builds, so older cards lack them."""

    json_order = ("family", "image", "image_precision", "text", "text_precision", "top_k", "temperature", "evidence")
    json_order += ("prompt_templates",)

    top_k: int | None = opt()
    temperature: float | None = opt()
    prompt_templates: tuple[str, ...] | None = opt()
    image_precision: str | None = opt()
    text_precision: str | None = opt()
    evidence: dict[str, Any] | None = opt()  # each evidence source's measured settings, for people


@dataclass(frozen=True, kw_only=True)
class MobileCLIPArchitecture(Architecture):
    """Family ``mobileclip``: imported, trained or fine-tuned MobileCLIP / MobileCLIP2 models."""

    json_order = ("family", "variant", "golden_tag", "image", "text", "checkpoint_layout", "logit_scale", "notes")

    variant: str  # the registry name (mobileclip-s0 ...): what fine-tuning rebuilds
    golden_tag: str
    checkpoint_layout: str  # "v1" or "openclip"
    logit_scale: float
    notes: tuple[str, ...] = ()


ARCHITECTURES: dict[str, type[Architecture]] = {"conse": StarterArchitecture, "mobileclip": MobileCLIPArchitecture}


# --- provenance -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CheckpointRecord(Record):
    """A checkpoint file (``core.kept_checkpoints.checkpoint_record``); ``kept`` is its path inside the library, null
    when it is not kept there."""

    file: str
    sha256: str
    size_bytes: int | None = opt()
    path: str | None = opt()
    kept: str | None = None


@dataclass(frozen=True, kw_only=True)
class ImportedCheckpoint(CheckpointRecord):
    """The official checkpoint an import read, and how it was recognised."""

    file_layout: str | None = opt()
    detected_by: str | None = opt()
    same_architecture_as: tuple[str, ...] | None = opt()
    dtypes: tuple[str, ...] | None = opt()
    notes: tuple[str, ...] | None = opt()
    source_url: str | None = None  # null: imported from a local file


@dataclass(frozen=True, kw_only=True)
class TrainedCheckpoint(CheckpointRecord):
    """The train-time weights a training run or a MobileCLIP fine-tune saved in the library."""

    file_layout: str | None = opt()
    variant: str | None = opt()
    format: str | None = opt()  # fine-tunes: "safetensors state dict (train-time, unfused)"


@dataclass(frozen=True, kw_only=True)
class TemplateRecord(Record):
    """The graph template a torch-free import filled (``core.graph_template``)."""

    tag: str
    descriptor_sha256: str


@dataclass(frozen=True, kw_only=True)
class LineageStep(Record):
    """One model a fine-tune descends from, as the fine-tune recorded its base."""

    id: str
    name: str
    built_by: str | None
    checkpoint_sha256: str | None
    album: str | None


@dataclass(frozen=True, kw_only=True)
class InitStep(Record):
    """The checkpoint a training run started from (``--init``): a file, not an installed model."""

    id: str | None = None
    checkpoint: str
    checkpoint_sha256: str


@dataclass(frozen=True, kw_only=True)
class Provenance(Record):
    """Who built the package, when and with what; the plain class for builders without their own."""

    built_by: str | None = opt()
    built_at: str | None = opt()
    build_seconds: float | None = opt()
    torch: str | None = opt()
    onnxruntime: str | None = opt()


@dataclass(frozen=True, kw_only=True)
class StarterProvenance(Provenance):
    """``python -m trainer build-starter``: the versions of the packages the starter is built from."""

    sources: dict[str, str] | None = opt()


@dataclass(frozen=True, kw_only=True)
class ImportProvenance(Provenance):
    """An official checkpoint imported: ``python -m trainer import`` (torch) or, as CoreImportProvenance, ``python
    -m core models import``."""

    json_order = ("built_by", "checkpoint", "built_at", "torch", "onnxruntime")
    checkpoint: ImportedCheckpoint | None = opt()


@dataclass(frozen=True, kw_only=True)
class CoreImportProvenance(ImportProvenance):
    """``python -m core models import``: numpy filled a graph template, no torch."""

    json_order = ("built_by", "checkpoint", "template", "onnxruntime", "numpy", "built_at")
    template: TemplateRecord | None = opt()
    numpy: str | None = opt()


@dataclass(frozen=True, kw_only=True)
class TrainingData(Record):
    """The reinforced dataset a training run read."""

    path: str | None = None
    samples: int | None = None


@dataclass(frozen=True, kw_only=True)
class TrainProvenance(Provenance):
    """``python -m trainer train --export``: a training run's weights as a package."""

    json_order = ("built_by", "checkpoint", "init", "lineage", "data", "teachers", "steps", "config")

    checkpoint: TrainedCheckpoint | None = opt()
    init: CheckpointRecord | None = None
    lineage: tuple[InitStep | LineageStep, ...] | None = opt()
    data: TrainingData | None = opt()
    teachers: tuple[str, ...] | None = opt()
    steps: int | None = None
    config: dict[str, Any] | None = opt()  # trainer.train's TrainConfig, for people


@dataclass(frozen=True, kw_only=True)
class BaseRecord(Record):
    """The model a fine-tune started from, with its files' hashes."""

    id: str
    files: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class AlbumRecord(Record):
    """The album a fine-tune trained on: its folder name, content hash and labels."""

    name: str
    sha256: str
    labels: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class SplitRecord(Record):
    train: int
    validation: int
    seed: int


@dataclass(frozen=True, kw_only=True)
class EarlyStopRecord(Record):
    stopped: bool
    kept_step: int


@dataclass(frozen=True, kw_only=True)
class TeacherRecord(Record):
    id: str
    scale: float


@dataclass(frozen=True, kw_only=True)
class FinetuneProvenance(Provenance):
    """``python -m trainer finetune``: an album fine-tune of an installed base."""

    json_order = ("built_by", "base", "lineage", "album", "split", "steps", "early_stop", "teachers")
    json_order += ("reinforced_dataset", "loss", "config", "torch", "checkpoint", "built_at", "onnxruntime")

    base: BaseRecord | None = opt()
    lineage: tuple[InitStep | LineageStep, ...] | None = opt()  # oldest first, ending with the base
    album: AlbumRecord | None = opt()
    split: SplitRecord | None = opt()
    steps: int | None = opt()
    early_stop: EarlyStopRecord | None = opt()  # only when a generic bank was given
    teachers: tuple[TeacherRecord, ...] | None = opt()
    reinforced_dataset: str | None = opt()
    loss: dict[str, Any] | None = opt()  # the loss weights, for people
    config: dict[str, Any] | None = opt()  # trainer.train's TrainConfig, for people
    checkpoint: TrainedCheckpoint | None = opt()  # MobileCLIP fine-tunes: their train-time weights


PROVENANCES: dict[str, type[Provenance]] = {
    "python -m trainer build-starter": StarterProvenance,
    "python -m trainer import": ImportProvenance,
    "python -m core models import": CoreImportProvenance,
    "python -m trainer train": TrainProvenance,
    "python -m trainer finetune": FinetuneProvenance,
}


def parse_architecture(data: Any, where: str) -> Architecture:
    """A card's ``architecture`` object typed by its family; raise ModelPackageError naming a malformed key."""
    family = data.get("family") if isinstance(data, dict) else None
    kind = ARCHITECTURES.get(family, Architecture) if isinstance(family, str) else Architecture
    return decode(kind, data, "architecture", where)


def parse_provenance(data: Any, where: str) -> Provenance:
    """A card's ``provenance`` object typed by its builder; raise ModelPackageError naming a malformed key."""
    built_by = data.get("built_by") if isinstance(data, dict) else None
    kind = PROVENANCES.get(built_by, Provenance) if isinstance(built_by, str) else Provenance
    return decode(kind, data, "provenance", where)


def source_checkpoint(provenance: Provenance) -> CheckpointRecord | None:
    """The checkpoint a package was made from and fine-tuning rebuilds it from (None: the card records none)."""
    if isinstance(provenance, ImportProvenance | TrainProvenance | FinetuneProvenance):
        return provenance.checkpoint
    return None
