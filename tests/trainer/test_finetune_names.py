"""Names of fine-tunes, stacked one on another as the app teaches concepts: the model the concepts were first taught
to, then the concepts the fine-tune knows, the most recent last, so each stays recognisable in the Models window;
the card keeps the whole lineage."""

from __future__ import annotations

from pathlib import Path

import torch

from core.model_store import ModelStore
from tests.photo_corpus import materialize
from trainer.finetune.lineage import concepts_name
from trainer.finetune.options import FinetuneOptions
from trainer.finetune.pipeline import finetune

torch.set_num_threads(1)

SMALL = dict(steps=2, batch_size=4, augmentations=2, val_fraction=0.5, text_only=True)


def test_a_name_shows_the_latest_concepts_and_counts_the_earlier_ones() -> None:
    assert concepts_name("MobileCLIP-S0", ["kayak", "otter"]) == "MobileCLIP-S0 + 'kayak', 'otter'"
    taught = ["heron", "kayak", "otter", "kayak", "seal", "swan"]  # a concept taught again keeps its first place
    assert concepts_name("MobileCLIP-S0", taught) == "MobileCLIP-S0 + 'otter', 'seal', 'swan' (+2 earlier)"
    long = "grandma's garden in the spring of 1987"
    assert concepts_name("Starter", ["kayak", long]) == "Starter + 'kayak', 'grandma's garden in the…'"


def test_a_fine_tune_of_a_fine_tune_is_named_by_all_its_concepts_newest_last(tmp_path: Path, library: Path) -> None:
    first_album, second_album = tmp_path / "taught-then", tmp_path / "taught-now"
    for album in (first_album, second_album):  # the app's album grows: the second run sees every concept again
        materialize(album / "nonna", ["handwritten_math", "book_page"], max_side=128)
        materialize(album / "oldtown", ["brick_wall", "chinese_pagoda"], max_side=128)
    materialize(second_album / "kepler", ["hubble_deep_field", "moon_surface"], max_side=128)

    finetune(first_album, library, FinetuneOptions(model_id="taught-1", **SMALL))
    second = finetune(second_album, library, FinetuneOptions(model_id="taught-2", base="taught-1", **SMALL))
    assert second.base_id == "taught-1" and second.labels == ["kepler", "nonna", "oldtown"]

    store = ModelStore(library)
    starter = store.find("starter").card.name
    assert starter.startswith("PhotoSeek Starter (")  # the details in parentheses stay in the lineage
    first_card, second_card = store.load("taught-1").card, store.load("taught-2").card
    assert first_card.name == "PhotoSeek Starter + 'nonna', 'oldtown'"
    assert second_card.name == "PhotoSeek Starter + 'nonna', 'oldtown', 'kepler'"  # kepler came last, sorts first
    lineage = second_card.provenance.lineage
    assert [(step.id, step.name) for step in lineage] == [("starter", starter), ("taught-1", first_card.name)]
    assert [step.album for step in lineage] == [None, "taught-then"]
    album = second_card.provenance.album
    assert album.name == "taught-now" and album.labels == ("kepler", "nonna", "oldtown")
