"""Turn an official MobileCLIP checkpoint into a PhotoSeek model package.

``import_checkpoint`` loads the file safely (``trainer.checkpoints``), reparameterizes the model, exports the image
encoder (``pixel_values`` -> ``image_embeds``, dynamic batch, fixed resolution) and the text encoder
(``input_ids`` + ``eot_index`` -> ``text_embeds``, dynamic batch, 77 tokens) to ONNX, checks onnxruntime against
PyTorch on real photos and captions fed exactly as core feeds them, and writes and installs the package.
``write_mobileclip_package`` is that export for any train-time model (``train --export``, album fine-tunes).

Packages hold only ONNX graphs, so the train-time weights stay outside them: the card's provenance records the
checkpoint (``checkpoint_record``: name, sha256, path, and where it is kept in the library's ``checkpoints/``
folder), which is what ``python -m trainer finetune`` rebuilds the trainable model from.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image
from torch import Tensor, nn

from core.errors import PhotoSeekError
from core.model_card import (
    EncoderSpec,
    ModelCard,
    PreprocessSpec,
    TokenizerSpec,
    ViewSpec,
    sha256_file,
    write_card,
)
from core.preprocess import preprocess
from core.tokenizers.clip_bpe import VOCAB_FILENAME, ClipBpeTokenizer, bundled_vocab_path
from trainer.checkpoints import load_checkpoint
from trainer.download import CHECKPOINT_DIR
from trainer.models.clip import MobileCLIP, ModelInfo
from trainer.models.reparam import reparameterize_model
from trainer.onnx_export import export_onnx
from trainer.package import finalize_package, install_package, staging_dir

Log = Callable[[str], None]

TOKENIZER_LICENSE_FILE = "clip-tokenizer-LICENSE.txt"
_MODEL_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # the card's id rule (core.model_card)
PARITY_CAPTIONS = (
    "an astronaut in a white spacesuit in front of a flag",
    "a tabby cat lying on its side",
    "a cup of coffee on a saucer",
    "a rocket on the launch pad",
    "two children building a sandcastle on the beach at sunset",
)
# Real photographs bundled inside scikit-image (a dev dependency); deterministic noise when it is not installed.
_SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


class ImportFailed(PhotoSeekError):
    """Exporting or checking an imported model failed."""


class _ImageEncoderGraph(nn.Module):
    """What the image ONNX graph computes: raw image features of preprocessed pixels."""

    def __init__(self, model: MobileCLIP) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: Tensor) -> Tensor:
        return self.model.encode_image(pixel_values)


class _TextEncoderGraph(nn.Module):
    """What the text ONNX graph computes: raw text features pooled at the tokenizer's ``eot_index``."""

    def __init__(self, model: MobileCLIP) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, eot_index: Tensor) -> Tensor:
        return self.model.encode_text(input_ids, eot_index)


def parity_images() -> tuple[list[Image.Image], str]:
    """RGB images for the ONNX parity check and a description of them for the card."""
    try:
        from skimage import data

        images = [Image.fromarray(getattr(data, name)()).convert("RGB") for name in _SKIMAGE_PHOTOS]
        return images, f"real photos from scikit-image {metadata.version('scikit-image')}: {', '.join(_SKIMAGE_PHOTOS)}"
    except Exception:  # not installed, or its data files are missing: any failure means "use noise"
        rng = np.random.default_rng(0)
        sizes = ((320, 240), (240, 320), (300, 300), (512, 384))
        images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]
        return images, "deterministic uniform noise images (scikit-image not installed, no real photos available)"


def preprocess_spec(info: ModelInfo) -> PreprocessSpec:
    """The card's preprocessing for a variant (docs/mobileclip-spec.md §5): one shortest-side view, crop fraction 1."""
    return PreprocessSpec(
        size=info.resolution,
        interpolation=info.interpolation,
        mean=info.mean,
        std=info.std,
        views=(ViewSpec("shortest", 1.0),),
    )


def _ort_run(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _compare(onnx_out: np.ndarray, reparam: np.ndarray, train: np.ndarray) -> dict[str, float]:
    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return {
        "max_abs_diff": float(np.abs(onnx_out - reparam).max()),
        "max_abs_diff_vs_train_time": float(np.abs(onnx_out - train).max()),
        "max_abs_diff_normalized_vs_train_time": float(np.abs(unit(onnx_out) - unit(train)).max()),
        "min_cosine_vs_train_time": float((unit(onnx_out) * unit(train)).sum(axis=1).min()),
        "max_abs_feature": float(np.abs(train).max()),
    }


@torch.inference_mode()
def export_and_check(
    model: MobileCLIP, out_dir: Path, spec: PreprocessSpec, tokenizer: ClipBpeTokenizer, log: Log
) -> dict[str, object]:
    """Reparameterize ``model`` in place, export both encoders into ``out_dir``, return the card's parity record.

    Parity inputs are what core feeds: core's preprocessing of real photos and core's tokenizer on real captions.
    The train-time outputs are taken before fusing, so only one copy of the weights is held (MobileCLIP2-S4 is
    1.8 GB). Raises ImportFailed when onnxruntime disagrees with PyTorch beyond 1e-3 on normalised features.
    """
    images, images_note = parity_images()
    pixels = torch.from_numpy(np.stack([preprocess(image, spec)[0] for image in images]))
    tokens = tokenizer(list(PARITY_CAPTIONS))
    ids, eot = torch.from_numpy(tokens["input_ids"]), torch.from_numpy(tokens["eot_index"])
    train_image, train_text = model.encode_image(pixels).numpy(), model.encode_text(ids, eot).numpy()
    log("reparameterizing (fusing train-time branches)")
    fused = reparameterize_model(model, inplace=True).eval()

    log("exporting the image encoder to ONNX")
    image_path = export_onnx(
        _ImageEncoderGraph(fused),
        (pixels[:2],),
        out_dir / "image_encoder.onnx",
        ["pixel_values"],
        "image_embeds",
        {"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
    )
    log("exporting the text encoder to ONNX")
    text_path = export_onnx(
        _TextEncoderGraph(fused),
        (ids[:2], eot[:2]),
        out_dir / "text_encoder.onnx",
        ["input_ids", "eot_index"],
        "text_embeds",
        {"input_ids": {0: "batch"}, "eot_index": {0: "batch"}, "text_embeds": {0: "batch"}},
    )

    log("checking onnxruntime against PyTorch (train-time and fused) on real inputs")
    image = _compare(
        _ort_run(image_path, {"pixel_values": pixels.numpy()}),
        fused.encode_image(pixels).numpy(),
        train_image,
    )
    text = _compare(
        _ort_run(text_path, {"input_ids": tokens["input_ids"], "eot_index": tokens["eot_index"]}),
        fused.encode_text(ids, eot).numpy(),
        train_text,
    )
    worst = max(image["max_abs_diff_normalized_vs_train_time"], text["max_abs_diff_normalized_vs_train_time"])
    if not worst <= 1e-3:  # also catches NaN
        raise ImportFailed(f"onnxruntime output differs from PyTorch by {worst:.2e} (normalised features)")
    return {
        "image_max_abs_diff": image["max_abs_diff"],
        "text_max_abs_diff": text["max_abs_diff"],
        "image": image,
        "text": text,
        "reference": "onnxruntime vs PyTorch reparameterized (max_abs_diff) and train-time (as the checkpoint defines)",
        "images": f"{len(images)} {images_note}; core's preprocessing at {spec.size} px",
        "captions": list(PARITY_CAPTIONS),
        "export_batch": 2,
    }


def mobileclip_architecture(model: MobileCLIP) -> dict[str, object]:
    """The card's ``architecture`` record of a MobileCLIP model (its variant, towers and logit scale)."""
    info = model.info
    return {
        "family": "mobileclip",
        "variant": info.name,
        "golden_tag": info.tag,
        "image": f"{type(model.image_tower).__name__} at {info.resolution} px (reparameterized)",
        "text": f"{type(model.text_tower).__name__}, 77 tokens, EOT pooling at eot_index",
        "checkpoint_layout": info.layout,
        "logit_scale": float(model.logit_scale_exp().detach()),
        "notes": list(info.notes),
    }


def write_mobileclip_package(
    model: MobileCLIP,
    staged: Path,
    *,
    model_id: str,
    provenance: dict[str, object],
    name: str | None = None,
    architecture: dict[str, object] | None = None,
    metrics: dict[str, object] | None = None,
    license_note: str | None = None,
    log: Log = lambda _msg: None,
) -> ModelCard:
    """Export ``model`` (reparameterized in place) with its tokenizer and licence files into ``staged``.

    Writes a provisional card (no file hashes yet) so core can run the staged package with ``verify=False``, and
    returns it; ``finalize_package`` hashes the files. ``architecture`` defaults to ``mobileclip_architecture``
    (taken before fusing); ``license_note`` is appended to the weights' licence notice.
    """
    info = model.info
    architecture = architecture if architecture is not None else mobileclip_architecture(model)
    spec = preprocess_spec(info)
    vocab = bundled_vocab_path()
    parity = export_and_check(model, staged, spec, ClipBpeTokenizer(vocab), log)
    shutil.copyfile(vocab, staged / VOCAB_FILENAME)
    shutil.copyfile(vocab.parent / "LICENSE.txt", staged / TOKENIZER_LICENSE_FILE)
    (staged / "LICENSE.txt").write_text(info.license_text() + (f"\n{license_note}\n" if license_note else ""), "utf-8")
    card = ModelCard(
        id=model_id,
        name=name or info.display,
        architecture=dict(architecture),
        embedding_dim=info.embed_dim,
        preprocess=spec,
        tokenizer=TokenizerSpec(kind="clip-bpe", files={"vocab": VOCAB_FILENAME}, context_length=77),
        image_encoder=EncoderSpec("image_encoder.onnx", ("pixel_values",), "image_embeds"),
        text_encoder=EncoderSpec("text_encoder.onnx", ("input_ids", "eot_index"), "text_embeds"),
        files={},
        license={
            "name": "Apple ML Research Model Terms of Use (Apple's licence for MobileCLIP weights)",
            "file": "LICENSE.txt",
            "tokenizer": {"name": "MIT", "file": TOKENIZER_LICENSE_FILE},
        },
        provenance={
            **provenance,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
        },
        parity=parity,
        metrics=dict(metrics or {}),
    )
    write_card(staged, card)
    return card


# --- the source checkpoint a package was made from, kept in the library so the package can be fine-tuned ----------


def checkpoint_record(path: Path, library: Path | None, sha256: str | None = None) -> dict[str, object]:
    """Where a package's train-time weights are: the file's name, sha256, size, absolute path, and ``kept`` (its
    path relative to ``library`` when it lies inside it, else None)."""
    path = Path(path).resolve()
    kept = None
    if library is not None:
        try:
            kept = path.relative_to(Path(library).resolve()).as_posix()
        except ValueError:
            kept = None
    return {
        "file": path.name,
        "sha256": sha256 or sha256_file(path),
        "size_bytes": path.stat().st_size,
        "path": str(path),
        "kept": kept,
    }


def keep_checkpoint(source: Path, library: Path, sha256: str, *, name: str | None = None) -> Path:
    """The copy of checkpoint ``source`` in ``library/checkpoints`` (copied there unless it is there already).

    Only files that ``load_checkpoint`` accepted are kept: plain tensor dictionaries read with
    ``weights_only=True``. ``name`` is the copy's file name, replaced if it holds another file (a package id's own
    checkpoint); without it the source's name is used, and a different file of that name gets the hash in its
    name. The copy is written under a temporary name and renamed, so a cut copy never passes for a kept one.
    """
    source = Path(source).resolve()
    folder = Path(library) / CHECKPOINT_DIR
    if name is None and source.parent == folder.resolve():
        return source
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / (name or source.name)
    if name is None and dest.is_file() and sha256_file(dest) != sha256:
        dest = folder / f"{source.stem}-{sha256[:12]}{source.suffix}"
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        shutil.copyfile(source, partial)
        if sha256_file(partial) != sha256:
            raise ImportFailed(f"{source} changed while it was copied into {folder}")
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest


def import_checkpoint(
    checkpoint_path: Path,
    install_root: Path,
    *,
    name: str | None = None,
    model_id: str | None = None,
    source_url: str | None = None,
    library: Path | None = None,
    log: Log = lambda _msg: None,
) -> Path:
    """Import an official MobileCLIP checkpoint as the model package ``install_root/<id>``; returns its folder.

    ``name`` checks the variant instead of detecting it; ``model_id`` defaults to the variant name. With
    ``library``, a copy of the file is kept in ``library/checkpoints`` (unless it is there already) and the card
    records it, so ``python -m trainer finetune --base <id>`` can rebuild the train-time model; the card always
    records the file's path and sha256. Raises CheckpointError (unreadable, unsafe or mismatching file) or
    ImportFailed (export or parity failure).
    """
    started = time.perf_counter()
    checkpoint_path = Path(checkpoint_path)
    if model_id is not None and not _MODEL_ID.fullmatch(model_id):
        raise ImportFailed(f"model id {model_id!r} must be lower-case letters, digits, '.', '_' or '-'")
    log(f"reading {checkpoint_path}")
    loaded = load_checkpoint(checkpoint_path, name)
    info = loaded.model.info
    model_id = model_id or info.name
    log(f"recognised {info.display} ({loaded.detection.file_layout} layout: {loaded.detection.reason})")
    checkpoint = {
        **checkpoint_record(checkpoint_path, None),
        "file_layout": loaded.detection.file_layout,
        "detected_by": loaded.detection.reason,
        "same_architecture_as": list(loaded.detection.alternatives),
        "dtypes": loaded.source_dtypes,
        "notes": loaded.notes,
        "source_url": source_url,
    }
    staged = staging_dir(install_root, model_id)
    try:
        architecture = mobileclip_architecture(loaded.model)
        provenance = {"built_by": "python -m trainer import", "checkpoint": checkpoint}
        card = write_mobileclip_package(
            loaded.model, staged, model_id=model_id, provenance=provenance, architecture=architecture, log=log
        )
        if library is not None:
            kept = keep_checkpoint(checkpoint_path, library, str(checkpoint["sha256"]))
            checkpoint["kept"] = checkpoint_record(kept, library, str(checkpoint["sha256"]))["kept"]
            log(f"kept the checkpoint as {kept} (fine-tuning rebuilds the model from it)")
        seconds = round(time.perf_counter() - started, 1)
        provenance = {**card.provenance, "checkpoint": checkpoint, "build_seconds": seconds}
        finalize_package(staged, dataclasses.replace(card, provenance=provenance))
        return install_package(staged, install_root, model_id)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
