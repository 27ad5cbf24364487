"""The package an album fine-tune of the starter family becomes.

The image encoder is the base package's ONNX graph followed by one MatMul with the adapter ``(I + W)^T`` (or the
base's image files byte for byte when the adapter never moved: a text-only fine-tune); the text encoder is the
fine-tuned MiniLM traced again; tokenizer files and the licence come from the base. The trained text weights travel
in the package too, so a later fine-tune can start from it.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from safetensors.torch import save_file
from torch import Tensor

from core.encoders import ModelPackage
from core.model_card import ModelCard, write_card
from core.model_card_types import Architecture, Provenance
from trainer.finetune.tuner import CHECK_TEXTS
from trainer.image_check import save_check_views
from trainer.onnx_export import export_onnx, onnx_max_abs_diff

if TYPE_CHECKING:
    from trainer.finetune.starter import AlbumStudent

TEXT_STATE_FILE = "finetune_text.safetensors"


def save_text_state(path, state: dict[str, Tensor]) -> None:
    """Write the trained text weights into a package (safetensors: no code runs when it is read)."""
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


ADAPTER_NAME = "album_adapter"
ADAPTER_NODE = "album_adapter_matmul"


def compose_image_graph(base_graph: Path, output: str, matrix: np.ndarray, dest: Path) -> Path:
    """Copy ``base_graph`` with ``output`` right-multiplied by ``matrix`` (``[D, D]``), keeping the output's name.

    A base that already ends in an album adapter (a fine-tune of a fine-tune) gets the two maps folded into one.
    """
    model = onnx.load(str(base_graph))
    initializers = {init.name: init for init in model.graph.initializer}
    last = next((n for n in model.graph.node if output in n.output), None)
    if last is not None and last.name == ADAPTER_NODE and ADAPTER_NAME in initializers:
        folded = numpy_helper.to_array(initializers[ADAPTER_NAME]) @ matrix
        initializers[ADAPTER_NAME].CopyFrom(numpy_helper.from_array(folded.astype(np.float32), ADAPTER_NAME))
    else:
        inner = f"{output}_before_album_adapter"
        for node in model.graph.node:
            node.output[:] = [inner if name == output else name for name in node.output]
            node.input[:] = [inner if name == output else name for name in node.input]
        model.graph.initializer.append(numpy_helper.from_array(matrix.astype(np.float32), ADAPTER_NAME))
        model.graph.node.append(helper.make_node("MatMul", [inner, ADAPTER_NAME], [output], name=ADAPTER_NODE))
    onnx.checker.check_model(model)
    onnx.save(model, str(dest))
    return dest


def compose_image_check(base_check: Path, matrix: np.ndarray, dest: Path) -> Path:
    """The base's image check for the composed graphs: the same views, their exact embeddings through the adapter."""
    with np.load(base_check, allow_pickle=False) as data:
        views, reference = data["views"], data["reference"]
    return save_check_views(dest, views, reference @ matrix)


def export_text(student: AlbumStudent, base: ModelPackage, dest: Path) -> tuple[Path, float]:
    """Trace the fine-tuned MiniLM with the base card's input/output names; returns the path and ORT parity."""
    spec = base.card.text_encoder
    sample = base.tokenizer(list(CHECK_TEXTS))
    inputs = tuple(torch.from_numpy(sample[name]) for name in spec.inputs)
    text = student.text.eval()
    axes = {name: {0: "batch", 1: "tokens"} for name in spec.inputs} | {spec.output: {0: "batch"}}
    export_onnx(text, inputs, dest, list(spec.inputs), spec.output, axes)
    with torch.inference_mode():
        reference = text(*inputs).numpy()
    return dest, onnx_max_abs_diff(dest, {n: sample[n] for n in spec.inputs}, reference)


def write_album_package(
    student: AlbumStudent,
    base: ModelPackage,
    staged: Path,
    *,
    model_id: str,
    name: str,
    architecture: Architecture,
    provenance: Provenance,
    metrics: dict,
    previous_text_state: dict[str, torch.Tensor],
    check_pixels: np.ndarray,
) -> ModelCard:
    """Fill ``staged`` with the package files and return the card (not yet hashed; see ``finalize_package``).

    ``check_pixels`` (``[N, views, 3, S, S]`` as core preprocesses them) verifies the composed image graph.
    """
    card = base.card
    image_specs = [s for s in (card.image_encoder, card.image_check.fallback if card.image_check else None) if s]
    if student.image_unchanged():
        # A text-only fine-tune keeps the base's image files byte for byte: its photo embeddings are the base's.
        for file in [s.file for s in image_specs] + ([card.image_check.views] if card.image_check else []):
            shutil.copyfile(base.dir / file, staged / file)
    else:
        for spec in image_specs:
            image_path = compose_image_graph(
                base.dir / spec.file, spec.output, student.adapter_matrix(), staged / "image.onnx"
            )
            image_path.rename(staged / spec.file)
        if card.image_check is not None:
            compose_image_check(
                base.dir / card.image_check.views, student.adapter_matrix(), staged / card.image_check.views
            )
    _, text_diff = export_text(student, base, staged / card.text_encoder.file)
    save_text_state(staged / TEXT_STATE_FILE, student.trained_text_state(previous_text_state))
    for file in {*card.tokenizer.files.values(), card.license.get("file", "")} - {""}:
        shutil.copyfile(base.dir / file, staged / file)
    licence = card.license.get("file")
    if licence:
        with (staged / licence).open("a", encoding="utf-8") as handle:
            handle.write(
                f"\nFine-tuned by PhotoSeek from '{base.id}' on a user's album; the base model's terms above apply.\n"
            )
    new = dataclasses.replace(card, id=model_id, name=name, architecture=architecture, files={})
    write_card(staged, new)  # provisional (no hashes yet) so core can run the staged graphs
    check = ModelPackage(staged, verify=False)
    expected = base.embed_pixels(check_pixels) @ student.adapter_matrix()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    image_diff = float(np.abs(check.embed_pixels(check_pixels) - expected).max())
    parity = {
        "image_max_abs_diff": image_diff,
        "text_max_abs_diff": text_diff,
        "reference": "image: base package then the adapter in numpy (normalised); text: PyTorch vs onnxruntime",
        "inputs": f"{len(check_pixels)} album photos, {len(CHECK_TEXTS)} sentences",
    }
    provenance = dataclasses.replace(provenance, built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return dataclasses.replace(new, parity=parity, provenance=provenance, metrics=metrics)
