"""The desktop app's only door into core: every call the GUI makes into the library goes through here.

Plain Python, no Qt, safe to call from worker threads (core's `Library` opens a database connection per
call). Search, browsing, folders, tags, indexing, watching and the "serving model" rules of a model switch are
core's (`core.library.Library`, the one door the CLI uses too); this module adds what a GUI needs on top:
encoder threads capped so the GUI keeps a core, one photo per RAW+JPEG shot among photos added while browsing,
the model picker's view of the packages, thumbnails and previews. Results are plain dataclasses, never objects
holding database handles.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from PIL import Image

from core.errors import ImageDecodeError, LibraryError, NoModelError
from core.indexer import IndexReport
from core.library import Library, PhotoOrder
from core.model_store import BUILD_STARTER_HINT, build_starter, trainer_available
from core.preprocess import load_image
from core.search import MAX_MATCHES, SearchHit, SearchRequest, SearchResult, raw_pairs
from core.tagging import PhotoTag
from core.thumbnails import ThumbnailCache
from core.watcher import FolderWatcher

# Small batches give the progress bar and Cancel a beat every few seconds even on slow machines.
INDEX_BATCH_SIZE = 16
WATCH_DEBOUNCE_S = 1.0  # a copied photo shows up about this long after the copy ends


@dataclass(frozen=True)
class ModelInfo:
    """An installed model package as the model picker shows it."""

    id: str
    name: str
    location: str
    dim: int


@dataclass(frozen=True)
class FolderInfo:
    """A library folder and how many indexed photos lie under it."""

    path: str
    photo_count: int
    exists: bool = True


@dataclass(frozen=True)
class LibrarySnapshot:
    """What the window shows about the library: counts, folders, tags and models."""

    library: Path
    photo_count: int
    error_count: int
    models: tuple[ModelInfo, ...]
    active_model: str | None
    serving_model: str | None  # the model search answers from (the previous one while a switch embeds)
    trainer_available: bool
    no_model_hint: str
    folders: tuple[FolderInfo, ...] = ()
    tags: tuple[tuple[str, int], ...] = ()  # every tag in use with its photo count, most used first


@dataclass(frozen=True)
class PhotoDetails:
    """Facts about one photo for the photo view."""

    path: str
    size_bytes: int
    width: int
    height: int
    modified: float  # seconds since the epoch
    extra: dict[str, str] = field(default_factory=dict)  # e.g. date taken, camera


class LibraryService:
    """One library folder as the window sees it: photos, folders, tags, models, search, watching, thumbnails."""

    def __init__(self, library: Path, *, index_threads: int | None = None) -> None:
        self.library = Path(library)
        # Leave one core to the GUI thread.
        self.lib = Library(self.library, threads=index_threads or max(1, (os.cpu_count() or 1) - 1))
        self.store = self.lib.store
        self.thumbnails = ThumbnailCache(self.library)
        self._watch_lock = threading.Lock()
        self._watcher: FolderWatcher | None = None
        self._watch_closed = False

    # --- library ---------------------------------------------------------------------------------

    def snapshot(self) -> LibrarySnapshot:
        """Photo and error counts, folders with counts, tags with counts, installed models, active and serving."""
        self.lib.refresh_models()  # a refresh follows installs and switches: read the packages again
        folders = tuple(FolderInfo(f.path, f.photos, os.path.isdir(f.path)) for f in self.lib.folders())
        models = tuple(ModelInfo(m.id, m.card.name, m.location, m.card.embedding_dim) for m in self.store.list())
        active = self.active_model_id()
        return LibrarySnapshot(
            library=self.library,
            photo_count=self.lib.photo_count(),
            error_count=len(self.lib.errors()),
            models=models,
            active_model=active,
            serving_model=self.lib.serving_model_id() if active is not None else None,
            trainer_available=trainer_available(),
            no_model_hint=BUILD_STARTER_HINT,
            folders=folders,
            tags=tuple(self.lib.tag_counts()),
        )

    def active_model_id(self) -> str | None:
        """The active model's id, or None when no model is installed."""
        try:
            return self.lib.active_id()
        except NoModelError:
            return None

    def photo_paths(self, after_id: int = 0) -> tuple[list[str], int]:
        """Paths of indexed photos in the order they were added (only those with an id above `after_id`),
        and the highest id seen, to ask for what is new next time."""
        rows = self.lib.photos_after(after_id)
        return _one_per_shot([path for _, path in rows]), max((pid for pid, _ in rows), default=after_id)

    def browse(self) -> PhotoOrder:
        """Every indexed photo as an id, newest first (date taken, else file date), and the highest photo id."""
        return self.lib.browse()

    def paths_by_id(self, ids: Sequence[int]) -> list[str | None]:
        """The paths of photos by id (None for one no longer indexed): the grid reads a page of rows at a time."""
        return self.lib.paths_by_id(ids)

    def errors(self) -> list[tuple[str, str]]:
        """(path, reason) of every file that could not be indexed."""
        return self.lib.errors()

    def folders(self) -> list[str]:
        """The library folders the user added."""
        return [folder.path for folder in self.lib.folders()]

    def remove_folder(self, folder: str) -> IndexReport:
        """Forget a library folder and every photo under it (the files stay on disk)."""
        return IndexReport(removed=self.lib.remove_folder(folder))

    # --- tags ------------------------------------------------------------------------------------

    def tags_of(self, path: str) -> list[PhotoTag]:
        """A photo's tags (user tags first, then by score), without the ones the user rejected."""
        return self.lib.tags_of(path)

    def vocabulary(self) -> list[str]:
        """Tags the model knows plus every tag in use, for completing what the user types."""
        return sorted(set(self.lib.vocabulary()) | {tag for tag, _ in self.lib.tag_counts()})

    def set_tag(self, path: str, tag: str) -> list[PhotoTag]:
        """Add a tag by hand or confirm a model tag; returns the photo's tags now."""
        return self.lib.edit_tags(path, add=[tag])

    def remove_tag(self, path: str, tag: str) -> list[PhotoTag]:
        """Remove a tag (a model tag is kept as rejected so it never comes back); returns the photo's tags now."""
        return self.lib.edit_tags(path, remove=[tag])

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
        return self.lib.index(
            None if roots is None else list(roots), progress=progress, cancel=cancel, batch_size=INDEX_BATCH_SIZE
        )

    def reembed(
        self,
        model_id: str,
        *,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> IndexReport:
        """Make `model_id` active and embed the library with it. Search keeps answering from the previous
        model until every photo has the new model's embedding (core's serving-model rule), even if cancelled."""
        self.lib.use(model_id)
        return self.index(None, progress=progress, cancel=cancel)

    def build_starter(self) -> None:
        """Build and install the starter model into this library (minutes; needs the trainer)."""
        build_starter(self.library)

    # --- watching --------------------------------------------------------------------------------

    def watch(self, on_report: Callable[[IndexReport], None]) -> list[Path]:
        """(Re)start watching the library folders: new, changed and deleted photos are indexed or forgotten
        and `on_report` runs after each batch, on the watcher's thread. Returns the folders watched.

        Folders that are missing now (an unplugged drive) are left out instead of failing the whole watch.
        The watcher's threads inherit the calling thread's priority, so start it from a background job.
        """

        with self._watch_lock:
            self._stop_watching()
            if self._watch_closed or not any(os.path.isdir(folder) for folder in self.folders()):
                return []
            try:
                watcher = self.lib.watcher(on_report, debounce_s=WATCH_DEBOUNCE_S)
            except LibraryError:
                # core watches every folder or none: with one missing, watch none rather than fail.
                return []
            watcher.start()
            self._watcher = watcher
            return watcher.roots

    def stop_watching(self, *, for_good: bool = False) -> None:
        """Stop watching (a batch already seen is still indexed before this returns); `for_good` also refuses
        later watch() calls, for a window that is closing while a watch is still being started."""
        with self._watch_lock:
            self._watch_closed = self._watch_closed or for_good
            self._stop_watching()

    def _stop_watching(self) -> None:
        if self._watcher is not None:
            watcher, self._watcher = self._watcher, None
            watcher.stop()

    @property
    def watching(self) -> list[Path]:
        """The folders watched now."""
        watcher = self._watcher
        return watcher.roots if watcher is not None else []

    # --- search ----------------------------------------------------------------------------------

    def search(
        self, text: str, *, folder: str | None = None, tag: str | None = None, sort: str = "relevance", weaker: int = 0
    ) -> SearchResult:
        """The photos that match `text` (core's query language) within a folder and a tag, from the serving
        model, by `sort` ("relevance" or "date"). Text stops where the matches stop (core's cutoff, as the CLI's
        `search` without --top), then adds the `weaker` best photos below it; filters alone give every match."""
        request = SearchRequest(text, folder=folder, tag=tag, top=MAX_MATCHES, sort=sort, cutoff=True, weaker=weaker)
        return self.lib.search(replace(request, every_filter_match=True))

    def similar(self, path: str, top: int = 500) -> list[SearchHit]:
        """The photos that look most like `path`, best first (the photo itself left out)."""
        return self.lib.similar(Path(path), top=top)

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
        info = self.lib.photo_info(path)
        extra = {}
        if info is not None and info.taken_at:
            extra["Taken"] = datetime.fromtimestamp(info.taken_at).strftime("%Y-%m-%d %H:%M")
        if info is not None and info.camera:
            extra["Camera"] = info.camera
        return PhotoDetails(path, stat.st_size, width, height, stat.st_mtime, extra)

    def preview(self, path: str, max_side: int) -> Image.Image:
        """The photo upright as RGB, shrunk to fit a `max_side` box (for the photo view)."""
        image = load_image(Path(path), min_side=max_side)
        image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC, reducing_gap=2.0)
        return image


def _one_per_shot(paths: list[str]) -> list[str]:
    """The paths without the RAW files that have a JPEG twin (search shows such a pair as its JPEG too)."""
    paired = raw_pairs(paths)
    return [path for row, path in enumerate(paths) if row not in paired]
