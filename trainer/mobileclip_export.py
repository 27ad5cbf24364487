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

from core.checkpoint_import import CLIP_TOKENIZER, MOBILECLIP_LICENSE, write_tokenizer_and_licence
from core.errors import ImportFailed
from core.kept_checkpoints import checkpoint_record, keep_checkpoint
from core.model_card import (
    MODEL_ID_PATTERN,
    EncoderSpec,
    ModelCard,
    PreprocessSpec,
    ViewSpec,
    write_card,
)
from core.model_card_types import (
    Architecture,
    ImportedCheckpoint,
    ImportProvenance,
    MobileCLIPArchitecture,
    Provenance,
)
from core.package_writer import finalize_package, install_package, staging_dir
from core.preprocess import preprocess
from core.tokenizers.clip_bpe import ClipBpeTokenizer, bundled_vocab_path
from trainer.checkpoints import load_checkpoint
from trainer.models.clip import MobileCLIP, ModelInfo
from trainer.models.reparam import reparameterize_model
from trainer.onnx_export import export_onnx

Log = Callable[[str], None]

PARITY_CAPTIONS = (
    "an astronaut in a white spacesuit in front of a flag",
    "a tabby cat lying on its side",
    "a cup of coffee on a saucer",
    "a rocket on the launch pad",
    "two children building a sandcastle on the beach at sunset",
)
# Real photographs bundled inside scikit-image (a dev dependency); deterministic noise when it is not installed.
_SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


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


@dataclasses.dataclass(frozen=True)
class EncoderGraph:
    """One encoder as it is exported: the module, example inputs, input and output names, dynamic axes."""

    module: nn.Module
    example: tuple[Tensor, ...]
    inputs: tuple[str, ...]
    output: str
    dynamic_axes: dict[str, dict[int, str]]


def encoder_graphs(model: MobileCLIP, pixels: np.ndarray, tokens: dict[str, np.ndarray]) -> dict[str, EncoderGraph]:
    """The image and text graphs of ``model`` with example inputs ``pixels`` and ``tokens`` (dynamic batch)."""
    ids, eot = torch.from_numpy(tokens["input_ids"]), torch.from_numpy(tokens["eot_index"])
    return {
        "image": EncoderGraph(
            _ImageEncoderGraph(model),
            (torch.from_numpy(pixels),),
            ("pixel_values",),
            "image_embeds",
            {"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
        ),
        "text": EncoderGraph(
            _TextEncoderGraph(model),
            (ids, eot),
            ("input_ids", "eot_index"),
            "text_embeds",
            {"input_ids": {0: "batch"}, "eot_index": {0: "batch"}, "text_embeds": {0: "batch"}},
        ),
    }


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

    paths = {}
    examples = {"input_ids": tokens["input_ids"][:2], "eot_index": tokens["eot_index"][:2]}
    for kind, graph in encoder_graphs(fused, pixels[:2].numpy(), examples).items():
        log(f"exporting the {kind} encoder to ONNX")
        paths[kind] = export_onnx(
            graph.module,
            graph.example,
            out_dir / f"{kind}_encoder.onnx",
            graph.inputs,
            graph.output,
            graph.dynamic_axes,
        )
    image_path, text_path = paths["image"], paths["text"]

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


def mobileclip_architecture(model: MobileCLIP) -> MobileCLIPArchitecture:
    """The card's ``architecture`` record of a MobileCLIP model (its variant, towers and logit scale)."""
    info = model.info
    return MobileCLIPArchitecture(
        family="mobileclip",
        variant=info.name,
        golden_tag=info.tag,
        image=f"{type(model.image_tower).__name__} at {info.resolution} px (reparameterized)",
        text=f"{type(model.text_tower).__name__}, 77 tokens, EOT pooling at eot_index",
        checkpoint_layout=info.layout,
        logit_scale=float(model.logit_scale_exp().detach()),
        notes=tuple(info.notes),
    )


def write_mobileclip_package(
    model: MobileCLIP,
    staged: Path,
    *,
    model_id: str,
    provenance: Provenance,
    name: str | None = None,
    architecture: Architecture | None = None,
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
    write_tokenizer_and_licence(staged, info.license_text() + (f"\n{license_note}\n" if license_note else ""))
    card = ModelCard(
        id=model_id,
        name=name or info.display,
        architecture=architecture,
        embedding_dim=info.embed_dim,
        preprocess=spec,
        tokenizer=CLIP_TOKENIZER,
        image_encoder=EncoderSpec("image_encoder.onnx", ("pixel_values",), "image_embeds"),
        text_encoder=EncoderSpec("text_encoder.onnx", ("input_ids", "eot_index"), "text_embeds"),
        files={},
        license=dict(MOBILECLIP_LICENSE),
        provenance=dataclasses.replace(
            provenance,
            built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            torch=torch.__version__,
            onnxruntime=ort.__version__,
        ),
        parity=parity,
        metrics=dict(metrics or {}),
    )
    write_card(staged, card)
    return card


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
    if model_id is not None and not MODEL_ID_PATTERN.match(model_id):
        raise ImportFailed(f"model id {model_id!r} must be lower-case letters, digits, '.', '_' or '-'")
    log(f"reading {checkpoint_path}")
    loaded = load_checkpoint(checkpoint_path, name)
    info = loaded.model.info
    model_id = model_id or info.name
    log(f"recognised {info.display} ({loaded.detection.file_layout} layout: {loaded.detection.reason})")
    checkpoint = checkpoint_record(
        checkpoint_path,
        None,
        record=ImportedCheckpoint,
        file_layout=loaded.detection.file_layout,
        detected_by=loaded.detection.reason,
        same_architecture_as=tuple(loaded.detection.alternatives),
        dtypes=tuple(loaded.source_dtypes),
        notes=tuple(loaded.notes),
        source_url=source_url,
    )
    staged = staging_dir(install_root, model_id)
    try:
        architecture = mobileclip_architecture(loaded.model)
        provenance = ImportProvenance(built_by="python -m trainer import", checkpoint=checkpoint)
        card = write_mobileclip_package(
            loaded.model, staged, model_id=model_id, provenance=provenance, architecture=architecture, log=log
        )
        if library is not None:
            kept = keep_checkpoint(checkpoint_path, library, checkpoint.sha256)
            checkpoint = dataclasses.replace(checkpoint, kept=checkpoint_record(kept, library, checkpoint.sha256).kept)
            log(f"kept the checkpoint as {kept} (fine-tuning rebuilds the model from it)")
        seconds = round(time.perf_counter() - started, 1)
        provenance = dataclasses.replace(card.provenance, checkpoint=checkpoint, build_seconds=seconds)
        finalize_package(staged, dataclasses.replace(card, provenance=provenance))
        return install_package(staged, install_root, model_id)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
