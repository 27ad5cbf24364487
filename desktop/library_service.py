"""The desktop app's only door into core: every call the GUI makes into the library goes through here.

Plain Python, no Qt, safe to call from worker threads: each call opens its own `PhotoIndex` connection
(SQLite connections belong to one thread). When core grows (tags, filters, folder list, similar photos),
only this module changes. Results are plain dataclasses, never core objects with database handles.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from core.encoders import ModelPackage
from core.errors import ImageDecodeError, NoModelError
from core.index_db import PhotoIndex
from core.indexer import IndexReport, index_paths
from core.model_store import BUILD_STARTER_HINT, ModelStore, build_starter, trainer_available
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
    extra: dict[str, str] = field(default_factory=dict)  # room for date taken, camera, tags once core has them


@dataclass(frozen=True)
class Hit:
    """One search result."""

    path: str
    score: float


def _collapse_roots(folders: Iterable[str]) -> list[Path]:
    """The smallest set of folders that contains all of `folders` (drop any folder inside another one)."""
    roots: list[str] = []
    for folder in sorted(set(folders)):
        if roots and (folder == roots[-1] or folder.startswith(roots[-1].rstrip(os.sep) + os.sep)):
            continue
        roots.append(folder)
    return [Path(r) for r in roots]


class LibraryService:
    """One library folder: its index, thumbnails and model packages.

    `models_from` lets the model packages come from another library than the index (the self-test indexes
    a throw-away library with the user's installed model).
    """

    def __init__(self, library: Path, *, models_from: Path | None = None, index_threads: int | None = None) -> None:
        self.library = Path(library)
        self.store = ModelStore(Path(models_from) if models_from is not None else self.library)
        self.thumbnails = ThumbnailCache(self.library)
        cpus = os.cpu_count() or 1
        # Leave one core to the GUI thread: onnxruntime's own threads would otherwise take all of them.
        self.index_threads = index_threads or max(1, cpus - 1)
        self._lock = threading.Lock()
        self._models: dict[tuple[str, str], ModelPackage] = {}
        self._engine: SearchEngine | None = None
        self._engine_key: tuple[str, int] | None = None
        self._generation = 0

    # --- library ---------------------------------------------------------------------------------

    def _index(self) -> PhotoIndex:
        return PhotoIndex(self.library)

    def snapshot(self) -> LibrarySnapshot:
        """Photo and error counts, installed models and the active one."""
        with self._index() as index:
            count, errors = index.photo_count(), len(index.errors())
        models = tuple(
            ModelInfo(m.id, m.card.name, m.location, m.card.embedding_dim) for m in self.store.list()
        )
        return LibrarySnapshot(
            library=self.library,
            photo_count=count,
            error_count=errors,
            models=models,
            active_model=self.active_model_id(),
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
        with self._index() as index:
            states = index.file_states()
        rows = sorted((state.photo_id, path) for path, state in states.items() if state.photo_id > after_id)
        return [path for _, path in rows], max((pid for pid, _ in rows), default=after_id)

    def errors(self) -> list[tuple[str, str]]:
        """(path, reason) of every file that could not be indexed."""
        with self._index() as index:
            return index.errors()

    def library_roots(self) -> list[Path]:
        """Folders that hold the indexed photos, collapsed to the outermost ones."""
        with self._index() as index:
            paths = list(index.file_states())
        return _collapse_roots(os.path.dirname(p) for p in paths)

    # --- models ----------------------------------------------------------------------------------

    def model(self, model_id: str | None = None, *, purpose: str = "search") -> ModelPackage:
        """A loaded model package, cached. Indexing and search get separate instances, so a search never
        waits behind an image batch (each instance runs one encoder call at a time)."""
        model_id = model_id or self.store.active_id()
        key = (model_id, purpose)
        with self._lock:
            cached = self._models.get(key)
        if cached is not None:
            return cached
        threads = self.index_threads if purpose == "index" else 1
        loaded = self.store.load(model_id, threads=threads)
        with self._lock:
            return self._models.setdefault(key, loaded)

    def set_active_model(self, model_id: str) -> None:
        """Make `model_id` the library's active model; later searches use it."""
        self.store.set_active(model_id)
        self.invalidate_search()

    # --- indexing --------------------------------------------------------------------------------

    def index(
        self,
        roots: Sequence[Path],
        *,
        model_id: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> IndexReport:
        """Bring the index up to date for `roots` with a model (the active one by default)."""
        model = self.model(model_id, purpose="index")
        try:
            with self._index() as index:
                return index_paths(
                    roots,
                    index,
                    model,
                    batch_size=INDEX_BATCH_SIZE,
                    workers=self.index_threads + 1,
                    progress=progress,
                    cancel=cancel,
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
        """Embed the library with another model, then make it the active one (unless cancelled).
        Until then the old model keeps answering searches."""
        roots = self.library_roots()
        report = self.index(roots, model_id=model_id, progress=progress, cancel=cancel) if roots else IndexReport()
        if not report.cancelled:
            self.set_active_model(model_id)
        return report

    def build_starter(self) -> None:
        """Build and install the starter model into this library (minutes; needs the trainer)."""
        build_starter(self.library)

    # --- search ----------------------------------------------------------------------------------

    def invalidate_search(self) -> None:
        """Forget the in-memory embedding matrix; the next search reloads it."""
        with self._lock:
            self._generation += 1

    def _engine_for(self, model: ModelPackage) -> SearchEngine:
        with self._lock:
            key = (model.id, self._generation)
            if self._engine is not None and self._engine_key == key:
                return self._engine
        with self._index() as index:
            engine = SearchEngine(index, model)
        with self._lock:
            self._engine, self._engine_key = engine, key
        return engine

    def search(self, query: str, top: int = 500) -> list[Hit]:
        """The photos that best match `query` with the active model, best first."""
        model = self.model(purpose="search")
        return [Hit(h.path, h.score) for h in self._engine_for(model).search(query, top=top)]

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
        return PhotoDetails(path, stat.st_size, width, height, stat.st_mtime)

    def preview(self, path: str, max_side: int) -> Image.Image:
        """The photo upright as RGB, shrunk to fit a `max_side` box (for the photo view)."""
        image = load_image(Path(path), min_side=max_side)
        image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC, reducing_gap=2.0)
        return image
