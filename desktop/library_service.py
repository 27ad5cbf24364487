"""The desktop app's only door into core: every call the GUI makes into the library goes through here.

Plain Python, no Qt, safe to call from worker threads (core's `Library` opens a database connection per
call). Indexing, library folders, tagging of new photos and the "serving model" rules of a model switch are
core's (`core.library.Library`); this module adds what a GUI needs on top: encoder threads capped so the GUI
keeps a core, a separate search model so a query never waits behind an image batch, thumbnails and previews.
Results are plain dataclasses, never objects holding database handles.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from PIL import Image

from core.encoders import ModelPackage
from core.errors import ImageDecodeError, NoModelError
from core.indexer import IndexReport
from core.library import Library
from core.model_store import BUILD_STARTER_HINT, build_starter, trainer_available
from core.preprocess import load_image
from core.search import SearchEngine
from core.thumbnails import ThumbnailCache

# Small batches give the progress bar and Cancel a beat every few seconds even on slow machines.
INDEX_BATCH_SIZE = 16


@dataclass(frozen=True)
class ModelInfo:
    """An installed model package as the model picker shows it."""

    id: str
    name: str
    location: str
    dim: int


@dataclass(frozen=True)
class LibrarySnapshot:
    """What the window shows about the library right after opening it."""

    library: Path
    photo_count: int
    error_count: int
    models: tuple[ModelInfo, ...]
    active_model: str | None
    serving_model: str | None  # the model search answers from (the previous one while a switch embeds)
    trainer_available: bool
    no_model_hint: str


@dataclass(frozen=True)
class PhotoDetails:
    """Facts about one photo for the photo view."""

    path: str
    size_bytes: int
    width: int
    height: int
    modified: float  # seconds since the epoch
    extra: dict[str, str] = field(default_factory=dict)  # e.g. date taken, camera


@dataclass(frozen=True)
class Hit:
    """One search result."""

    path: str
    score: float


class _DesktopLibrary(Library):
    """core's Library with the indexing encoder limited to `threads` threads (onnxruntime would take every core)."""

    def __init__(self, path: Path, threads: int) -> None:
        super().__init__(path)
        self.threads = threads
        self._capped: dict[str, ModelPackage] = {}
        self._capped_lock = threading.Lock()

    def model(self, model_id: str | None = None) -> ModelPackage:
        model_id = model_id or self.store.active_id()
        with self._capped_lock:
            if model_id not in self._capped:
                self._capped[model_id] = self.store.load(model_id, threads=self.threads)
            return self._capped[model_id]


class LibraryService:
    """One library folder as the window sees it: photos, folders, models, search, thumbnails."""

    def __init__(self, library: Path, *, index_threads: int | None = None) -> None:
        self.library = Path(library)
        # Leave one core to the GUI thread.
        self.lib = _DesktopLibrary(self.library, index_threads or max(1, (os.cpu_count() or 1) - 1))
        self.store = self.lib.store
        self.thumbnails = ThumbnailCache(self.library)
        self._lock = threading.Lock()
        self._search_models: dict[str, ModelPackage] = {}
        self._engine: SearchEngine | None = None
        self._engine_key: tuple[str, int] | None = None
        self._generation = 0

    # --- library ---------------------------------------------------------------------------------

    def snapshot(self) -> LibrarySnapshot:
        """Photo and error counts, installed models, the active and the serving one."""
        with self.lib.open_index() as index:
            count, errors = index.photo_count(), len(index.errors())
        models = tuple(ModelInfo(m.id, m.card.name, m.location, m.card.embedding_dim) for m in self.store.list())
        active = self.active_model_id()
        return LibrarySnapshot(
            library=self.library,
            photo_count=count,
            error_count=errors,
            models=models,
            active_model=active,
            serving_model=self.lib.serving_model_id() if active is not None else None,
            trainer_available=trainer_available(),
            no_model_hint=BUILD_STARTER_HINT,
        )

    def active_model_id(self) -> str | None:
        """The active model's id, or None when no model is installed."""
        try:
            return self.store.active_id()
        except NoModelError:
            return None

    def photo_paths(self, after_id: int = 0) -> tuple[list[str], int]:
        """Paths of indexed photos in the order they were added (only those with an id above `after_id`),
        and the highest id seen, to ask for what is new next time."""
        with self.lib.open_index() as index:
            states = index.file_states()
        rows = sorted((state.photo_id, path) for path, state in states.items() if state.photo_id > after_id)
        return [path for _, path in rows], max((pid for pid, _ in rows), default=after_id)

    def errors(self) -> list[tuple[str, str]]:
        """(path, reason) of every file that could not be indexed."""
        with self.lib.open_index() as index:
            return index.errors()

    def folders(self) -> list[str]:
        """The library folders the user added."""
        with self.lib.open_index() as index:
            return index.folders()

    # --- models ----------------------------------------------------------------------------------

    def search_model(self, model_id: str) -> ModelPackage:
        """The search side's own instance of a model (its text encoder never waits behind an image batch)."""
        with self._lock:
            cached = self._search_models.get(model_id)
        if cached is not None:
            return cached
        loaded = self.store.load(model_id, threads=1)
        with self._lock:
            return self._search_models.setdefault(model_id, loaded)

    # --- indexing --------------------------------------------------------------------------------

    def index(
        self,
        roots: Sequence[Path] | None,
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> IndexReport:
        """Index folders or files with the active model (None: every library folder, i.e. a rescan).
        Added folders join the library's folder list; new photos get tagged as they land."""
        try:
            return self.lib.index(
                None if roots is None else list(roots), progress=progress, cancel=cancel, batch_size=INDEX_BATCH_SIZE
            )
        finally:
            self.invalidate_search()  # whatever was committed is searchable now

    def reembed(
        self,
        model_id: str,
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> IndexReport:
        """Make `model_id` active and embed the library with it. Search keeps answering from the previous
        model until every photo has the new model's embedding (core's serving-model rule), even if cancelled."""
        self.store.set_active(model_id)
        return self.index(None, progress=progress, cancel=cancel)

    def build_starter(self) -> None:
        """Build and install the starter model into this library (minutes; needs the trainer)."""
        build_starter(self.library)

    # --- search ----------------------------------------------------------------------------------

    def invalidate_search(self) -> None:
        """Forget the in-memory embedding matrix; the next search reloads it."""
        with self._lock:
            self._generation += 1

    def _engine_for(self, model_id: str) -> SearchEngine:
        with self._lock:
            key = (model_id, self._generation)
            if self._engine is not None and self._engine_key == key:
                return self._engine
        model = self.search_model(model_id)
        with self.lib.open_index() as index:
            engine = SearchEngine(index, model)
        with self._lock:
            self._engine, self._engine_key = engine, key
        return engine

    def search(self, query: str, top: int = 500) -> list[Hit]:
        """The photos that best match `query` (core's query language), best first, from the serving model."""
        engine = self._engine_for(self.lib.serving_model_id())
        return [Hit(h.path, h.score) for h in engine.search(query, top=top)]

    # --- photos ----------------------------------------------------------------------------------

    def thumbnail(self, path: str, size: int = 256) -> Path:
        """The cached thumbnail file of a photo (made on first use)."""
        return self.thumbnails.get(path, size)

    def details(self, path: str) -> PhotoDetails:
        """Size, pixel dimensions and modification time of a photo."""
        try:
            stat = os.stat(path)
            with Image.open(path) as image:
                width, height = image.size
                orientation = image.getexif().get(0x0112, 1)
        except FileNotFoundError:
            raise ImageDecodeError(f"{path}: file not found") from None
        except OSError as exc:
            raise ImageDecodeError(f"{path}: not a readable image: {exc}") from exc
        if orientation in (5, 6, 7, 8):  # EXIF says the stored pixels are turned a quarter
            width, height = height, width
        with self.lib.open_index() as index:
            info = index.photo_info(path) or {}
        extra = {}
        if info.get("taken_at"):
            extra["Taken"] = datetime.fromtimestamp(float(info["taken_at"])).strftime("%Y-%m-%d %H:%M")
        if info.get("camera"):
            extra["Camera"] = str(info["camera"])
        return PhotoDetails(path, stat.st_size, width, height, stat.st_mtime, extra)

    def preview(self, path: str, max_side: int) -> Image.Image:
        """The photo upright as RGB, shrunk to fit a `max_side` box (for the photo view)."""
        image = load_image(Path(path), min_side=max_side)
        image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC, reducing_gap=2.0)
        return image
