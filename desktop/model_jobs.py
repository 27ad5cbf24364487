"""The Models window's background work, as plain functions a worker thread runs (no Qt, no torch).

Listing the installed packages with their size, licence and library coverage; measuring a model's embedding speed
on this machine; downloading Apple's MobileCLIP checkpoints (resumable) and importing checkpoints with core's
torch-free import; installing a package made elsewhere; removing one. Everything goes through core's `Library`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import PhotoSeekError

if TYPE_CHECKING:  # core's library loads onnxruntime: imported by the jobs that run, not with the first window
    from core.library import Library
    from core.model_store import InstalledModel

# The models the window offers to download: small to large (registry names of core.checkpoint_import).
OFFERED_MODELS = ("mobileclip-s0", "mobileclip-s2", "mobileclip-b")
APPLE_WEIGHTS_LICENCE = "Apple ML Research Model Terms of Use"
APPLE_WEIGHTS_LICENCE_URL = "https://github.com/apple/ml-mobileclip/blob/main/LICENSE_MODELS"
SPEED_KEY = "measured_speed"  # library setting: model id -> images per second measured on this machine
SPEED_PHOTOS = 8  # real photos embedded per measurement (after one to warm the model up)


@dataclass(frozen=True)
class ModelRow:
    """One installed model as the Models window lists it."""

    id: str
    name: str
    location: str  # "library", "user" or "bundled"
    size_bytes: int
    licence: str
    embedded: int  # library photos this model has embedded
    photos: int  # photos in the library
    active: bool
    serving: bool  # search answers from it (the previous model while a new one embeds the library)
    speed: float | None  # images per second measured on this machine, None until measured


@dataclass(frozen=True)
class Offer:
    """A MobileCLIP checkpoint the window can download: its registry and display names, file and source."""

    name: str
    display: str
    checkpoint_file: str
    url: str


@dataclass(frozen=True)
class Fetched:
    """A finished download (or a checkpoint downloaded before) ready to import."""

    offer: Offer
    path: Path
    reused: bool  # the library held the complete file already


@dataclass(frozen=True)
class Stopped:
    """A download stopped by the user; `kept_bytes` lie in the partial file the next start resumes from."""

    offer: Offer
    kept_bytes: int


def offers() -> list[Offer]:
    """The downloadable models with their official URLs (read when asked, so a test can point them elsewhere)."""
    from core.checkpoint_import import model_entry
    from core.model_download import OFFICIAL_URLS

    entries = [model_entry(name) for name in OFFERED_MODELS]
    return [Offer(e.name, e.display, e.checkpoint_file, OFFICIAL_URLS[e.name]) for e in entries]


def folder_size(path: Path) -> int:
    """Bytes of the files under `path` (a package folder; links to it are followed)."""
    total = 0
    for root, _dirs, files in os.walk(Path(path).resolve()):
        total += sum(os.path.getsize(os.path.join(root, name)) for name in files)
    return total


def _licence(model: InstalledModel) -> str:
    name = model.card.license.get("name")
    return str(name) if name else "not stated in its card"


def model_rows(lib: Library) -> list[ModelRow]:
    """Every installed model with its size, licence, coverage of the library and measured speed."""
    lib.refresh_models()
    photos, embedded = lib.embedding_counts()
    models = lib.store.list()
    active = lib.store.active_id([m.id for m in models]) if models else None
    serving = lib.serving_model_id() if models else None
    speeds = lib.store.read_setting(SPEED_KEY)
    speeds = speeds if isinstance(speeds, dict) else {}
    return [
        ModelRow(
            m.id,
            m.card.name,
            m.location,
            folder_size(m.dir),
            _licence(m),
            embedded.get(m.id, 0),
            photos,
            m.id == active,
            m.id == serving,
            float(speeds[m.id]) if isinstance(speeds.get(m.id), int | float) else None,
        )
        for m in models
    ]


def measure_speed(lib: Library, model_id: str, photos: int = SPEED_PHOTOS) -> float:
    """Embed a few of the library's own photos with the model, one by one as indexing reads them; returns
    images per second (decoding included) and records it in the library's settings."""
    from core.encoders import ModelPackage
    from core.preprocess import load_image

    on_disk = [path for _id, path in lib.photos_after(0, limit=10 * photos) if os.path.isfile(path)]
    paths = on_disk[: photos + 1]  # the oldest photos still there (a folder on an unplugged drive is skipped)
    if len(paths) < 2:
        raise PhotoSeekError("add some photos to the library first: the speed is measured on your own photos")
    # A fresh package, not the library's cached one: measuring a spare model must not keep it in memory.
    package = ModelPackage(lib.store.find(model_id).dir, threads=lib.threads)
    package.embed_images([load_image(Path(paths[0]))])  # loads the encoder: not part of the speed
    started = time.perf_counter()
    for path in paths[1:]:
        package.embed_images([load_image(Path(path))])
    speed = (len(paths) - 1) / (time.perf_counter() - started)
    speeds = lib.store.read_setting(SPEED_KEY)
    lib.store.write_setting(SPEED_KEY, {**(speeds if isinstance(speeds, dict) else {}), model_id: round(speed, 2)})
    return speed


def checkpoint_path(lib: Library, offer: Offer) -> Path:
    """Where a downloaded checkpoint lives in the library (its `.part` beside it while it downloads)."""
    from core.kept_checkpoints import CHECKPOINT_DIR

    return lib.path / CHECKPOINT_DIR / offer.checkpoint_file


def partial_bytes(lib: Library, offer: Offer) -> int:
    """Bytes already downloaded of an unfinished download (0 if none)."""
    part = checkpoint_path(lib, offer).with_name(offer.checkpoint_file + ".part")
    return part.stat().st_size if part.is_file() else 0


def https_available() -> bool:
    """Whether Python's TLS loads: the packaged app takes OpenSSL 3 from the system, which some systems lack."""
    try:
        import ssl  # noqa: F401
    except ImportError:
        return False
    return True


def download(
    lib: Library, offer: Offer, progress: Callable[[int, int | None], None], stop: threading.Event
) -> Fetched | Stopped:
    """Download the offer's checkpoint into the library, resuming a partial file; Stopped when `stop` is set."""
    from core.model_download import DownloadStopped, download_file

    dest = checkpoint_path(lib, offer)
    if dest.is_file():
        return Fetched(offer, dest, reused=True)
    if offer.url.lower().startswith("https:") and not https_available():
        raise PhotoSeekError(
            f"this build of PhotoSeek cannot download over HTTPS. Download {offer.url} in a web browser, then "
            "choose “Import a checkpoint file…”"
        )
    try:
        download_file(offer.url, dest, progress=progress, stop=stop)
    except DownloadStopped:
        return Stopped(offer, partial_bytes(lib, offer))
    return Fetched(offer, dest, reused=False)


def discard_partial(lib: Library, offer: Offer) -> None:
    """Delete an unfinished download (Cancel): the next start begins again from the first byte."""
    checkpoint_path(lib, offer).with_name(offer.checkpoint_file + ".part").unlink(missing_ok=True)


def import_checkpoint(lib: Library, path: Path, log: Callable[[str], None], source_url: str | None = None) -> str:
    """Import a MobileCLIP checkpoint (.pt / .safetensors) with core's torch-free import; returns the model id."""
    from core.checkpoint_import import import_checkpoint as core_import

    installed = core_import(
        Path(path), lib.store.install_dir, source_url=source_url, library=lib.store.library, log=log
    )
    lib.refresh_models()
    return installed.name


def install_package(lib: Library, source: Path) -> str:
    """Install a model package folder or .zip made elsewhere (checked first); returns its model id."""
    return lib.install_package(source).id


def remove_model(lib: Library, model_id: str) -> str:
    """Delete a library package and its embeddings (core refuses the active and the serving model)."""
    return lib.remove_model(model_id).id
