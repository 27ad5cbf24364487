"""The model-package contract: card validation, hash refusal, the store, and the starter's encoders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from core.encoders import ModelPackage
from core.errors import ModelPackageError, NoModelError
from core.model_card import read_card
from core.model_store import ModelStore
from tests.photo_corpus import load_photo


def _copy_package(src: Path, dest: Path) -> Path:
    """A writable copy whose big text encoder is a link (tests here never modify it)."""
    dest.mkdir(parents=True)
    for item in src.iterdir():
        if item.name == "text_encoder.onnx":
            (dest / item.name).symlink_to(item.resolve())
        else:
            shutil.copy2(item, dest / item.name)
    return dest


def test_starter_embeds_images_and_texts_unit_length(starter_model: ModelPackage) -> None:
    images = [Image.fromarray(data.chelsea()), Image.fromarray(data.coffee())]
    image_vectors = starter_model.embed_images(images)
    text_vectors = starter_model.embed_texts(["a cat", "a cup of coffee", "a rocket"])
    assert image_vectors.shape == (2, starter_model.dim) and image_vectors.dtype == np.float32
    assert text_vectors.shape == (3, starter_model.dim) and text_vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(image_vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text_vectors, axis=1), 1.0, atol=1e-5)
    similarity = image_vectors @ text_vectors.T
    assert similarity[0].argmax() == 0  # the cat photo is closest to "a cat"
    assert similarity[1].argmax() == 1  # the coffee photo to "a cup of coffee"


def test_starter_finds_dark_sky_photos_for_night_queries(starter_model: ModelPackage) -> None:
    """The low-light evidence in the starter's image graph: the two photos under a dark sky come first for night."""
    names = ["hubble_deep_field", "rocket_launch_pad", "coffee", "astronaut", "chinese_pagoda", "cameraman"]
    photos = starter_model.embed_images([load_photo(n, max_side=512) for n in names])
    for query in ("a photo at night", "dusk"):
        scores = (starter_model.embed_texts([query], as_query=True) @ photos.T)[0]
        assert {names[i] for i in np.argsort(-scores)[:2]} == {"hubble_deep_field", "rocket_launch_pad"}, query


def test_batching_does_not_change_embeddings(starter_model: ModelPackage) -> None:
    images = [Image.fromarray(data.astronaut()), Image.fromarray(data.rocket())]
    together = starter_model.embed_images(images)
    alone = np.concatenate([starter_model.embed_images([image]) for image in images])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    texts = ["a short query", "a much longer query about a red bicycle leaning on a wall"]
    np.testing.assert_allclose(
        starter_model.embed_texts(texts),
        np.concatenate([starter_model.embed_texts([t]) for t in texts]),
        atol=1e-5,
    )


def test_card_records_parity_hashes_and_licence(starter_package_dir: Path) -> None:
    card = read_card(starter_package_dir)
    assert card.id == "starter" and card.embedding_dim == 384
    assert set(card.files) == {
        "image_encoder.onnx",
        "image_encoder.float32.onnx",
        "image_check.npz",
        "text_encoder.onnx",
        "vocab.txt",
        "LICENSE.txt",
    }
    assert card.parity["image_float32_max_abs_diff"] < 1e-4
    # The text weights are stored as float16 (float32 arithmetic): raw MiniLM embeddings (norm 6-8) move by < 1e-3.
    assert card.parity["text_max_abs_diff"] < 1e-3
    # The int8 encoder's check as run on the building CPU: on any CPU whose int8 does not saturate it holds.
    check = card.parity["image_int8_check"]
    assert check["views"] == 18 and check["cosine_min"] <= check["cosine_mean"] <= 1.0
    assert (starter_package_dir / card.license["file"]).is_file()


@pytest.mark.parametrize("victim", ["vocab.txt", "image_encoder.onnx"])
def test_tampered_file_is_refused(starter_package_dir: Path, tmp_path: Path, victim: str) -> None:
    package = _copy_package(starter_package_dir, tmp_path / "starter")
    with (package / victim).open("r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelPackageError, match=f"{victim}: sha256 mismatch"):
        ModelPackage(package)


def test_missing_file_and_malformed_cards_are_refused(starter_package_dir: Path, tmp_path: Path) -> None:
    package = _copy_package(starter_package_dir, tmp_path / "starter")
    (package / "vocab.txt").unlink()
    with pytest.raises(ModelPackageError, match="missing file vocab.txt"):
        ModelPackage(package)
    card_path = package / "model_card.json"
    card = json.loads(card_path.read_text())
    for broken, message in [
        ({**card, "format_version": 99}, "format 99 is not supported"),
        ({k: v for k, v in card.items() if k != "preprocess"}, "no 'preprocess'"),
        ({**card, "tokenizer": {**card["tokenizer"], "kind": "sentencepiece"}}, "unknown tokenizer kind"),
        ({**card, "files": {**card["files"], "../evil": "0" * 64}}, "bad file entry"),
    ]:
        card_path.write_text(json.dumps(broken))
        with pytest.raises(ModelPackageError, match=message):
            read_card(package)
    card_path.write_text("{not json")
    with pytest.raises(ModelPackageError, match="cannot read the model card"):
        read_card(package)


def test_store_finds_uses_and_remembers_models(library: Path, starter_package_dir: Path, tmp_path: Path) -> None:
    other = _copy_package(starter_package_dir, library / "models" / "starter-copy")
    card = json.loads((other / "model_card.json").read_text())
    (other / "model_card.json").write_text(json.dumps({**card, "id": "starter-copy", "name": "Copy"}))
    store = ModelStore(library)
    assert sorted(m.id for m in store.list()) == ["starter", "starter-copy"]
    assert store.active_id() == "starter"  # the default when nothing was chosen
    store.set_active("starter-copy")
    assert ModelStore(library).active_id() == "starter-copy"  # persisted in the library
    with pytest.raises(ModelPackageError, match="no model package 'nope'.*starter"):
        store.set_active("nope")


def test_store_without_packages_says_how_to_build_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    with pytest.raises(NoModelError, match="python -m trainer build-starter"):
        ModelStore(tmp_path / "empty-library").active_id()
