"""`python -m trainer download`: streamed, resumable, size- and hash-checked downloads, then the import.

A local HTTP server on 127.0.0.1 (http.server in a thread) serves a MobileCLIP-S0 checkpoint made with the golden
fill scheme; nothing touches the internet. It honours Range requests and can cut the connection half-way once.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from core.encoders import ModelPackage
from trainer.cli import main as trainer_main
from trainer.download import OFFICIAL_URLS, DownloadError, download_file
from trainer.models.clip import MODELS, create_model
from trainer.models.golden_fill import build_filled

torch.set_num_threads(1)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Server:
    """Serves the files of one folder; `/cut/NAME` drops the connection half-way through its first response."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_done: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server.requests.append((self.path, self.headers.get("Range")))
                cut = self.path.startswith("/cut/")
                file = server.root / self.path.removeprefix("/cut/").lstrip("/")
                if not file.is_file():
                    self.send_error(404, "Not Found")
                    return
                size = file.stat().st_size
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(size - start))
                self.end_headers()
                stop = size
                if cut and self.path not in server.cut_done:
                    server.cut_done.add(self.path)
                    stop = start + (size - start) // 2
                with file.open("rb") as handle:
                    handle.seek(start)
                    left = stop - start
                    try:
                        while left > 0:
                            chunk = handle.read(min(left, 1 << 20))
                            self.wfile.write(chunk)
                            left -= len(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client gave up on purpose (e.g. a refused size)
                # HTTP/1.0: returning closes the connection, so a cut response simply ends early.

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[_Server, Path]]:
    """The server and the golden-filled MobileCLIP-S0 checkpoint it serves as /mobileclip_s0.pt."""
    root = tmp_path_factory.mktemp("served")
    checkpoint = root / "mobileclip_s0.pt"
    torch.save(build_filled(lambda: create_model("mobileclip-s0")).state_dict(), checkpoint)
    server = _Server(root)
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


def test_resumes_after_a_cut_connection(served, tmp_path: Path) -> None:
    server, checkpoint = served
    dest = tmp_path / "mobileclip_s0.pt"
    download_file(server.url("cut/mobileclip_s0.pt"), dest, retry_wait=0)
    assert sha256(dest) == sha256(checkpoint)
    ranges = [r for path, r in server.requests if path == "/cut/mobileclip_s0.pt"]
    assert ranges == [None, f"bytes={checkpoint.stat().st_size // 2}-"]


def test_resumes_a_partial_file_from_an_earlier_run(served, tmp_path: Path) -> None:
    server, checkpoint = served
    dest = tmp_path / "mobileclip_s0.pt"
    with checkpoint.open("rb") as handle:
        dest.with_name(dest.name + ".part").write_bytes(handle.read(1_000_000))
    start = len(server.requests)
    download_file(server.url("mobileclip_s0.pt"), dest, retry_wait=0)
    assert sha256(dest) == sha256(checkpoint)
    assert server.requests[start:] == [("/mobileclip_s0.pt", "bytes=1000000-")]


def test_size_mismatch_is_refused(served, tmp_path: Path) -> None:
    server, checkpoint = served
    dest = tmp_path / "mobileclip_s0.pt"
    with pytest.raises(DownloadError, match="refused"):
        download_file(server.url("mobileclip_s0.pt"), dest, expected_size=checkpoint.stat().st_size + 1)
    assert not dest.exists()


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


def test_missing_file_gives_a_clear_error(served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server, _checkpoint = served
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(server.url("mobileclip_s9.pt"), tmp_path / "x.pt")
    library = tmp_path / "library"
    code = trainer_main(["download", "mobileclip-s1", "--url", server.url("nope.pt"), "--library", str(library)])
    assert code == 1
    assert "HTTP 404" in capsys.readouterr().err
    assert not (library / "models").exists()
