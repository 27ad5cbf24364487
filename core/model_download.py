"""Download a checkpoint: streamed into ``<file>.part``, resumed, size- and hash-checked (no torch).

Streamed with urllib, resumed with HTTP Range requests after a cut connection (in the same run, and in a later
run), checked against the expected size (else the server's Content-Length) and, when one is known, the sha256.
Apple publishes no sizes or hashes for the MobileCLIP files, so for them the size comes from the server and the
sha256 is computed afterwards and recorded in the model card's provenance. Used by ``python -m core models
download`` and ``python -m trainer download``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import PhotoSeekError

if TYPE_CHECKING:
    from tqdm import tqdm

_APPLE_CDN = "https://docs-assets.developer.apple.com/ml-research/datasets/mobileclip/"
_HF = "https://huggingface.co/apple/{repo}/resolve/main/{file}"

# Official locations (ml-mobileclip README and get_pretrained_models.sh; Hugging Face repositories apple/*).
OFFICIAL_URLS: dict[str, str] = {
    "mobileclip-s0": _APPLE_CDN + "mobileclip_s0.pt",
    "mobileclip-s1": _APPLE_CDN + "mobileclip_s1.pt",
    "mobileclip-s2": _APPLE_CDN + "mobileclip_s2.pt",
    "mobileclip-b": _APPLE_CDN + "mobileclip_b.pt",
    "mobileclip-blt": _APPLE_CDN + "mobileclip_blt.pt",
    "mobileclip-s3": _HF.format(repo="MobileCLIP-S3", file="mobileclip_s3.pt"),
    "mobileclip-s4": _HF.format(repo="MobileCLIP-S4", file="mobileclip_s4.pt"),
    "mobileclip-l14": _HF.format(repo="MobileCLIP-L-14", file="mobileclip_l14.pt"),
    "mobileclip2-s0": _HF.format(repo="MobileCLIP2-S0", file="mobileclip2_s0.pt"),
    "mobileclip2-s2": _HF.format(repo="MobileCLIP2-S2", file="mobileclip2_s2.pt"),
    "mobileclip2-b": _HF.format(repo="MobileCLIP2-B", file="mobileclip2_b.pt"),
    "mobileclip2-s3": _HF.format(repo="MobileCLIP2-S3", file="mobileclip2_s3.pt"),
    "mobileclip2-s4": _HF.format(repo="MobileCLIP2-S4", file="mobileclip2_s4.pt"),
    "mobileclip2-l14": _HF.format(repo="MobileCLIP2-L-14", file="mobileclip2_l14.pt"),
}
_CHUNK = 1 << 20


class DownloadError(PhotoSeekError):
    """A checkpoint could not be downloaded completely and intact; `http_status` is the server's refusal, if any."""

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


def with_url_hint(error: DownloadError) -> DownloadError:
    """The error as a command line says it: a file gone from its official place can be fetched with --url."""
    if error.http_status == 404:
        return DownloadError(f"{error}; pass --url with its current location", error.http_status)
    return error


class DownloadStopped(PhotoSeekError):
    """The caller asked the download to stop; the partial file is kept, so a later call resumes it."""


def _content_range(header: str | None) -> tuple[int, int | None]:
    """(first byte, total size) of a ``Content-Range: bytes A-B/TOTAL`` header."""
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", (header or "").strip())
    if not match:
        raise DownloadError(f"the server sent an unusable Content-Range header: {header!r}")
    return int(match.group(1)), None if match.group(2) == "*" else int(match.group(2))


def _open(url: str, start: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": "PhotoSeek"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


@dataclass
class _Backoff:
    """Counts failed attempts (cut connections and early ends alike) and waits longer after each one."""

    retries: int
    retry_wait: float
    failures: int = 0

    def wait_again(self) -> bool:
        """Counts one more failure; False once more than ``retries`` have failed, else waits and returns True."""
        self.failures += 1
        if self.failures > self.retries:
            return False
        time.sleep(self.retry_wait * self.failures)
        return True


@dataclass
class _Transfer:
    """One download's state across its attempts: bytes in the ``.part`` file (``have``) and the size it must reach."""

    url: str
    dest: Path
    expected_size: int | None
    timeout: float
    bar: tqdm
    progress: Callable[[int, int | None], None] | None
    stop: threading.Event | None
    have: int = field(default=0, init=False)
    total: int | None = field(init=False)
    part: Path = field(init=False)

    def __post_init__(self) -> None:
        self.part = self.dest.with_name(self.dest.name + ".part")
        self.total = self.expected_size  # until a server announces the size

    def part_is_whole(self) -> bool:
        """Reads how far the part file got (this run or an earlier one); True when it already has every byte."""
        self.have = self.part.stat().st_size if self.part.exists() else 0
        return bool(self.total is not None and self.have == self.total and self.have)

    def attempt(self) -> None:
        """One request from byte ``have`` onwards, streamed into the part file; network errors propagate."""
        with _open(self.url, self.have, self.timeout) as response:
            mode = self._accept(response)
            self._stream(response, mode)

    def _accept(self, response: http.client.HTTPResponse) -> str:
        """Checks the response continues the part file (206) or restarts it (200); returns the file's open mode."""
        if response.status == 206:
            first, size = _content_range(response.headers.get("Content-Range"))
            if first != self.have:
                raise DownloadError(f"{self.url}: asked for byte {self.have} onwards, the server sent from {first}")
            mode = "ab"
        else:  # 200: the server ignored the Range header or we start fresh
            length = response.headers.get("Content-Length")
            size, self.have, mode = (int(length) if length else None), 0, "wb"
        if self.expected_size is not None and size is not None and size != self.expected_size:
            raise DownloadError(
                f"{self.url}: the server offers {size:,} bytes but {self.expected_size:,} are expected: refused "
                "(wrong URL or a changed file)"
            )
        self.total = size if size is not None else self.total
        self.bar.reset(total=self.total)
        self.bar.update(self.have)
        return mode

    def _stream(self, response: http.client.HTTPResponse, mode: str) -> None:
        """Appends the response to the part file chunk by chunk, reporting progress and honouring ``stop``."""
        with self.part.open(mode) as out:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                self.bar.update(len(chunk))
                self.have += len(chunk)
                if self.progress is not None:
                    self.progress(self.have, self.total)
                if self.stop is not None and self.stop.is_set():
                    raise DownloadStopped(f"the download of {self.dest.name} was stopped at {self.have:,} bytes")

    def whole_after_refusal(self, exc: urllib.error.HTTPError) -> bool:
        """True when a 416 says the part file already has every byte; another 416 deletes it (start over, False).

        Any other HTTP status raises DownloadError with it. Called while ``exc`` is being handled.
        """
        if exc.code == 416 and self.have:  # nothing after our partial file: complete if the sizes agree
            found = re.fullmatch(r"bytes \*/(\d+)", (exc.headers.get("Content-Range") or "").strip())
            if found and int(found.group(1)) == self.have and self.expected_size in (None, self.have):
                self.total = self.have
                return True
            self.part.unlink()
            return False
        hint = " (no such file at this address: it may have moved)" if exc.code == 404 else ""
        raise DownloadError(f"{self.url}: HTTP {exc.code} {exc.reason}{hint}", exc.code) from None

    def received_all(self) -> bool:
        """After a response ended: True when the part file reached the size, False when the connection ended early."""
        self.have = self.part.stat().st_size
        if self.total is None or self.have == self.total:
            self.total = self.have
            return True
        if self.have > self.total:
            self.part.unlink()
            raise DownloadError(
                f"{self.url}: received {self.have:,} bytes, more than the announced {self.total:,}: refused"
            )
        return False

    def finish(self, expected_sha256: str | None) -> None:
        """Checks the final size and the sha256 (a mismatching file is deleted), then renames the part file to dest."""
        if self.expected_size is not None and self.total != self.expected_size:
            raise DownloadError(f"{self.url}: {self.total:,} bytes received, {self.expected_size:,} expected")
        if expected_sha256 is not None:
            digest = hashlib.sha256()
            with self.part.open("rb") as handle:
                while block := handle.read(_CHUNK):
                    digest.update(block)
            if digest.hexdigest() != expected_sha256.lower():
                self.part.unlink()
                raise DownloadError(
                    f"{self.url}: sha256 {digest.hexdigest()} does not match the expected {expected_sha256}"
                )
        os.replace(self.part, self.dest)


def download_file(
    url: str,
    dest: Path,
    *,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
    show_progress: bool = False,
    timeout: float = 60.0,
    retries: int = 5,
    retry_wait: float = 2.0,
    progress: Callable[[int, int | None], None] | None = None,
    stop: threading.Event | None = None,
) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming a partial file; returns ``dest``.

    A cut connection is resumed with a Range request (up to ``retries`` times, waiting ``retry_wait`` x attempt
    seconds); a partial file left by an earlier run is resumed too. The size must equal ``expected_size`` when
    given, else the server's Content-Length; the sha256 must equal ``expected_sha256`` when given. Raises
    DownloadError with the reason (HTTP status, size or hash mismatch, too many failures).

    ``progress(bytes so far, total or None)`` is called as data arrives (an app's progress bar); when ``stop`` is
    set the download ends with DownloadStopped after the current chunk, keeping ``dest.part`` to resume from.
    """
    from tqdm import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    backoff = _Backoff(retries, retry_wait)
    with tqdm(unit="B", unit_scale=True, desc=dest.name, disable=not show_progress, leave=False) as bar:
        transfer = _Transfer(url, dest, expected_size, timeout, bar, progress, stop)
        while True:
            if stop is not None and stop.is_set():
                raise DownloadStopped(f"the download of {dest.name} was stopped")
            if transfer.part_is_whole():
                break
            try:
                transfer.attempt()
            except urllib.error.HTTPError as exc:
                if transfer.whole_after_refusal(exc):
                    break
                continue
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                if not backoff.wait_again():
                    raise DownloadError(
                        f"{url}: download failed {backoff.failures} times ({exc}); the partial file {transfer.part} "
                        "is kept and the next run resumes it"
                    ) from exc
                continue
            if transfer.received_all():
                break
            if not backoff.wait_again():  # the connection ended early: resume from where it stopped
                raise DownloadError(
                    f"{url}: the connection kept ending early ({transfer.have:,} of {transfer.total:,} bytes)"
                )
    transfer.finish(expected_sha256)
    return dest
