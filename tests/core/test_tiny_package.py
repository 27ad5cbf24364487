"""The tiny model package (tests/support/tiny_model.py): core accepts it, refuses it tampered, and runs on it
end to end, all without torch."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from core.encoders import ModelPackage
from core.errors import ModelPackageError
from core.model_card import CARD_FILE
from core.tagging import default_vocabulary
from tests.photo_corpus import load_photo, materialize
from tests.support.paths import REPO
from tests.support.tiny_model import EMBED_DIM, build_tiny_package

PHOTOS = ("chelsea_cat", "coffee", "astronaut", "moon_surface")
MAX_PACKAGE_BYTES = 64 * 1024


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """A child Python in the repository, with its own user data folder so no user-wide package is seen."""
    env = {k: v for k, v in os.environ.items() if k != "PHOTOSEEK_HOME"}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_package_verifies_and_hashes_every_file(tiny_package_dir: Path) -> None:
    model = ModelPackage(tiny_package_dir)
    assert model.id == "tiny" and model.dim == EMBED_DIM
    files = {p.name: p.read_bytes() for p in tiny_package_dir.iterdir() if p.name != CARD_FILE}
    assert set(files) == {"image_encoder.onnx", "text_encoder.onnx", "vocab.txt", "LICENSE.txt"}
    assert model.card.files == {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    assert sum(p.stat().st_size for p in tiny_package_dir.iterdir()) < MAX_PACKAGE_BYTES


def test_same_code_builds_the_same_package(tiny_package_dir: Path, tmp_path: Path) -> None:
    again = ModelPackage(build_tiny_package(tmp_path / "again"))
    assert again.card.files == ModelPackage(tiny_package_dir).card.files


def test_photos_get_distinct_stable_unit_embeddings(tiny_package_dir: Path) -> None:
    model = ModelPackage(tiny_package_dir)
    cat, coffee = load_photo("chelsea_cat", 256), load_photo("coffee", 256)
    vectors = model.embed_images([cat, coffee, cat])
    assert vectors.shape == (3, EMBED_DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    assert float(vectors[0] @ vectors[1]) < 0.99


def test_texts_and_the_default_tags_tokenize_and_embed(tiny_package_dir: Path) -> None:
    model = ModelPackage(tiny_package_dir)
    tags = default_vocabulary()
    ids = model.tokenizer(tags)["input_ids"]
    assert model.tokenizer.unk_id not in ids  # every default tag splits into known word pieces
    vectors = model.embed_texts(["a cat", "a dog on the beach", "a cat", *tags], as_query=True)
    assert vectors.shape == (3 + len(tags), EMBED_DIM)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    assert float(vectors[0] @ vectors[1]) < 0.99


@pytest.mark.parametrize("name", ["image_encoder.onnx", "text_encoder.onnx", "vocab.txt"])
def test_a_changed_byte_makes_core_refuse_the_package(tiny_package_dir: Path, tmp_path: Path, name: str) -> None:
    package = shutil.copytree(tiny_package_dir, tmp_path / "tiny")
    data = bytearray((package / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (package / name).write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match=f"{name}: sha256 mismatch"):
        ModelPackage(package)


def test_builds_and_runs_without_torch(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from PIL import Image
        from core.encoders import ModelPackage
        from tests.support.tiny_model import build_tiny_package

        model = ModelPackage(build_tiny_package(Path({str(tmp_path / "tiny")!r})))
        assert model.embed_images([Image.new("RGB", (40, 30), "red")]).shape == (1, model.dim)
        assert model.embed_texts(["a cat"], as_query=True).shape == (1, model.dim)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision"))
        assert not loaded, loaded
        print("ok")
        """
    )
    child = _run(["-c", script], tmp_path)
    assert child.returncode == 0 and child.stdout.strip() == "ok", child.stderr


def test_cli_indexes_and_searches_with_the_tiny_package(tmp_path: Path) -> None:
    photos = materialize(tmp_path / "photos", PHOTOS, max_side=256)
    library = tmp_path / "library"
    build_tiny_package(library / "models" / "tiny")

    indexed = _run(["-m", "core", "index", str(tmp_path / "photos"), "--library", str(library), "--json"], tmp_path)
    assert indexed.returncode == 0, indexed.stderr
    report = json.loads(indexed.stdout)
    assert (report["model"], report["found"], report["indexed"], report["failed"]) == (
        "tiny",
        len(PHOTOS),
        len(PHOTOS),
        0,
    )

    found = _run(["-m", "core", "search", "cat", "--library", str(library), "--json", "--top", "50"], tmp_path)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert isinstance(hits, list) and all(set(hit) == {"path", "score", "taken_at", "raw"} for hit in hits)
    assert sorted(Path(hit["path"]).resolve() for hit in hits) == sorted(p.resolve() for p in photos.values())
    scores = [hit["score"] for hit in hits]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
    assert all(hit["raw"] is None for hit in hits)
