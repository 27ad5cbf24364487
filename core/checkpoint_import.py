"""Turn an official MobileCLIP checkpoint into a model package with numpy and onnxruntime alone (no torch).

The file is read by ``core.checkpoint_reader`` (no pickle code runs), the variant is recognised against the bundled
graph templates (``core.graph_template``), an open_clip-layout v1 file is renamed to the v1 layout, the train-time
branches are fused in numpy and written into the templates' data files (``core.template_fill``), and the package is
written and installed like the trainer's (``core.package_writer``). The result embeds like ``python -m trainer
import``'s package; its card says it was built here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from core.checkpoint_reader import Checkpoint, read_checkpoint
from core.encoders import ModelPackage
from core.errors import ImportFailed
from core.graph_template import DESCRIPTOR_SUFFIX, ModelEntry, TemplateDescriptor, load_descriptors, template_dir
from core.kept_checkpoints import checkpoint_record, keep_checkpoint
from core.mobileclip_detect import Detection, detect, resolve_model_name
from core.mobileclip_keys import convert_openclip_to_v1
from core.model_card import (
    MODEL_ID_PATTERN,
    EncoderSpec,
    ModelCard,
    PreprocessSpec,
    TokenizerSpec,
    ViewSpec,
    write_card,
)
from core.model_card_types import CoreImportProvenance, ImportedCheckpoint, MobileCLIPArchitecture, TemplateRecord
from core.package_writer import finalize_package, install_package, staging_dir
from core.template_fill import write_graph
from core.tokenizers.clip_bpe import VOCAB_FILENAME, bundled_vocab_path

Log = Callable[[str], None]

TOKENIZER_LICENSE_FILE = "clip-tokenizer-LICENSE.txt"
CLIP_TOKENIZER = TokenizerSpec(kind="clip-bpe", files={"vocab": VOCAB_FILENAME}, context_length=77)
# The card's licence record of every MobileCLIP package (the trainer's exports and core's imports).
MOBILECLIP_LICENSE = {
    "name": "Apple ML Research Model Terms of Use (Apple's licence for MobileCLIP weights)",
    "file": "LICENSE.txt",
    "tokenizer": {"name": "MIT", "file": TOKENIZER_LICENSE_FILE},
}
CHECK_CAPTIONS = ("a photo of a dog", "two children building a sandcastle on the beach at sunset")


@dataclasses.dataclass(frozen=True)
class Recognised:
    """A checkpoint matched to a template: the detection, the template and the named model it holds."""

    detection: Detection
    descriptor: TemplateDescriptor
    model: ModelEntry


def known_names(templates: Path | None = None) -> tuple[str, ...]:
    """Registry names of every model the bundled templates can import."""
    return tuple(m.name for d in load_descriptors(templates) for m in d.models)


def model_entry(name: str, templates: Path | None = None) -> ModelEntry:
    """The named model (any spelling ``resolve_model_name`` accepts) among the bundled templates; KeyError if none."""
    resolved = resolve_model_name(name, known_names(templates))
    return next(m for d in load_descriptors(templates) for m in d.models if m.name == resolved)


def recognise(checkpoint: Checkpoint, filename: str, name: str | None, templates: Path | None = None) -> Recognised:
    """Which template and model ``checkpoint`` holds (or check that it holds ``name``); CheckpointError if none."""
    descriptors = load_descriptors(templates)
    candidates = [c for d in descriptors for c in d.candidates()]
    names = known_names(templates)
    detection = detect(checkpoint.arrays, candidates, lambda n: resolve_model_name(n, names), name, filename)
    for descriptor in descriptors:
        for model in descriptor.models:
            if model.name == detection.name:
                return Recognised(detection, descriptor, model)
    raise AssertionError(f"{detection.name} came from no template")  # candidates are built from the templates


def _preprocess(descriptor: TemplateDescriptor, model: ModelEntry) -> PreprocessSpec:
    size = descriptor.architecture.resolution
    return PreprocessSpec(size, model.interpolation, model.mean, model.std, (ViewSpec("shortest", 1.0),))


def _logit_scale(state: dict[str, np.ndarray], descriptor: TemplateDescriptor) -> float:
    # float32 like the model's own exp(logit_scale), so the card's value equals the trainer's
    scale = np.exp(np.asarray(state["logit_scale"], dtype=np.float32).reshape(-1)[0])
    limit = descriptor.architecture.logit_scale_max
    return float(min(scale, np.float32(limit)) if limit is not None else scale)


def _check_runs(staged: Path, resolution: int) -> dict[str, object]:
    """Run the filled package once per encoder: finite, non-zero features of noise images and two captions."""
    package = ModelPackage(staged, verify=False, threads=1)
    pixels = np.random.default_rng(0).random((2, 1, 3, resolution, resolution), dtype=np.float32)
    image = package.embed_pixels(pixels)
    text = package.embed_texts(list(CHECK_CAPTIONS))
    for what, features in (("image", image), ("text", text)):
        if not np.isfinite(features).all() or not (np.linalg.norm(features, axis=1) > 0).all():
            raise ImportFailed(f"the imported {what} encoder gives non-finite or zero features")
    return {"runs": "image and text encoders give finite, non-zero features", "captions": list(CHECK_CAPTIONS)}


def _card(rec: Recognised, model_id: str, logit_scale: float, provenance: CoreImportProvenance) -> ModelCard:
    arch, model = rec.descriptor.architecture, rec.model
    image, text = rec.descriptor.image, rec.descriptor.text
    return ModelCard(
        id=model_id,
        name=model.display,
        architecture=MobileCLIPArchitecture(
            family=arch.family,
            variant=model.name,
            golden_tag=arch.tag,
            image=arch.image,
            text=arch.text,
            checkpoint_layout=model.layout,
            logit_scale=logit_scale,
            notes=tuple(model.notes),
        ),
        embedding_dim=arch.embed_dim,
        preprocess=_preprocess(rec.descriptor, model),
        tokenizer=CLIP_TOKENIZER,
        image_encoder=EncoderSpec(image.package_file, image.inputs, image.output),
        text_encoder=EncoderSpec(text.package_file, text.inputs, text.output),
        files={},
        license=dict(MOBILECLIP_LICENSE),
        provenance=provenance,
    )


def write_package(rec: Recognised, state: dict[str, np.ndarray], staged: Path, templates: Path) -> None:
    """Fill the templates into ``staged`` and write the tokenizer, licence and a provisional card (no hashes)."""
    for graph in (rec.descriptor.image, rec.descriptor.text):
        write_graph(templates, graph, state, rec.descriptor.fusions, staged)
    write_tokenizer_and_licence(staged, rec.model.license_text)


def write_tokenizer_and_licence(staged: Path, license_text: str) -> None:
    """The CLIP vocabulary and its MIT licence, and the weights' licence notice ``LICENSE.txt``, into ``staged``."""
    vocab = bundled_vocab_path()
    shutil.copyfile(vocab, staged / VOCAB_FILENAME)
    shutil.copyfile(vocab.parent / "LICENSE.txt", staged / TOKENIZER_LICENSE_FILE)
    (staged / "LICENSE.txt").write_text(license_text, "utf-8")


def _detection_record(rec: Recognised, checkpoint: Checkpoint, notes: list[str]) -> dict[str, Any]:
    """How the file was recognised and read, the ImportedCheckpoint fields (the trainer's import records the same)."""
    return {
        "file_layout": rec.detection.file_layout,
        "detected_by": rec.detection.reason,
        "same_architecture_as": tuple(rec.detection.alternatives),
        "dtypes": tuple(sorted(set(checkpoint.source_dtypes.values()))),
        "notes": tuple(notes),
    }


def _descriptor_sha256(templates: Path, tag: str) -> str:
    return hashlib.sha256((templates / f"{tag}{DESCRIPTOR_SUFFIX}").read_bytes()).hexdigest()


def _read_and_recognise(
    checkpoint_path: Path, name: str | None, templates: Path, log: Log
) -> tuple[Checkpoint, Recognised]:
    """Read the file (no pickle code runs) and match it to a template, logging both steps."""
    log(f"reading {checkpoint_path}")
    checkpoint = read_checkpoint(checkpoint_path)
    rec = recognise(checkpoint, checkpoint_path.name, name, templates)
    log(f"recognised {rec.model.display} ({rec.detection.file_layout} layout: {rec.detection.reason})")
    return checkpoint, rec


def _v1_state(checkpoint: Checkpoint, rec: Recognised) -> tuple[dict[str, np.ndarray], list[str]]:
    """The weights in the layout the templates are filled from (an open_clip file is renamed), and notes saying so."""
    state = checkpoint.arrays
    notes: list[str] = []
    if rec.detection.file_layout != rec.descriptor.architecture.layout:
        state = convert_openclip_to_v1(state, rec.descriptor.checkpoint_layout, rec.model.display)
        notes.append(f"converted the open_clip layout to the ml-mobileclip (v1) layout of {rec.model.name}")
    return state, notes


def _provenance(record: ImportedCheckpoint, tag: str, templates: Path) -> CoreImportProvenance:
    """What built the package from which file and template (the build time is stamped by ``_finished``)."""
    return CoreImportProvenance(
        built_by="python -m core models import",
        checkpoint=record,
        template=TemplateRecord(tag=tag, descriptor_sha256=_descriptor_sha256(templates, tag)),
        onnxruntime=ort.__version__,
        numpy=np.__version__,
    )


def _keep_in_library(checkpoint_path: Path, library: Path, record: ImportedCheckpoint, log: Log) -> ImportedCheckpoint:
    """Copy the checkpoint into ``library/checkpoints``; returns ``record`` saying where it is kept."""
    kept = keep_checkpoint(checkpoint_path, library, record.sha256)
    record = dataclasses.replace(record, kept=checkpoint_record(kept, library, record.sha256).kept)
    log(f"kept the checkpoint as {kept} (fine-tuning rebuilds the model from it)")
    return record


def _finished(provenance: CoreImportProvenance, record: ImportedCheckpoint, started: float) -> CoreImportProvenance:
    """The provenance with the final checkpoint record, when the build ended and how long it took."""
    return dataclasses.replace(
        provenance,
        checkpoint=record,
        built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        build_seconds=round(time.perf_counter() - started, 1),
    )


def import_checkpoint(
    checkpoint_path: Path,
    install_root: Path,
    *,
    name: str | None = None,
    model_id: str | None = None,
    source_url: str | None = None,
    library: Path | None = None,
    templates: Path | None = None,
    log: Log = lambda _msg: None,
) -> Path:
    """Import an official MobileCLIP checkpoint as the model package ``install_root/<id>``; returns its folder.

    ``name`` checks the variant instead of detecting it; ``model_id`` defaults to the variant name. With
    ``library``, a copy of the file is kept in ``library/checkpoints`` (fine-tuning rebuilds the model from it).
    ``templates`` is the graph template folder (default: the bundled one). Raises CheckpointError (unreadable,
    unsafe or mismatching file) or ImportFailed.
    """
    started = time.perf_counter()
    checkpoint_path = Path(checkpoint_path)
    templates = templates or template_dir()
    if model_id is not None and not MODEL_ID_PATTERN.match(model_id):
        raise ImportFailed(f"model id {model_id!r} must be lower-case letters, digits, '.', '_' or '-'")
    checkpoint, rec = _read_and_recognise(checkpoint_path, name, templates, log)
    arch = rec.descriptor.architecture
    state, notes = _v1_state(checkpoint, rec)
    model_id = model_id or rec.model.name
    details = _detection_record(rec, checkpoint, notes)
    record = checkpoint_record(checkpoint_path, None, record=ImportedCheckpoint, **details, source_url=source_url)
    staged = staging_dir(install_root, model_id)
    try:
        log("fusing the train-time branches (numpy) into the graph templates")
        write_package(rec, state, staged, templates)
        logit_scale = _logit_scale(state, rec.descriptor)
        del state, checkpoint  # the weights are on disk now: free them before onnxruntime loads the package
        provenance = _provenance(record, arch.tag, templates)
        card = _card(rec, model_id, logit_scale, provenance)
        write_card(staged, card)
        parity = {**_check_runs(staged, arch.resolution), "template_check": dataclasses.asdict(rec.descriptor.check)}
        if library is not None:
            record = _keep_in_library(checkpoint_path, library, record, log)
        finalize_package(
            staged, dataclasses.replace(card, provenance=_finished(provenance, record, started), parity=parity)
        )
        return install_package(staged, install_root, model_id)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
