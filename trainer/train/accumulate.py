"""Exact gradient accumulation for batch-wide losses (contrastive, distillation) by caching features.

A CLIP-style loss couples every sample of the batch with every other, so averaging the gradients of per-micro-batch
losses trains on small contrastive sets. Instead, one optimiser step here (1) encodes all its micro-batches without
gradient and keeps their features, then (2) for each micro-batch ``j`` encodes it again with gradient, splices its
live features into the cached ones, computes the loss of the *whole* batch and back-propagates it. Pass ``j`` gives
``dL/df_j df_j/dtheta``; the sum over passes is the full-batch gradient, so no division by the number of passes.

Two details keep the passes exact: the RNG state saved before each cached forward is restored before the live one
(dropout draws the same masks, so the live features equal the cached ones), and the logit scale is live in the
last pass only (it would otherwise collect its gradient once per pass). Buffers (BatchNorm running statistics) are
restored after the cached forwards, so they update once per micro-batch as they would without caching.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from trainer.train.data import Batch

Features = tuple[Tensor, list[Tensor], Tensor]  # image features, text features per caption kind, logit scale
INPUT_KEYS = frozenset({"image", "text", "syn_text"})  # the encoders' inputs: the loss never reads them


def merge_batches(batches: Sequence[Batch], skip: frozenset[str] = frozenset()) -> Batch:
    """One batch of the micro-batches in order: tensors concatenated on dim 0, lists joined; ``skip`` keys dropped.

    Other values (e.g. strings) are taken from the first micro-batch. Raises KeyError when the batches' keys differ.
    """
    keys = [k for k in batches[0] if k not in skip]
    if any(set(b) - skip != set(keys) for b in batches):
        raise KeyError("micro-batches of one step must carry the same keys")
    merged: Batch = {}
    for key in keys:
        values = [b[key] for b in batches]
        if isinstance(values[0], Tensor):
            merged[key] = torch.cat(values, dim=0)
        elif isinstance(values[0], list):
            merged[key] = [item for value in values for item in value]
        else:
            merged[key] = values[0]
    return merged


def device_rng_state(device: torch.device) -> tuple[Tensor, Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def set_device_rng_state(state: tuple[Tensor, Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _splice(cached: list[Tensor], live: Tensor, j: int) -> Tensor:
    """The cached features of all micro-batches with micro-batch ``j``'s replaced by its live (differentiable) ones."""
    return torch.cat(cached[:j] + [live] + cached[j + 1 :], dim=0)


def accumulate_gradients(
    model: nn.Module,
    batches: Sequence[Batch],
    encode: Callable[[Batch], Features],
    loss_of: Callable[[Features, Batch], dict[str, Tensor]],
    *,
    autocast: contextlib.AbstractContextManager | None = None,
    device: torch.device | None = None,
) -> dict[str, Tensor]:
    """Back-propagate the loss of all ``batches`` together into ``model``'s ``.grad`` (added to what is there).

    ``encode(batch)`` runs ``model`` on one micro-batch (features normalised, as the loss wants them); ``loss_of``
    maps the features of the merged batch and the merged batch (without the encoders' inputs) to the loss parts,
    ``loss`` among them, gathering across ranks itself if it does so. When ``model`` is a DistributedDataParallel,
    all passes but the last run under ``no_sync``, so gradients are reduced once. ``device`` (default CPU) says
    whose RNG dropout draws from. Returns the parts of the last pass (every pass has the same values), detached.
    """
    if not batches:
        raise ValueError("accumulation needs at least one micro-batch")
    autocast = autocast if autocast is not None else contextlib.nullcontext()
    device = device if device is not None else torch.device("cpu")
    buffers = [b.detach().clone() for b in model.buffers()]
    states: list[tuple[Tensor, Tensor | None]] = []
    cached_u: list[Tensor] = []
    cached_vs: list[list[Tensor]] = []
    with torch.no_grad():
        for batch in batches:
            states.append(device_rng_state(device))
            with autocast:
                u, vs, _ = encode(batch)
            cached_u.append(u)
            cached_vs.append(vs)
        for saved, buffer in zip(buffers, model.buffers(), strict=True):
            buffer.copy_(saved)
    merged = merge_batches(batches, skip=INPUT_KEYS)
    last = len(batches) - 1
    parts: dict[str, Tensor] = {}
    no_sync = getattr(model, "no_sync", None)  # a DistributedDataParallel's
    for j, batch in enumerate(batches):
        set_device_rng_state(states[j], device)
        context = no_sync() if no_sync is not None and j < last else contextlib.nullcontext()
        with context:
            with autocast:
                u, vs, scale = encode(batch)
                spliced_vs = [_splice([c[kind] for c in cached_vs], v, j) for kind, v in enumerate(vs)]
                # The scale's gradient must arrive once, not once per pass.
                features = (_splice(cached_u, u, j), spliced_vs, scale if j == last else scale.detach())
                parts = loss_of(features, merged)
            parts["loss"].backward()
    return {k: v.detach() for k, v in parts.items()}
