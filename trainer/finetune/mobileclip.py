"""Album fine-tuning of a MobileCLIP package: the ``Tuner`` that ``trainer.finetune.pipeline`` runs for it. Its
student is ``mobileclip_student`` (what trains, and why), the checkpoint it is rebuilt from ``mobileclip_source``
and the export ``trainer.mobileclip_export``, shared with ``train --export``.

The student's inputs are the reinforced dataset's stored augmentations replayed at the model's own resolution and
normalisation, through the frozen part of the image tower once each. After training, the train-time weights are
saved as ``<library>/checkpoints/<id>.safetensors`` (so the result can be fine-tuned again) and the model is
reparameterized and exported by ``mobileclip_export``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from core.encoders import ModelPackage
from core.kept_checkpoints import CHECKPOINT_DIR, checkpoint_record
from core.model_card import ModelCard
from core.model_card_types import Architecture, MobileCLIPArchitecture, Provenance, TrainedCheckpoint, source_checkpoint
from trainer.checkpoints import load_checkpoint
from trainer.finetune.evaluate import zero_shot
from trainer.finetune.forgetting import student_recall
from trainer.finetune.mobileclip_source import check_against_package, find_source_checkpoint
from trainer.finetune.mobileclip_student import MobileCLIPAlbumStudent
from trainer.finetune.reinforce import AlbumReinforcement, label_prompts
from trainer.finetune.tuner import Evaluate, FinetuneError, Log
from trainer.mobileclip_export import write_mobileclip_package
from trainer.models.clip import MODELS, create_model
from trainer.reinforce.augment import apply_params, normalize
from trainer.reinforce.card import read_card, shard_paths
from trainer.reinforce.safetar import iter_samples
from trainer.reinforce.shards import decode_image, parse_sample
from trainer.train.data import ReinforcedTensors

FEATURE_BATCH = 16


def is_mobileclip(base: ModelPackage) -> bool:
    """Whether a package is a MobileCLIP model (imported, trained, or a fine-tune of one)."""
    return base.card.architecture.family == "mobileclip"


class MobileCLIPTuner:
    """Fine-tunes a MobileCLIP package: the top of each tower trains (see the module docstring)."""

    family = "mobileclip"
    # 3e-5: the full fine-tuning rate of CLIP in WiSE-FT / FLYP; only the top of each tower trains here, and the
    # distillation on concept captions pulls towards the teachers, so the rate is not lowered further.
    default_lr = 3e-5
    default_steps = 100  # S0 at batch 32 on 2 CPU cores: ~0.8 s a step, plus ~0.08 s per stored augmentation
    default_anchor = 0.0  # the text anchor is measured on the starter only (no real MobileCLIP weights here)

    def __init__(
        self,
        base: ModelPackage,
        library: Path,
        *,
        image_blocks: int,
        text_layers: int,
        log: Log,
        text_only: bool = False,
    ) -> None:
        self.base, self.library, self.log = base, Path(library), log
        arch = base.card.architecture
        variant = arch.variant if isinstance(arch, MobileCLIPArchitecture) else None
        if variant not in MODELS:
            raise FinetuneError(f"the card of '{base.id}' names no MobileCLIP variant this version knows: {variant!r}")
        with torch.device("meta"):  # an unsupported architecture fails before any file is read
            MobileCLIPAlbumStudent(create_model(variant), image_blocks, text_layers)
        self.source = find_source_checkpoint(base, self.library)
        log(f"rebuilding '{base.id}' from {self.source}")
        self.model = load_checkpoint(self.source, variant).model
        check_against_package(self.model, base)
        self.student = MobileCLIPAlbumStudent(self.model, image_blocks, text_layers, text_only)
        self._partial: Path | None = None
        self._final: Path | None = None

    def describe(self) -> dict[str, object]:
        """What trained, for the card's ``architecture.finetune``."""
        image = (
            "the base image tower, unchanged (the base's image files, byte for byte)"
            if self.student.text_only
            else f"last {self.student.image_blocks} image trunk blocks, final conv and head projection trained; "
            "BatchNorm statistics frozen"
        )
        record = source_checkpoint(self.base.card.provenance)
        return {
            "image": image,
            "text_only": self.student.text_only,
            "text": f"top {self.student.text_layers} text layers, final LayerNorm, projection and logit scale trained",
            **self.student.trainable_counts(),
            "source_checkpoint_sha256": record.sha256 if record is not None else None,
        }

    def _views(self, dataset_dir: Path) -> Iterator[tuple[int, list[np.ndarray], str]]:
        """Every sample's stored augmentations replayed at the base's preprocessing, in the dataset's order."""
        spec = self.base.card.preprocess
        card = read_card(dataset_dir)
        index = 0
        for path in shard_paths(dataset_dir, card):
            for key, members in iter_samples(path):
                sample = parse_sample(key, members)
                image = decode_image(sample.image)
                views = [
                    normalize(apply_params(image, p, spec.size, spec.interpolation), spec.mean, spec.std)
                    for p in sample.params
                ]
                yield index, views, sample.label
                index += 1

    def student_data(
        self,
        reinf: AlbumReinforcement,
        dataset_dir: Path,
        device: torch.device,
        log: Log,
        extra_captions: Sequence[str] = (),
    ):
        """The student and its data: cached frozen features of every stored augmentation, caption-table rows (the
        ``extra_captions`` after the dataset's)."""
        self.student.to(device)
        tokens = self.base.tokenizer([*reinf.captions, *extra_captions])
        self.student.cache_captions(torch.from_numpy(tokens["input_ids"]), torch.from_numpy(tokens["eot_index"]))
        n, k = reinf.image_emb.shape[:2]
        log(f"computing the frozen image features of {n * k} stored augmentations")
        features: torch.Tensor | None = None
        pending: list[tuple[int, int, np.ndarray]] = []

        def flush() -> None:
            nonlocal features
            pixels = torch.from_numpy(np.stack([v for _, _, v in pending])).to(device)
            out = self.student.frozen_image_features(pixels).cpu()
            if features is None:
                features = torch.empty((n, k, *out.shape[1:]), dtype=torch.float32)
            for (i, a, _), row in zip(pending, out, strict=True):
                features[i, a] = row
            pending.clear()

        for i, views, label in self._views(dataset_dir):
            if i >= n or len(views) != k or label != reinf.labels[i]:
                raise FinetuneError(f"{dataset_dir}: the shards disagree with the dataset read before (sample {i})")
            pending.extend((i, a, view) for a, view in enumerate(views))
            if len(pending) >= FEATURE_BATCH:
                flush()
        if pending:
            flush()
        data = ReinforcedTensors(
            inputs=features, image_emb=reinf.image_emb, caption_tokens=torch.arange(len(reinf.captions)),
            caption_emb=reinf.distill_caption_emb(), real=reinf.real, syn=reinf.syn, labels=reinf.labels,
            keys=reinf.keys,
        )  # fmt: skip
        return self.student, data

    def evaluator(self, val_images: list[Image.Image], val_base: np.ndarray, truth: list[int], labels: list[str]):
        """Zero-shot accuracy of the torch student on the validation photos, for the training curves."""
        device = self.model.logit_scale.device
        pixels = torch.from_numpy(np.stack([self.base.preprocess(image)[0] for image in val_images]))
        inputs = self.student.frozen_image_features(pixels.to(device)).cpu()
        prompts = [p for label in labels for p in label_prompts(label)]
        tokens = torch.from_numpy(self.base.tokenizer(prompts)["input_ids"])

        @torch.no_grad()
        def evaluate(student: MobileCLIPAlbumStudent) -> dict[str, float]:
            device = student.logit_scale.device
            images = student.encode_image(inputs.to(device)).float().cpu().numpy()
            texts = torch.nn.functional.normalize(student.encode_text(tokens.to(device)).float(), dim=-1)
            matrix = texts.cpu().numpy().reshape(len(labels), -1, texts.shape[-1]).mean(axis=1)
            matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
            scores = zero_shot(images, matrix, truth, labels)
            return {"val_accuracy": scores["accuracy"], "val_balanced_accuracy": scores["balanced_accuracy"]}

        return evaluate

    def generic_evaluator(self, images: list[Image.Image], captions: list[str]) -> Evaluate:
        """Generic caption -> photo recall@5 of the torch student on a bank, for the early stop."""
        device = self.model.logit_scale.device
        pixels = torch.from_numpy(np.stack([self.base.preprocess(image)[0] for image in images]))
        inputs = self.student.frozen_image_features(pixels.to(device)).cpu()
        queries = [self.base.card.query_template.format(c) for c in captions]
        return student_recall(inputs, torch.from_numpy(self.base.tokenizer(queries)["input_ids"]), captions)

    def save_checkpoint(self, model_id: str) -> TrainedCheckpoint:
        """Write the train-time weights (checkpoint layout, safetensors) under a temporary name in the library's
        ``checkpoints/``; ``commit`` renames it to ``<id>.safetensors``. Returns the card's checkpoint record."""
        folder = self.library / CHECKPOINT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        self._final = folder / f"{model_id}.safetensors"
        self._partial = folder / f".{model_id}.safetensors.partial-{os.getpid()}"
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(self._partial))
        self._partial.chmod(0o644)  # readable like the package it belongs to
        record = checkpoint_record(self._partial, self.library, record=TrainedCheckpoint)
        info = self.model.info
        return dataclasses.replace(
            record,
            file=self._final.name,
            path=str(self._final.resolve()),
            kept=self._final.relative_to(self.library).as_posix(),
            file_layout=info.layout,
            variant=info.name,
            format="safetensors state dict (train-time, unfused)",
        )

    def write_package(
        self,
        staged: Path,
        *,
        model_id: str,
        name: str,
        architecture: Architecture,
        provenance: Provenance,
        check_images: list,
    ) -> ModelCard:
        """Save the checkpoint, reparameterize and export the model into ``staged``; returns the provisional card."""
        self.model.cpu().eval()
        scale = float(self.model.logit_scale_exp().detach())
        checkpoint = self.save_checkpoint(model_id)
        note = f"Fine-tuned by PhotoSeek from '{self.base.id}' on a user's album; the terms above apply to it."
        return write_mobileclip_package(
            self.model, staged, model_id=model_id, name=name,
            architecture=dataclasses.replace(architecture, logit_scale=scale),
            provenance=dataclasses.replace(provenance, checkpoint=checkpoint), license_note=note, log=self.log,
        )  # fmt: skip

    def commit(self) -> None:
        """The package is installed: its checkpoint takes its final name."""
        if self._partial is not None and self._final is not None:
            os.replace(self._partial, self._final)
            self._partial = None

    def abort(self) -> None:
        """The package was not installed: drop the checkpoint written for it."""
        if self._partial is not None:
            self._partial.unlink(missing_ok=True)
            self._partial = None
