"""The multi-modal reinforced training loss of MobileCLIP (docs/mobileclip-spec.md §9.3).

For one caption kind (real or synthetic) with normalised student features ``u`` (images) and ``v`` (texts),
student scale ``s`` and stored teacher features ``U^k``, ``V^k`` with fixed teacher scales ``t_k``:

* ``L_clip = (CE(s u v^T, targets) + CE(s v u^T, targets)) / 2``, the symmetric contrastive loss;
* ``P_i2t = mean_k softmax(t_k U^k V^k^T)`` (average *after* the softmax), ``P_t2i`` likewise from the transpose;
* ``L_kd = (CE(P_i2t, s u v^T) + CE(P_t2i, s v u^T)) / 2``, cross-entropy against the teachers' distributions;
* ``L = w_clip L_clip + w_kd L_kd``, computed for the real and for one synthetic caption and summed.

Defaults and their sources (ml-mobileclip ``training/configs/run_datacompdr*.sh`` via docs/mobileclip-spec.md):
``w = (0, 1)`` for the MobileCLIP-S variants on DataCompDR-12M and -1B (distillation only; ViT-B used
``(0.25, 0.75)``), teacher scale 100 for both DataCompDR teachers (70 and 60 for the MobileCLIP2 DFN teachers).

Targets: CLIP's ``arange(b)`` labels assume every caption in a batch is distinct. Album fine-tuning feeds the
same label prompt for many photos, so the targets here are "every text equal to mine is a match", spread
uniformly; with distinct captions this is exactly the one-hot ``arange`` target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_TEACHER_SCALE = 100.0  # --distill-logit-scale 100 in run_datacompdr*.sh


@dataclass(frozen=True)
class LossWeights:
    """Weights of the contrastive and the distillation term for one caption kind."""

    clip: float = 0.0  # MobileCLIP-S recipe: distillation only (docs/mobileclip-spec.md §9.3, §9.4)
    kd: float = 1.0

    @classmethod
    def from_lambda(cls, lam: float) -> LossWeights:
        """The paper's form ``(1 - lambda) L_clip + lambda L_distill``."""
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lambda must lie in [0, 1], got {lam}")
        return cls(1.0 - lam, lam)


@dataclass(frozen=True)
class Teacher:
    """One teacher's columns in the stored ``ΣD`` embedding vectors and its fixed logit scale."""

    name: str
    columns: slice
    scale: float = DEFAULT_TEACHER_SCALE


def match_targets(keys: Tensor) -> Tensor:
    """Target matrix ``[b, b]`` whose row ``i`` is uniform over the texts equal to text ``i``.

    ``keys`` identifies each text: token ids ``[b, L]`` or one integer per text ``[b]``. The matrix is symmetric
    before normalisation, so the same rows serve image->text and text->image.
    """
    flat = keys.reshape(keys.shape[0], -1)
    same = (flat[:, None, :] == flat[None, :, :]).all(dim=-1).float()
    return same / same.sum(dim=1, keepdim=True)


def _soft_ce(logits: Tensor, targets: Tensor) -> Tensor:
    return -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def clip_loss(image: Tensor, text: Tensor, scale: Tensor | float, targets: Tensor | None = None) -> Tensor:
    """Symmetric contrastive loss of normalised features ``[b, D]``; ``targets`` defaults to one-hot ``arange``."""
    logits = scale * image.float() @ text.float().T
    if targets is None:
        labels = torch.arange(logits.shape[0], device=logits.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    return (_soft_ce(logits, targets) + _soft_ce(logits.T, targets)) / 2


@torch.no_grad()
def teacher_targets(image_emb: Tensor, text_emb: Tensor, teachers: Sequence[Teacher]) -> tuple[Tensor, Tensor]:
    """The ensemble's image->text and text->image distributions ``[b, b]``, averaged after each softmax.

    Each teacher's slice is re-normalised (the stored halves are unit length already; this guards bf16 storage).
    """
    if not teachers:
        raise ValueError("distillation needs at least one teacher")
    p_i2t = p_t2i = None
    for teacher in teachers:
        u = F.normalize(image_emb[:, teacher.columns].float(), dim=-1)
        v = F.normalize(text_emb[:, teacher.columns].float(), dim=-1)
        logits = teacher.scale * u @ v.T
        a, b = logits.softmax(dim=1), logits.T.softmax(dim=1)
        p_i2t = a if p_i2t is None else p_i2t + a
        p_t2i = b if p_t2i is None else p_t2i + b
    return p_i2t / len(teachers), p_t2i / len(teachers)


def distill_loss(image: Tensor, text: Tensor, scale: Tensor | float, p_i2t: Tensor, p_t2i: Tensor) -> Tensor:
    """Cross-entropy of the student's i2t and t2i distributions against the teachers' (KL up to a constant)."""
    logits = scale * image.float() @ text.float().T
    return (_soft_ce(logits, p_i2t) + _soft_ce(logits.T, p_t2i)) / 2


def caption_loss(
    image: Tensor,
    text: Tensor,
    scale: Tensor,
    weights: LossWeights,
    *,
    image_emb: Tensor | None = None,
    text_emb: Tensor | None = None,
    teachers: Sequence[Teacher] = (),
    text_keys: Tensor | None = None,
) -> dict[str, Tensor]:
    """``w_clip L_clip + w_kd L_kd`` for one caption kind; returns the total and both terms (``clip``, ``kd``).

    A term whose weight is 0 is not computed (so plain CLIP training needs no teacher embeddings). ``text_keys``
    (token ids or caption ids) turns on duplicate-aware targets.
    """
    targets = match_targets(text_keys) if text_keys is not None else None
    out: dict[str, Tensor] = {}
    total = image.new_zeros((), dtype=torch.float32)
    if weights.clip:
        out["clip"] = clip_loss(image, text, scale, targets)
        total = total + weights.clip * out["clip"]
    if weights.kd:
        if image_emb is None or text_emb is None or not teachers:
            raise ValueError("w_kd > 0 needs teacher embeddings and at least one teacher")
        p_i2t, p_t2i = teacher_targets(image_emb, text_emb, teachers)
        out["kd"] = distill_loss(image, text, scale, p_i2t, p_t2i)
        total = total + weights.kd * out["kd"]
    out["total"] = total
    return out


def reinforced_loss(
    image: Tensor,
    text: Tensor,
    syn_text: Tensor | None,
    scale: Tensor,
    *,
    real: LossWeights = LossWeights(),
    syn: LossWeights = LossWeights(),
    image_emb: Tensor | None = None,
    text_emb: Tensor | None = None,
    syn_text_emb: Tensor | None = None,
    teachers: Sequence[Teacher] = (),
    text_keys: Tensor | None = None,
    syn_keys: Tensor | None = None,
) -> dict[str, Tensor]:
    """The summed loss over the real and the synthetic caption (``DRClipLoss``); ``syn_text=None`` skips the latter.

    Returns ``loss`` (what to back-propagate) and the parts ``clip``, ``kd``, ``clip_syn``, ``kd_syn`` that were
    computed, all float32 scalars.
    """
    parts = caption_loss(
        image, text, scale, real, image_emb=image_emb, text_emb=text_emb, teachers=teachers, text_keys=text_keys
    )
    out = {k: v for k, v in parts.items() if k != "total"}
    loss = parts["total"]
    if syn_text is not None and (syn.clip or syn.kd):
        syn_parts = caption_loss(
            image,
            syn_text,
            scale,
            syn,
            image_emb=image_emb,
            text_emb=syn_text_emb,
            teachers=teachers,
            text_keys=syn_keys,
        )
        out.update({f"{k}_syn": v for k, v in syn_parts.items() if k != "total"})
        loss = loss + syn_parts["total"]
    out["loss"] = loss
    return out


@torch.no_grad()
def retrieval_accuracy(image: Tensor, text: Tensor, text_keys: Tensor | None = None) -> float:
    """Share of images whose most similar text in the batch is a matching one (duplicates count as matches)."""
    best = (image.float() @ text.float().T).argmax(dim=1)
    if text_keys is None:
        return float((best == torch.arange(len(best), device=best.device)).float().mean())
    flat = text_keys.reshape(text_keys.shape[0], -1)
    return float((flat[best] == flat).all(dim=-1).float().mean())
