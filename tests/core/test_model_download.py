"""`core.model_download` and `python -m core models download`: streamed, resumable, size- and hash-checked.

A local HTTP server on 127.0.0.1 (tests/support/http_files) serves a golden-filled MobileCLIP-S0 checkpoint
(safetensors, made without torch); nothing touches the internet. The CLI runs with torch blocked.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.encoders import ModelPackage
from core.model_download import OFFICIAL_URLS, DownloadError, DownloadStopped, download_file
from tests.support.core_process import run_without_torch
from tests.support.golden_checkpoints import golden_arrays, save_safetensors
from tests.support.http_files import FileServer

NAME = "mobileclip_s0.safetensors"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FileServer, Path]]:
    """The server and the golden-filled MobileCLIP-S0 checkpoint it serves."""
    root = tmp_path_factory.mktemp("served")
    checkpoint = save_safetensors(golden_arrays("S0"), root / NAME)
    server = FileServer(root)
    yield server, checkpoint
    server.close()


def test_official_urls_name_apples_files() -> None:
    for url in OFFICIAL_URLS.values():
        assert url.startswith("https://") and url.rsplit("/", 1)[1].startswith("mobileclip")


def test_resumes_after_a_cut_connection(served, tmp_path: Path) -> None:
    server, checkpoint = served
    dest = tmp_path / NAME
    download_file(server.url(f"cut/{NAME}"), dest, retry_wait=0)
    assert sha256(dest) == sha256(checkpoint)
    ranges = [r for path, r in server.requests if path == f"/cut/{NAME}"]
    assert ranges == [None, f"bytes={checkpoint.stat().st_size // 2}-"]


def test_resumes_a_partial_file_from_an_earlier_run(served, tmp_path: Path) -> None:
    server, checkpoint = served
    dest = tmp_path / NAME
    with checkpoint.open("rb") as handle:
        dest.with_name(dest.name + ".part").write_bytes(handle.read(1_000_000))
    start = len(server.requests)
    download_file(server.url(NAME), dest, retry_wait=0)
    assert sha256(dest) == sha256(checkpoint)
    assert server.requests[start:] == [(f"/{NAME}", "bytes=1000000-")]


def test_a_stopped_download_keeps_its_part_and_resumes_from_it(served, tmp_path: Path) -> None:
    server, checkpoint = served
    dest, stop, seen = tmp_path / NAME, threading.Event(), []

    def progress(have: int, total: int | None) -> None:
        seen.append((have, total))
        if have >= 3_000_000:
            stop.set()  # what an app's Pause button does

    with pytest.raises(DownloadStopped):
        download_file(server.url(NAME), dest, progress=progress, stop=stop)
    part = dest.with_name(dest.name + ".part")
    kept = part.stat().st_size
    assert not dest.exists() and 3_000_000 <= kept < checkpoint.stat().st_size
    size = checkpoint.stat().st_size
    assert [h for h, _ in seen] == sorted(h for h, _ in seen) and {t for _, t in seen} == {size}
    seen.clear()
    download_file(server.url(NAME), dest, progress=lambda have, total: seen.append((have, total)))
    assert sha256(dest) == sha256(checkpoint) and not part.exists()
    assert server.requests[-1] == (f"/{NAME}", f"bytes={kept}-") and seen[-1] == (size, size)


def test_size_mismatch_is_refused(served, tmp_path: Path) -> None:
    server, checkpoint = served
    dest = tmp_path / NAME
    with pytest.raises(DownloadError, match="refused"):
        download_file(server.url(NAME), dest, expected_size=checkpoint.stat().st_size + 1)
    assert not dest.exists()


def test_a_file_that_stays_truncated_is_not_passed_on(served, tmp_path: Path) -> None:
    server, checkpoint = served
    dest = tmp_path / NAME
    with pytest.raises(DownloadError, match="ending early|failed"):  # every response is cut: retries run out
        download_file(server.url(f"cut-always/{NAME}"), dest, retries=2, retry_wait=0)
    assert not dest.exists()
    part = dest.with_name(dest.name + ".part")
    assert 0 < part.stat().st_size < checkpoint.stat().st_size  # kept for the next run to resume


def test_hash_mismatch_is_refused(served, tmp_path: Path) -> None:
    server, _checkpoint = served
    small = server.root / "small.bin"
    small.write_bytes(b"not a checkpoint\n" * 1000)
    dest = tmp_path / "small.bin"
    with pytest.raises(DownloadError, match="sha256"):
        download_file(server.url("small.bin"), dest, expected_sha256="0" * 64)
    assert not dest.exists()
    download_file(server.url("small.bin"), dest, expected_sha256=sha256(small))
    assert dest.read_bytes() == small.read_bytes()


def test_cli_download_without_torch_imports_the_model(served, tmp_path: Path) -> None:
    server, checkpoint = served
    library = tmp_path / "library"
    url = server.url(f"cut/{NAME}")
    args = ("models", "download", "mobileclip-s0", "--url", url, "--sha256", sha256(checkpoint), "--activate")
    done = run_without_torch(*args, "--json", library=library)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["active"] is True
    kept = library / "checkpoints" / "mobileclip_s0.pt"
    assert sha256(kept) == sha256(checkpoint)
    card = json.loads((library / "models" / "mobileclip-s0" / "model_card.json").read_text())
    assert card["provenance"]["checkpoint"]["source_url"] == url
    assert ModelPackage(library / "models" / "mobileclip-s0").embed_texts(["a cat"]).shape == (1, 512)


def test_cli_download_with_a_wrong_hash_installs_nothing(served, tmp_path: Path) -> None:
    server, _checkpoint = served
    library = tmp_path / "library"
    args = ("models", "download", "mobileclip-s0", "--url", server.url(NAME), "--sha256", "0" * 64)
    done = run_without_torch(*args, library=library)
    assert done.returncode == 1 and "sha256" in done.stderr
    assert not (library / "models").exists() and not (library / "checkpoints" / "mobileclip_s0.pt").exists()


def test_cli_download_of_a_missing_file_says_how_to_point_elsewhere(served, tmp_path: Path) -> None:
    server, _checkpoint = served
    done = run_without_torch("models", "download", "mobileclip-s0", "--url", server.url("gone.pt"), library=tmp_path)
    assert done.returncode == 1 and "HTTP 404" in done.stderr and "pass --url" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "models").exists()
