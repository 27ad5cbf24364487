"""Recognise which MobileCLIP variant a checkpoint holds from its key names and shapes (or check ``--name``).

Shared by the trainer (candidates from its torch registry) and core (candidates from the graph templates in
``assets/``); entries are torch tensors or numpy arrays, only ``.shape`` and comparisons are used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import CheckpointError
from core.mobileclip_keys import HEAD_BIAS_KEYS, Layout, Signature


@dataclass(frozen=True)
class Candidate:
    """One published file form of a model: registry ``name``, how the file names its keys, and its key shapes.

    ``file_layout`` is ``v1`` or ``openclip``; ``v1_model`` tells a MobileCLIP v1 model (also when it is stored in
    the open_clip layout) from a MobileCLIP2 / S3 / S4 one.
    """

    name: str
    display: str
    file_layout: str
    v1_model: bool
    layout: Layout


@dataclass(frozen=True)
class Detection:
    """Which model a checkpoint holds: registry ``name``, the ``file_layout`` it is stored in, and why."""

    name: str
    file_layout: str
    reason: str
    alternatives: tuple[str, ...] = field(default=())


def signature(state: Mapping[str, Any]) -> Signature:
    """Key names and shapes, without BatchNorm ``num_batches_tracked`` (unused in eval; some exporters drop it)."""
    return frozenset(
        (k, tuple(v) if isinstance(v, tuple) else tuple(v.shape))
        for k, v in state.items()
        if not k.endswith("num_batches_tracked")
    )


def diff_message(state: Mapping[str, Any], expected: Layout, what: str) -> str:
    """What keeps ``state`` from matching ``expected``: missing, unexpected and wrongly shaped keys."""
    keys = {k for k in state if not k.endswith("num_batches_tracked")}
    want = {k for k in expected if not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(want - keys), sorted(keys - want)
    shapes = [
        f"{k} {tuple(state[k].shape)} != {expected[k]}"
        for k in sorted(keys & want)
        if tuple(state[k].shape) != tuple(expected[k])
    ]
    parts = [f"the checkpoint does not match {what}"]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            parts.append(f"{len(items)} {label}: {', '.join(items[:10])}{' ...' if len(items) > 10 else ''}")
    return "; ".join(parts)


def _head_bias_is_zero(state: Mapping[str, Any]) -> bool:
    return any(k in state and not bool((state[k] != 0).any()) for k in HEAD_BIAS_KEYS)


def _pick(
    matches: list[Candidate], state: Mapping[str, Any], filename: str | None, resolve: Callable[[str], str]
) -> Detection:
    """Choose among candidates whose checkpoints have identical keys and shapes.

    Evidence in order: the open_clip head bias (zero only in files converted from a v1 model), the file name,
    then the newest release.
    """
    names = [c.name for c in matches]
    reasons = ["keys and shapes match exactly"]
    v1_forms = [c for c in matches if c.v1_model]
    mc2_forms = [c for c in matches if not c.v1_model]
    if v1_forms and mc2_forms:
        zero = _head_bias_is_zero(state)
        matches = v1_forms if zero else mc2_forms
        reasons = [
            "open_clip layout with a zero head bias: a v1 model converted by open_clip"
            if zero
            else "open_clip layout with a trained (non-zero) head bias: a MobileCLIP2 model"
        ]
    chosen = matches[0]
    if len(matches) > 1:
        try:
            hinted = resolve(Path(filename or "").name.split(".")[0])
        except KeyError:
            hinted = None
        by_name = [c for c in matches if c.name == hinted]
        if by_name:
            chosen = by_name[0]
            reasons.append(f"the file name {filename!r} names it among models with the same architecture")
        else:  # B / B-LT, MobileCLIP-S3 / MobileCLIP2-S3: the newest release unless --name says otherwise
            chosen = next((c for c in matches if c.name.startswith("mobileclip2-")), matches[0])
            reasons.append("same architecture as other models; pass --name to pick another")
    return Detection(chosen.name, chosen.file_layout, "; ".join(reasons), tuple(n for n in names if n != chosen.name))


def _check_name(state: Mapping[str, Any], rows: list[Candidate], every: Sequence[Candidate], name: str) -> Detection:
    found = signature(state)
    for row in rows:
        if row.name == name and signature(row.layout) == found:
            return Detection(name, row.file_layout, "checked against --name")
    forms = [c for c in every if c.name == name]
    display = forms[0].display
    holds = [row for row in rows if signature(row.layout) == found]
    if holds:
        raise CheckpointError(f"the checkpoint holds {holds[0].display}, not {display} (--name)")
    uses_openclip_names = any(k.startswith(("visual.", "text.")) for k in state)
    form = next((c for c in forms if c.file_layout == "openclip" and c.v1_model), None)
    if form is not None and uses_openclip_names:
        raise CheckpointError(diff_message(state, form.layout, f"{display} (open_clip layout)"))
    native = next(c for c in forms if c.file_layout == ("v1" if c.v1_model else "openclip"))
    raise CheckpointError(diff_message(state, native.layout, display))


def detect(
    state: Mapping[str, Any],
    candidates: Sequence[Candidate],
    resolve: Callable[[str], str],
    name: str | None = None,
    filename: str | None = None,
) -> Detection:
    """Recognise which candidate ``state`` holds (or check that it holds ``name``, resolved by ``resolve``).

    Raises CheckpointError listing missing, unexpected and wrongly shaped keys when nothing matches.
    """
    v1_names = any(k.startswith("image_encoder.") for k in state)
    rows = [c for c in candidates if (c.file_layout == "v1") == v1_names]
    if name is not None:
        try:
            name = resolve(name)
        except KeyError as exc:
            raise CheckpointError(str(exc.args[0])) from None
        return _check_name(state, rows, candidates, name)
    found = signature(state)
    matches = [row for row in rows if signature(row.layout) == found]
    if matches:
        return _pick(matches, state, filename, resolve)
    keys = {k for k, _ in found}
    natives = [c for c in candidates if c.file_layout == ("v1" if c.v1_model else "openclip")]
    best = max(natives, key=lambda c: len(keys & set(c.layout)))
    raise CheckpointError(
        "not a MobileCLIP checkpoint this version knows. Closest: " + diff_message(state, best.layout, best.name)
    )


def resolve_model_name(name: str, known: Sequence[str]) -> str:
    """Canonical registry name among ``known`` for ``name``; accepts ``MobileCLIP2-S0``, ``mobileclip_s0``,
    ``mobileclip-b-lt``, ``MobileCLIP-L-14`` and the like. Raises ``KeyError`` listing the known names."""
    key = name.strip().lower().replace("_", "-").replace("(lt)", "lt").replace(" ", "")
    key = key.removesuffix(".pt").replace("b-lt", "blt").replace("l-14", "l14")
    if key not in known:
        raise KeyError(f"unknown MobileCLIP model {name!r}; known: {', '.join(known)}")
    return key
