"""Where a MobileCLIP base's train-time weights come from: a package holds only ONNX graphs, so the model is rebuilt
from the checkpoint its card records (``provenance.checkpoint``: kept in the library's ``checkpoints/`` folder by
``import`` / ``download``, or saved there by an earlier fine-tune or ``train --export``) after checking the file's
sha256, and the rebuilt model must compute what the package computes before it trains.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core.encoders import ModelPackage
from core.kept_checkpoints import CHECKPOINT_DIR
from core.model_card import sha256_file
from core.model_card_types import MobileCLIPArchitecture, source_checkpoint
from trainer.finetune.tuner import CHECK_TEXTS, FinetuneError
from trainer.mobileclip_export import parity_images
from trainer.models.clip import MobileCLIP

CHECK_TOLERANCE = 1e-3  # normalised features: the rebuilt model vs the package's ONNX graphs


def _how_to_restore(base: ModelPackage, library: Path) -> str:
    built_by = base.card.provenance.built_by
    arch = base.card.architecture
    variant = arch.variant if isinstance(arch, MobileCLIPArchitecture) else "NAME"
    where = f"--library {library}"
    if built_by == "python -m trainer finetune":
        parent = arch.finetune.base if arch.finetune is not None else "BASE"
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
    record = source_checkpoint(base.card.provenance)
    if record is None:
        raise FinetuneError(
            f"the card of '{base.id}' records no source checkpoint, so it cannot be fine-tuned; "
            + _how_to_restore(base, library)
        )
    candidates = []
    if record.kept:
        candidates.append(Path(library) / record.kept)
    if record.path:
        candidates.append(Path(record.path))
    if record.file:
        candidates.append(Path(library) / CHECKPOINT_DIR / Path(record.file).name)
    changed = []
    for path in dict.fromkeys(candidates):
        if path.is_file():
            if sha256_file(path) == record.sha256:
                return path
            changed.append(str(path))
    found = f" ({', '.join(changed)} differ from the recorded sha256)" if changed else ""
    raise FinetuneError(
        f"the checkpoint '{record.file}' that '{base.id}' was made from is missing{found}; looked in "
        f"{', '.join(str(p) for p in dict.fromkeys(candidates))}. To fine-tune '{base.id}', "
        + _how_to_restore(base, library)
    )


@torch.inference_mode()
def check_against_package(model: MobileCLIP, base: ModelPackage) -> None:
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
