"""`python -m trainer download`: core's download (tests/core/test_model_download.py), then the trainer's import.

A local HTTP server on 127.0.0.1 serves a MobileCLIP-S0 checkpoint made with the golden fill scheme.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from core.encoders import ModelPackage
from tests.support.http_files import FileServer
from trainer.cli import main as trainer_main
from trainer.download import OFFICIAL_URLS, DownloadError, download_file
from trainer.models.clip import MODELS, create_model
from trainer.models.golden_fill import build_filled

torch.set_num_threads(1)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FileServer, Path]]:
    """The server and the golden-filled MobileCLIP-S0 checkpoint it serves as /mobileclip_s0.pt."""
    root = tmp_path_factory.mktemp("served")
    checkpoint = root / "mobileclip_s0.pt"
    torch.save(build_filled(lambda: create_model("mobileclip-s0")).state_dict(), checkpoint)
    server = FileServer(root)
    yield server, checkpoint
    server.close()


def test_official_urls_cover_every_model() -> None:
    assert set(OFFICIAL_URLS) == set(MODELS)
    for name, url in OFFICIAL_URLS.items():
        assert url.startswith("https://") and url.endswith("/" + MODELS[name].checkpoint_file)


@pytest.mark.slow
def test_download_then_import(served, tmp_path: Path) -> None:
    server, checkpoint = served
    library = tmp_path / "library"
    url = server.url("mobileclip_s0.pt")
    assert trainer_main(["download", "mobileclip-s0", "--url", url, "--library", str(library), "--activate"]) == 0
    kept = library / "checkpoints" / "mobileclip_s0.pt"
    assert sha256(kept) == sha256(checkpoint)
    assert not kept.with_name(kept.name + ".part").exists()
    card = json.loads((library / "models" / "mobileclip-s0" / "model_card.json").read_text())
    assert card["provenance"]["checkpoint"]["source_url"] == url
    assert card["provenance"]["checkpoint"]["sha256"] == sha256(checkpoint)
    assert json.loads((library / "settings.json").read_text())["active_model"] == "mobileclip-s0"
    package = ModelPackage(library / "models" / "mobileclip-s0")
    assert package.embed_texts(["a cat on a sofa"]).shape == (1, 512)


def test_missing_file_gives_a_clear_error(served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server, _checkpoint = served
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(server.url("mobileclip_s9.pt"), tmp_path / "x.pt")
    library = tmp_path / "library"
    code = trainer_main(["download", "mobileclip-s1", "--url", server.url("nope.pt"), "--library", str(library)])
    assert code == 1
    said = capsys.readouterr().err
    assert "HTTP 404" in said and "pass --url" in said  # the command line names its own way out
    assert not (library / "models").exists()
