"""Album fine-tuning of a MobileCLIP package: its student and the ``Tuner`` that ``trainer.finetune.pipeline``
runs for it (the export is ``trainer.mobileclip_export``, shared with ``train --export``).

A package holds only ONNX graphs, so the train-time model is rebuilt from the checkpoint its card records
(``provenance.checkpoint``: kept in the library's ``checkpoints/`` folder by ``import`` / ``download``, or saved
there by an earlier fine-tune or ``train --export``), after checking the file's sha256. What trains is described
below. The student's inputs are the reinforced dataset's stored augmentations replayed at the
model's own resolution and normalisation, through the frozen part of the image tower once each. After training,
the train-time weights are saved as ``<library>/checkpoints/<id>.safetensors`` (so the result can be fine-tuned
again) and the model is reparameterized and exported by ``mobileclip_export``.

What trains, and why (CPU first, the same on a GPU):

* Image tower (MCi / FastViT): the stem and the first stages stay frozen; the last ``image_stages`` stages (default
  1: its downsampler, conditional position encoding and attention blocks), the final conv and the head projection
  train. The early stages compute generic edges and textures that a few hundred album photos cannot improve, and
  they run at high resolution, so back-propagating through them would cost most of a step. The last stage works on
  an 8x8 grid at 256 px and is where a photo becomes "what it shows": that is where a pet's or a place's look has
  to be told apart. Because the frozen part is a fixed function, its output is computed once per stored
  augmentation (``frozen_image_features``) and training runs only the trainable tail, which is what makes
  fine-tuning fast on a 2-core CPU.
* BatchNorm: every layer stays in eval mode while training. The running statistics of a pre-trained model are
  better estimates than a 32-photo batch gives, training-mode BN would make the trained function differ from the
  exported one, and reparameterization folds exactly those statistics into the inference convs.
* Text tower: token embeddings and the lower layers stay frozen (a user's new word is made of sub-word tokens the
  model already has; moving shared token embeddings would shift every caption that uses them); the top
  ``text_layers`` layers (default 2), the final LayerNorm, the projection and the logit scale train, so label
  words can move in the joint space. The frozen part of each caption is computed once (``cache_captions``).

The student follows the training loop's contract: ``encode_image(cached features)``, ``encode_text(tokens or
caption ids)`` and ``logit_scale``; ``model`` is the whole train-time MobileCLIP that gets exported afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import Tensor, nn

from core.encoders import ModelPackage
from core.kept_checkpoints import CHECKPOINT_DIR, checkpoint_record
from core.model_card import ModelCard, sha256_file
from trainer.checkpoints import load_checkpoint
from trainer.finetune.evaluate import zero_shot
from trainer.finetune.forgetting import student_recall
from trainer.finetune.reinforce import AlbumReinforcement, label_prompts
from trainer.finetune.tuner import CHECK_TEXTS, Evaluate, FinetuneError, Log
from trainer.mobileclip_export import parity_images, write_mobileclip_package
from trainer.models.clip import MODELS, MobileCLIP, create_model
from trainer.models.fastvit_timm import FastVitImageEncoder
from trainer.models.mci import MCiImageEncoder
from trainer.models.reparam import reparameterize_model
from trainer.models.text_common import check_input_ids, eot_positions, gather_rows
from trainer.models.text_openclip import OpenClipTextTransformer
from trainer.models.text_v1 import TextTransformerV1
from trainer.reinforce.augment import apply_params, normalize
from trainer.reinforce.card import read_card, shard_paths
from trainer.reinforce.safetar import iter_samples
from trainer.reinforce.shards import decode_image, parse_sample
from trainer.train.data import ReinforcedTensors

IMAGE_BLOCKS = 2
TEXT_LAYERS = 2


def _units(modules: list[nn.Module]) -> list[nn.Module]:
    """Stage modules with each block list opened up: downsampler, position encoding, then each block, per stage."""
    opened = [unit for module in modules for unit in (module if isinstance(module, nn.Sequential) else [module])]
    return [unit for unit in opened if not isinstance(unit, nn.Identity)]


def image_split(model: MobileCLIP, blocks: int) -> tuple[list[nn.Module], list[nn.Module]]:
    """(frozen modules, trainable modules) of the image tower, each run in order; their composition is the tower.

    The trunk after the stem is a list of units (downsamplers, position encodings and blocks, stage by stage); the
    last ``blocks`` units train, with the final conv and the head projection. Raises FinetuneError for image towers
    other than MCi / FastViT (the ViT-B and L/14 variants) and for a count outside ``[0, number of units]``.
    """
    tower = model.image_tower
    if isinstance(tower, MCiImageEncoder):
        trunk = tower.model
        modules = list(trunk.network)
        stem, final, head = trunk.patch_embed, trunk.conv_exp, trunk.head
    elif isinstance(tower, FastVitImageEncoder):
        trunk = tower.trunk
        modules = [m for stage in trunk.stages for m in (stage.downsample, stage.pos_emb, stage.blocks)]
        stem, final, head = trunk.stem, trunk.final_conv, trunk.head
    else:
        raise FinetuneError(
            f"{model.info.display} has a ViT image tower; album fine-tuning supports the MCi (FastViT) towers "
            "of MobileCLIP-S0-S4 and MobileCLIP2-S0-S4"
        )
    units = _units(modules)
    if not 0 <= blocks <= len(units):
        raise FinetuneError(f"image_blocks must lie in [0, {len(units)}], got {blocks}")
    cut = len(units) - blocks
    return [stem, *units[:cut]], [*units[cut:], final, head]


def _text_parts(model: MobileCLIP) -> tuple[Callable[[Tensor], Tensor], nn.ModuleList, nn.Module, nn.Parameter]:
    """(token ids -> embedded tokens, layers, final norm, projection) of the text tower, as its forward uses them."""
    tower = model.text_tower
    if isinstance(tower, TextTransformerV1):

        def embed(ids: Tensor) -> Tensor:
            x = tower.embedding_layer(ids)
            return x + tower.positional_embedding().to(x.dtype)

        return embed, tower.transformer, tower.final_layer_norm, tower.projection_layer
    if isinstance(tower, OpenClipTextTransformer):

        def embed(ids: Tensor) -> Tensor:
            return tower.token_embedding(ids) + tower.positional_embedding.to(tower.token_embedding.weight.dtype)

        return embed, tower.transformer.resblocks, tower.ln_final, tower.text_projection
    raise FinetuneError(f"unknown text tower {type(tower).__name__}")


class MobileCLIPAlbumStudent(nn.Module):
    """A MobileCLIP model with a frozen head of each tower whose outputs are cached (see the module notes)."""

    def __init__(
        self,
        model: MobileCLIP,
        image_blocks: int = IMAGE_BLOCKS,
        text_layers: int = TEXT_LAYERS,
        text_only: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        # Plain lists: the modules are registered once, under ``model``, so state dicts keep the checkpoint keys.
        self._frozen_image, self._trainable_image = image_split(model, image_blocks)
        self._embed, layers, final_norm, projection = _text_parts(model)
        if not 0 <= text_layers <= len(layers):
            raise FinetuneError(f"text_layers must lie in [0, {len(layers)}], got {text_layers}")
        self.image_blocks, self.text_layers = image_blocks, text_layers
        self.first_trained = len(layers) - text_layers
        self._layers, self._final_norm, self._projection = layers, final_norm, projection
        for param in model.parameters():
            param.requires_grad_(False)
        self.text_only = text_only  # the image tower stays the base's: photos need no re-embedding
        trained = [*([] if text_only else self._trainable_image), *layers[self.first_trained :], final_norm]
        for module in trained:
            for param in module.parameters():
                param.requires_grad_(True)
        projection.requires_grad_(True)
        model.logit_scale.requires_grad_(True)
        self._cached: tuple[Tensor, Tensor] | None = None
        self._fused_frozen: list[nn.Module] | None = None
        self.model.eval()

    @property
    def logit_scale(self) -> nn.Parameter:
        """The model's learnable log-scale (the loop clamps ``exp`` at 100)."""
        return self.model.logit_scale

    def train(self, mode: bool = True) -> MobileCLIPAlbumStudent:
        """The model stays in eval mode: BatchNorm keeps its running statistics (see the module notes)."""
        super().train(mode)
        self.model.eval()
        return self

    def trainable_counts(self) -> dict[str, int]:
        """Trainable and total parameters, for the model card."""
        trained = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return {"trainable_parameters": trained, "parameters": sum(p.numel() for p in self.model.parameters())}

    @torch.no_grad()
    def frozen_image_features(self, pixels: Tensor) -> Tensor:
        """The frozen part of the image tower on preprocessed ``pixels`` ``[N, 3, R, R]``.

        Computed by a reparameterized copy of the frozen modules: the exported graph runs that same fused form, and
        it is several times faster than the train-time branches (they agree within ~1e-5 relative).
        """
        if self._fused_frozen is None or next(self._fused_frozen[0].parameters()).device != pixels.device:
            self._fused_frozen = [reparameterize_model(m).eval().to(pixels.device) for m in self._frozen_image]
        x = pixels
        for module in self._fused_frozen:
            x = module(x)
        return x

    def encode_image(self, features: Tensor) -> Tensor:
        """Raw image features ``[N, D]`` from ``frozen_image_features`` outputs (the trainable tail runs)."""
        x = features.to(torch.float32)
        for module in self._trainable_image:
            x = module(x)
        return x

    def encode_text(self, tokens: Tensor) -> Tensor:
        """Raw text features of token ids ``[N, 77]`` (the whole tower), or of rows ``[N]`` of the caption table
        given to ``cache_captions`` (only the trainable top layers run then)."""
        if tokens.ndim == 2:
            return self.model.encode_text(tokens)
        if self._cached is None:
            raise ValueError("1-d text input means caption ids, but no captions were cached")
        hidden, eot = self._cached
        rows, inverse = tokens.unique(return_inverse=True)  # label prompts repeat within a batch: run each once
        x, pos = hidden[rows.cpu()].to(tokens.device), eot[rows.cpu()].to(tokens.device)
        for layer in self._layers[self.first_trained :]:
            x = layer(x)
        pooled = gather_rows(self._final_norm(x), pos) @ self._projection
        return pooled[inverse]

    @torch.no_grad()
    def cache_captions(self, tokens: Tensor, eot_index: Tensor | None = None, batch: int = 64) -> None:
        """Run the frozen part of the text tower once for a caption table ``[C, 77]``; kept on the CPU."""
        check_input_ids(tokens, self.model.text_tower.context_length)
        device = self.model.logit_scale.device
        parts = []
        for start in range(0, len(tokens), batch):
            x = self._embed(tokens[start : start + batch].to(device))
            for layer in self._layers[: self.first_trained]:
                x = layer(x)
            parts.append(x.cpu())
        self._cached = (torch.cat(parts), eot_positions(tokens, eot_index).cpu())


FEATURE_BATCH = 16
CHECK_TOLERANCE = 1e-3  # normalised features: the rebuilt model vs the package's ONNX graphs


def is_mobileclip(base: ModelPackage) -> bool:
    """Whether a package is a MobileCLIP model (imported, trained, or a fine-tune of one)."""
    return base.card.architecture.get("family") == "mobileclip"


def _how_to_restore(base: ModelPackage, library: Path) -> str:
    built_by = str(base.card.provenance.get("built_by", ""))
    variant = base.card.architecture.get("variant", "NAME")
    where = f"--library {library}"
    if built_by == "python -m trainer finetune":
        parent = base.card.architecture.get("finetune", {}).get("base", "BASE")
        return (
            f"run the fine-tune that made it again: python -m trainer finetune ALBUM --base {parent} --name {base.id}"
        )
    if built_by == "python -m trainer train":
        return f"export the training run again: python -m trainer train CONFIG --export {base.id} {where}"
    return (
        f"import the checkpoint again, which keeps a copy: python -m trainer import FILE --id {base.id} {where} "
        f"(or python -m trainer download {variant} --id {base.id} {where})"
    )


def find_source_checkpoint(base: ModelPackage, library: Path) -> Path:
    """The checkpoint ``base`` was made from, with the sha256 its card records.

    Looked for where the card says it was kept (relative to ``library``), at the path it was imported from, and by
    name in ``library/checkpoints``. Raises FinetuneError saying what to run when no file with that hash is found.
    """
    record = base.card.provenance.get("checkpoint")
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        raise FinetuneError(
            f"the card of '{base.id}' records no source checkpoint, so it cannot be fine-tuned; "
            + _how_to_restore(base, library)
        )
    candidates = []
    if record.get("kept"):
        candidates.append(Path(library) / str(record["kept"]))
    if record.get("path"):
        candidates.append(Path(str(record["path"])))
    if record.get("file"):
        candidates.append(Path(library) / CHECKPOINT_DIR / Path(str(record["file"])).name)
    changed = []
    for path in dict.fromkeys(candidates):
        if path.is_file():
            if sha256_file(path) == record["sha256"]:
                return path
            changed.append(str(path))
    found = f" ({', '.join(changed)} differ from the recorded sha256)" if changed else ""
    raise FinetuneError(
        f"the checkpoint '{record.get('file')}' that '{base.id}' was made from is missing{found}; looked in "
        f"{', '.join(str(p) for p in dict.fromkeys(candidates))}. To fine-tune '{base.id}', "
        + _how_to_restore(base, library)
    )


@torch.inference_mode()
def _check_against_package(model: MobileCLIP, base: ModelPackage) -> None:
    """The rebuilt model must compute what the package computes (normalised features, real photos + captions)."""
    images = parity_images()[0][:2]
    pixels = torch.from_numpy(np.stack([base.preprocess(image)[0] for image in images]))
    tokens = base.tokenizer(list(CHECK_TEXTS))
    ours_i = model.encode_image(pixels, normalize=True).numpy()
    ours_t = model.encode_text(torch.from_numpy(tokens["input_ids"]), normalize=True).numpy()
    diff = max(
        float(np.abs(ours_i - base.embed_pixels(pixels.numpy()[:, None])).max()),
        float(np.abs(ours_t - base.embed_texts(list(CHECK_TEXTS))).max()),
    )
    if not diff < CHECK_TOLERANCE:
        raise FinetuneError(f"the model rebuilt from its checkpoint differs from '{base.id}' by {diff:.2e}")


class MobileCLIPTuner:
    """Fine-tunes a MobileCLIP package: the top of each tower trains (see the module docstring)."""

    family = "mobileclip"
    # 3e-5: the full fine-tuning rate of CLIP in WiSE-FT / FLYP; only the top of each tower trains here, and the
    # distillation on concept captions pulls towards the teachers, so the rate is not lowered further.
    default_lr = 3e-5
    default_steps = 100  # S0 at batch 32 on 2 CPU cores: ~0.8 s a step, plus ~0.08 s per stored augmentation

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
        variant = base.card.architecture.get("variant")
        if not isinstance(variant, str) or variant not in MODELS:
            raise FinetuneError(f"the card of '{base.id}' names no MobileCLIP variant this version knows: {variant!r}")
        with torch.device("meta"):  # an unsupported architecture fails before any file is read
            MobileCLIPAlbumStudent(create_model(variant), image_blocks, text_layers)
        self.source = find_source_checkpoint(base, self.library)
        log(f"rebuilding '{base.id}' from {self.source}")
        self.model = load_checkpoint(self.source, variant).model
        _check_against_package(self.model, base)
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
        return {
            "image": image,
            "text_only": self.student.text_only,
            "text": f"top {self.student.text_layers} text layers, final LayerNorm, projection and logit scale trained",
            **self.student.trainable_counts(),
            "source_checkpoint_sha256": self.base.card.provenance["checkpoint"]["sha256"],
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

    def student_data(self, reinf: AlbumReinforcement, dataset_dir: Path, device: torch.device, log: Log):
        """The student and its data: cached frozen features of every stored augmentation, caption-table rows."""
        self.student.to(device)
        tokens = self.base.tokenizer(list(reinf.captions))
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
            caption_emb=reinf.distill_caption_emb(), real=reinf.real, syn=reinf.syn, labels=reinf.labels, keys=reinf.keys,
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

    def save_checkpoint(self, model_id: str) -> dict[str, object]:
        """Write the train-time weights (checkpoint layout, safetensors) under a temporary name in the library's
        ``checkpoints/``; ``commit`` renames it to ``<id>.safetensors``. Returns the card's checkpoint record."""
        folder = self.library / CHECKPOINT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        self._final = folder / f"{model_id}.safetensors"
        self._partial = folder / f".{model_id}.safetensors.partial-{os.getpid()}"
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(self._partial))
        self._partial.chmod(0o644)  # readable like the package it belongs to
        record = checkpoint_record(self._partial, self.library)
        info = self.model.info
        return {
            **record,
            "file": self._final.name,
            "path": str(self._final.resolve()),
            "kept": self._final.relative_to(self.library).as_posix(),
            "file_layout": info.layout,
            "variant": info.name,
            "format": "safetensors state dict (train-time, unfused)",
        }

    def write_package(
        self, staged: Path, *, model_id: str, name: str, architecture: dict, provenance: dict, check_images: list
    ) -> ModelCard:
        """Save the checkpoint, reparameterize and export the model into ``staged``; returns the provisional card."""
        self.model.cpu().eval()
        scale = float(self.model.logit_scale_exp().detach())
        checkpoint = self.save_checkpoint(model_id)
        note = f"Fine-tuned by PhotoSeek from '{self.base.id}' on a user's album; the terms above apply to it."
        return write_mobileclip_package(
            self.model, staged, model_id=model_id, name=name, architecture={**architecture, "logit_scale": scale},
            provenance={**provenance, "checkpoint": checkpoint}, license_note=note, log=self.log,
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
