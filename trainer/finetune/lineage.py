"""What a fine-tune descends from: the chain of models recorded in its card (``provenance.lineage``), and the name
it gets from it: the model the concepts were first taught to, then the concepts it knows, most recent last
("MobileCLIP-S0 + 'kayak', 'otter'"), so fine-tunes stacked one after another stay apart in the Models window."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from core.encoders import ModelPackage
from core.model_card import ModelCard
from core.model_card_types import FinetuneProvenance, InitStep, LineageStep, TrainProvenance, source_checkpoint

FINETUNED_BY = "python -m trainer finetune"  # provenance.built_by of a fine-tune
NAMED_CONCEPTS = 3  # the most recent concepts a name shows; the earlier ones are counted
CONCEPT_CHARS = 24  # a longer concept is cut in the name (the card keeps every label whole)


Step = InitStep | LineageStep


def lineage(base: ModelPackage) -> tuple[Step, ...]:
    """The chain of models this one descends from, oldest first, ending with its base."""
    provenance = base.card.provenance
    earlier = provenance.lineage if isinstance(provenance, TrainProvenance | FinetuneProvenance) else None
    checkpoint = source_checkpoint(provenance)
    album = provenance.album if isinstance(provenance, FinetuneProvenance) else None
    return (*(earlier or ()), LineageStep(
        id=base.id,
        name=base.card.name,
        built_by=provenance.built_by,
        checkpoint_sha256=checkpoint.sha256 if checkpoint is not None else None,
        album=album.name if album is not None else None,
    ))  # fmt: skip


def _finetuned(step: Step) -> bool:
    return isinstance(step, LineageStep) and step.built_by == FINETUNED_BY


def finetune_name(base: ModelPackage, installed: Mapping[str, ModelCard], labels: Sequence[str]) -> str:
    """The name of a fine-tune of ``base`` on ``labels``: the newest model of its lineage that no fine-tune made
    (without a closing parenthesis of details), then the concepts taught since, in the order they were first taught.
    ``installed``: the library's cards by id, where the labels of earlier fine-tunes are read (one that is no longer
    installed adds none)."""
    steps = lineage(base)
    cards = {**installed, base.id: base.card}
    earlier = [label for step in steps if _finetuned(step) for label in _labels(cards, step)]
    return concepts_name(_short(_root_name(steps, base.card.name)), [*earlier, *labels])


def concepts_name(root: str, concepts: Sequence[str], shown: int = NAMED_CONCEPTS) -> str:
    """``root`` plus the concepts, each once (where it came first), the last ``shown`` of them quoted and the earlier
    ones counted: "MobileCLIP-S0 + 'heron', 'kayak', 'otter' (+2 earlier)"."""
    unique = list(dict.fromkeys(concepts))
    recent = unique[-shown:] if shown > 0 else []
    words = ", ".join(f"'{_cut(concept)}'" for concept in recent)
    earlier = len(unique) - len(recent)
    return f"{root} + {words}" + (f" (+{earlier} earlier)" if earlier else "")


def _root_name(steps: Sequence[Step], fallback: str) -> str:
    """The name of the newest model in the chain that no fine-tune made (``fallback`` when the chain has none:
    a fine-tune made before cards kept the lineage)."""
    for step in reversed(steps):
        if not _finetuned(step):
            return (step.name if isinstance(step, LineageStep) else None) or fallback
    return fallback


def _labels(cards: Mapping[str, ModelCard], step: Step) -> list[str]:
    """The labels the fine-tune of one lineage step was trained on, when it is still installed."""
    card = cards.get(str(step.id))
    provenance = card.provenance if card is not None else None
    album = provenance.album if isinstance(provenance, FinetuneProvenance) else None
    return list(album.labels) if album is not None else []


def _short(name: str) -> str:
    """A model's name without a closing parenthesis of details ("PhotoSeek Starter (EfficientNet-Lite0 ...)"): the
    concepts come after it, and the lineage keeps the whole name."""
    short = re.sub(r"\s*\([^()]*\)$", "", name.strip())
    return short or name


def _cut(concept: str) -> str:
    return concept if len(concept) <= CONCEPT_CHARS else concept[: CONCEPT_CHARS - 1].rstrip() + "…"
