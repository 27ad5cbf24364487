"""Models with the same image side share one store of photo embeddings: a text-only fine-tune and its base switch
both ways without re-embedding, each new photo is embedded once for both, removing one keeps what the other uses,
and a card cannot talk its way into another model's embeddings."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from core import cli
from core.errors import ModelPackageError
from core.library import Library
from core.model_card import SharedImageSpec, image_key, read_card, write_card
from core.package_writer import finalize_package
from tests.photo_corpus import materialize

NAMES = ["chelsea_cat", "coffee", "astronaut", "motorcycle"]


def _perturb(graph_file: Path) -> None:
    """Rewrite an ONNX graph with its first weight scaled: other bytes, other outputs."""
    graph = onnx.load(str(graph_file))
    weight = graph.graph.initializer[0]
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.5 + 0.01, weight.name))
    onnx.save(graph, str(graph_file))


def _variant(base: Path, dest: Path, model_id: str, *, change: str, claim_base: bool) -> Path:
    """A copy of a package under a new id with its text or image encoder changed, hashed like the trainer does;
    `claim_base`: the card says its image side is the base's."""
    shutil.copytree(base, dest)
    card = read_card(base)
    _perturb(dest / (card.text_encoder.file if change == "text" else card.image_encoder.file))
    claim = SharedImageSpec(card.id, image_key(card)) if claim_base else None
    finalize_package(dest, dataclasses.replace(card, id=model_id, shares_image_of=claim))
    return dest


@pytest.fixture()
def shared(tmp_path: Path, tiny_package_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Library, Path]:
    """A library indexed with the tiny model, with a text-only variant ('words') and a full one ('full')."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("PHOTOSEEK_HOME", raising=False)
    models = tmp_path / "library" / "models"
    shutil.copytree(tiny_package_dir, models / "tiny")
    _variant(tiny_package_dir, models / "words", "words", change="text", claim_base=True)
    _variant(tiny_package_dir, models / "full", "full", change="image", claim_base=False)
    photos = tmp_path / "photos"
    materialize(photos, NAMES, max_side=96)
    lib = Library(tmp_path / "library")
    lib.use("tiny")
    assert lib.index([photos]).indexed == len(NAMES)
    return lib, photos


def _model_tags(lib: Library) -> dict[str, int]:
    """How many model tags each model gave."""
    with lib.open_index() as index:
        return dict(index.conn.execute("SELECT source, COUNT(*) FROM tags WHERE state = 'auto' GROUP BY source"))


def _store_count(lib: Library) -> int:
    with lib.open_index() as index:
        return index.conn.execute("SELECT COUNT(*) FROM vector_stores").fetchone()[0]


def test_text_only_fine_tune_and_base_switch_both_ways_without_embedding(shared) -> None:
    lib, photos = shared
    base_scores = lib.search_engine().search("cat")
    assert set(_model_tags(lib)) == {"tiny"}
    lib.use("words")
    assert lib.serving_model_id() == "words"  # its photo embeddings are there already: it serves at once
    report = lib.index()
    assert report.indexed == 0 and report.unchanged == len(NAMES)
    engine = lib.search_engine()
    assert engine.model.id == "words" and len(engine) == len(NAMES)
    assert [h.score for h in engine.search("cat")] != [h.score for h in base_scores]  # its own text side answers
    assert set(_model_tags(lib)) == {"words"}  # tagged again from the shared embeddings, as a re-embed would

    materialize(photos / "new", ["rocket_launch_pad"], max_side=96)
    assert lib.index().indexed == 1  # a new photo is embedded once, for both
    lib.use("tiny")
    assert lib.serving_model_id() == "tiny" and lib.index().indexed == 0
    assert lib.stats().embeddings == {"tiny": len(NAMES) + 1, "words": len(NAMES) + 1}
    assert _store_count(lib) == 1


def test_a_full_fine_tune_embeds_into_its_own_store(shared) -> None:
    lib, _ = shared
    lib.use("full")
    assert lib.serving_model_id() == "tiny"  # nothing of its own yet: the base keeps answering
    assert lib.index().indexed == len(NAMES)
    assert lib.serving_model_id() == "full" and _store_count(lib) == 2
    assert set(_model_tags(lib)) == {"full"}
    assert lib.stats().embeddings == {"tiny": len(NAMES), "words": len(NAMES), "full": len(NAMES)}


def test_removing_a_model_keeps_the_store_a_sharer_still_uses(shared) -> None:
    lib, _ = shared
    lib.use("full")
    lib.index()
    lib.use("tiny")
    vectors = lib.path / "vectors"
    files_before = {p.name for p in vectors.iterdir()}
    assert cli.main(["models", "remove", "words", "--library", str(lib.path)]) == 0
    assert {p.name for p in vectors.iterdir()} == files_before  # 'tiny' still reads that store
    assert lib.stats().embeddings == {"tiny": len(NAMES), "full": len(NAMES)}

    with lib.open_index() as index:  # a store left by a package replaced under its id, read by no model now
        index.vectors.append("image:" + "f" * 40, [1], np.ones((1, 16), np.float32))
    assert cli.main(["models", "remove", "full", "--library", str(lib.path)]) == 0
    assert lib.stats().embeddings == {"tiny": len(NAMES)} and _store_count(lib) == 1
    assert len({p.name for p in vectors.iterdir()}) < len(files_before)  # the full fine-tune's files went with it
    assert lib.index().indexed == 0 and len(lib.search_engine()) == len(NAMES)


def test_a_claim_the_image_files_do_not_back_is_refused(shared, tiny_package_dir: Path) -> None:
    lib, _ = shared
    models = lib.path / "models"
    # Honest hashes of another image graph under a claim of the base's image side: the card is refused.
    liar = _variant(tiny_package_dir, models / "liar", "liar", change="image", claim_base=False)
    card = read_card(liar)
    write_card(
        liar, dataclasses.replace(card, shares_image_of=SharedImageSpec("tiny", image_key(read_card(models / "tiny"))))
    )
    with pytest.raises(ModelPackageError, match="its image files or preprocessing differ"):
        read_card(liar)
    lib.refresh_models()
    assert "liar" not in lib.installed_model_ids()

    # The base's hash written over another image graph: the files fail their check, no photo is served from the
    # base's embeddings and none is written into them.
    forger = _variant(tiny_package_dir, models / "forger", "forger", change="image", claim_base=False)
    card = read_card(forger)
    files = {**card.files, card.image_encoder.file: read_card(models / "tiny").files[card.image_encoder.file]}
    write_card(forger, dataclasses.replace(card, files=files))
    lib.use("forger")
    with pytest.raises(ModelPackageError, match="sha256 mismatch"):
        lib.search_engine()
    with pytest.raises(ModelPackageError, match="sha256 mismatch"):
        lib.index()
    lib.use("tiny")
    assert lib.stats().embeddings["tiny"] == len(NAMES) and _store_count(lib) == 1
    assert lib.index().indexed == 0 and len(lib.search_engine()) == len(NAMES)


def test_the_image_key_covers_every_file_but_the_text_side(tiny_package_dir: Path) -> None:
    card = read_card(tiny_package_dir)
    other = "0" * 64

    def key_with(**files: str) -> str:
        return image_key(dataclasses.replace(card, files={**card.files, **files}))

    text_side = ["text_encoder.onnx", "text_encoder.onnx.data", "vocab.txt", "LICENSE.txt", "finetune.safetensors"]
    assert all(key_with(**{name: other}) == image_key(card) for name in text_side)
    # The image graph's external data, or any file core cannot place, keeps two models apart.
    assert key_with(**{"image_encoder.onnx.data": other}) != image_key(card)
    assert key_with(**{"weights.bin": other}) != key_with(**{"weights.bin": "1" * 64})
    assert image_key(dataclasses.replace(card, embedding_dim=card.embedding_dim * 2)) != image_key(card)
    with pytest.raises(ModelPackageError, match="no hash for image_encoder.onnx"):
        image_key(dataclasses.replace(card, files={}))
