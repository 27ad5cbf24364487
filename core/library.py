"""The photo library as the CLI and the desktop app use it: the one door into core. Folders, indexing with
tagging, search, tags, vocabulary, browsing, errors and stats; callers get dataclasses, never SQL or handles.

Model switching: `use` makes a model *active* at once; indexing then embeds what that model lacks. Search
keeps answering from the *serving* model (the last one that covered the whole library) until the active
model has embedded every photo, so a re-embed in the background never leaves search empty.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core.encoders import ModelPackage
from core.errors import ModelPackageError, NoModelError, PhotoSeekError
from core.index_db import IndexedPhoto, PhotoIndex
from core.index_queries import newest_first_ids, photo_facts, photos_under
from core.indexer import IndexReport, ProgressCallback, index_paths
from core.model_card import IMAGE_KEY_PREFIX
from core.model_store import InstalledModel, ModelStore, embedding_counts, image_keys
from core.paths import library_dir
from core.pathtext import display
from core.search import SearchEngine, SearchHit, SearchRequest, SearchResult
from core.tagging import PhotoTag, Tagger
from core.thumbnails import ThumbnailCache
from core.watcher import FolderWatcher
from core.xmp import write_tags

SERVING_KEY = "serving_model"
TAGGED_KEY = "tagged_with"  # the model whose text side made the photos' model tags


@dataclass(frozen=True)
class FolderCount:
    """A library folder and how many indexed photos lie under it."""

    path: str
    photos: int


@dataclass(frozen=True)
class PhotoOrder:
    """The photos to browse, as ids in the order shown, and the highest photo id when they were read."""

    ids: np.ndarray  # int64
    last_id: int


@dataclass(frozen=True)
class LibraryStats:
    """What `stats` reports: sizes, folders, embeddings per model, models in use."""

    library: str
    photos: int
    folders: list[str]
    embeddings: dict[str, int]
    tags: int
    errors: int
    active_model: str | None = None
    serving_model: str | None = None


class Library:
    """One library folder: its index, its models and its settings. Cheap to create; not thread-bound
    (each call opens its own database connection, so workers and the GUI can share one Library)."""

    def __init__(self, path: str | Path | None = None, *, threads: int = 0) -> None:
        """`threads`: onnxruntime threads per encoder (0: all cores); the GUI leaves one core free."""
        self.path = library_dir(path)
        self.threads = threads
        self.store = ModelStore(self.path)
        self._models: dict[str, ModelPackage] = {}
        self._installed: set[str] | None = None  # model ids, read once (use() and refresh_models() re-read them)
        self._engine: tuple[tuple[object, ...], SearchEngine] | None = None
        self._lock = threading.Lock()

    def open_index(self) -> PhotoIndex:
        return PhotoIndex(self.path)

    def model(self, model_id: str | None = None) -> ModelPackage:
        """A loaded, verified model package (the active one by default), kept for reuse."""
        model_id = model_id or self.active_id()
        with self._lock:
            if model_id not in self._models:
                self._models[model_id] = self.store.load(model_id, threads=self.threads)
            return self._models[model_id]

    def installed_model_ids(self) -> set[str]:
        with self._lock:
            if self._installed is None:
                self._installed = {m.id for m in self.store.list()}
            return set(self._installed)

    def active_id(self) -> str:
        """The active model's id (NoModelError when none is installed)."""
        return self.store.active_id(self.installed_model_ids())

    def refresh_models(self) -> None:
        """Read the installed model packages again (after one was installed or removed)."""
        with self._lock:
            self._installed = None

    def serving_model_id(self) -> str:
        """The model search answers from: the active one once it covers the library, else the previous one."""
        active = self.active_id()
        serving = self.store.read_setting(SERVING_KEY)
        if serving in self.installed_model_ids() and serving != active and not self._complete(active):
            return serving
        return active

    def use(self, model_id: str) -> None:
        """Make a model active; the current one keeps serving search until the new one covers the library."""
        try:
            current = self.serving_model_id()
        except NoModelError:
            current = None
        if current is not None and current != model_id and self._complete(current):
            self.store.write_setting(SERVING_KEY, current)
        self.store.set_active(model_id)
        self.refresh_models()

    def remove_model(self, model_id: str) -> InstalledModel:
        """Delete a package of the library's own `models/` folder and its embeddings; returns what was removed.
        Refuses (ModelPackageError) the active model, the one serving search, and user-wide or bundled packages."""
        model = self.store.find(model_id)
        if model.location != "library":
            raise ModelPackageError(
                f"'{model.id}' is a {model.location} package ({display(str(model.dir))}), not the library's"
            )
        for role, in_use in (("the active model", self.active_id()), ("serving search", self.serving_model_id())):
            if model.id == in_use:
                raise ModelPackageError(
                    f"'{model.id}' is {role}; make another model active and let it embed the library first"
                )
        # Renamed first: a package half deleted by a crash is no longer listed, and its id can be installed again.
        doomed = model.dir.with_name(f".{model.id}.removing-{os.getpid()}")
        os.replace(model.dir, doomed)
        if doomed.is_symlink():  # a package linked into the library: the link goes, not what it points to
            doomed.unlink()
        else:
            shutil.rmtree(doomed)
        with self.open_index() as index:
            index.vectors.drop(model.id)  # a store still kept under its id (schema 3) goes with it
            in_use = set(image_keys(self.store.list()).values())
            for key in index.vectors.keys():
                # Its photo embeddings go, unless a model sharing its image side stays, and so does any store no
                # installed model reads (left by a package replaced under its id with another image side).
                if key.startswith(IMAGE_KEY_PREFIX) and key not in in_use:
                    index.vectors.drop(key)
        self.refresh_models()
        return model

    def install_package(self, source: Path) -> InstalledModel:
        """Install a model package folder or `.zip` made elsewhere (checked first: see core.package_install)."""
        from core.package_install import install_model_package

        path = install_model_package(Path(source), self.store.install_dir, taken_ids=self.installed_model_ids())
        self.refresh_models()
        return self.store.find(path.name)

    def embedding_counts(self) -> tuple[int, dict[str, int]]:
        """(photos in the library, photos embedded for each model id): how much of the library each model covers
        (models sharing an image side cover the same photos)."""
        with self.open_index() as index:
            return index.photo_count(), embedding_counts(index.vectors.counts(), self.store.list())

    def _complete(self, model_id: str) -> bool:
        """Whether every photo has an embedding from this model's image side (made for it or for a model sharing
        it, such as the base of a text-only fine-tune): switching to such a model embeds nothing."""
        card = self.store.find(model_id).card
        with self.open_index() as index:
            return index.vectors.count(index.vectors.key_for(card), card.embedding_dim) >= index.photo_count()

    def index(
        self,
        roots: Iterable[Path] | None = None,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        batch_size: int = 32,
    ) -> IndexReport:
        """Index folders (default: every library folder) with the active model, tagging new photos as they land."""
        model = self.model()
        with self.open_index() as index:
            if roots is None:
                roots = [Path(p) for p in index.folders()]
            else:
                roots = [Path(r).expanduser() for r in roots]
                index.add_folders(str(r.resolve()) for r in roots if r.is_dir())
            tagger = Tagger(index)

            def tag_batch(ids: list[int], vectors: np.ndarray) -> None:
                tagger.tag_photos(model, ids, vectors)

            report = index_paths(
                roots,
                index,
                model,
                batch_size=batch_size,
                progress=progress,
                cancel=cancel,
                on_batch=tag_batch,
                thumbnails=ThumbnailCache(self.path),
            )
            store_key = index.vectors.key_for(model.card)
            if not report.cancelled and index.vectors.count(store_key, model.dim) >= index.photo_count():
                self._retag_after_switch(index, model, store_key, report)
                self.store.write_setting(SERVING_KEY, model.id)
            if index.vectors.needs_compaction(store_key):
                index.vectors.compact(store_key)
        return report

    def _retag_after_switch(self, index: PhotoIndex, model: ModelPackage, store_key: str, report: IndexReport) -> None:
        """Once the active model covers the library, photos it did not embed in this run (embedded for a model
        sharing its image side) get its tags, as a re-embed would have given them."""
        tagged_with = self.store.read_setting(TAGGED_KEY)
        if tagged_with not in (None, model.id) and report.indexed < index.photo_count():
            Tagger(index).retag(model, index.vector_snapshot(store_key, model.dim))
        if tagged_with != model.id:
            self.store.write_setting(TAGGED_KEY, model.id)

    def search_engine(self) -> SearchEngine:
        """A search engine over the serving model's embeddings, kept while they stay as they are."""
        model = self.model(self.serving_model_id())
        with self.open_index() as index:
            key = (model.id, *index.vectors.version(index.vectors.key_for(model.card)))
            with self._lock:
                if self._engine is not None and self._engine[0] == key:
                    return self._engine[1]
            engine = SearchEngine(index, model)
        with self._lock:
            self._engine = (key, engine)
        return engine

    def search(self, request: SearchRequest) -> SearchResult:
        """Photos for a request (see core.query for the text, SearchRequest for the rest)."""
        return self.search_engine().answer(request)

    def similar(self, path: Path, top: int = 20, min_score: float | None = None) -> list[SearchHit]:
        """Photos that look like a photo (indexed or not), best first, leaving out the photo and its shot."""
        return self.search_engine().similar(path, top=top, min_score=min_score)

    # --- browsing, tags, vocabulary, errors, stats -------------------------------------------------

    def browse(self) -> PhotoOrder:
        """Every indexed photo as an id, newest first (a RAW with its rendered twin shown as that twin), and the
        highest photo id, to ask for what is new later. Paths are read for the rows shown (`paths_by_id`)."""
        with self.open_index() as index:
            return PhotoOrder(*newest_first_ids(index))

    def paths_by_id(self, ids: Sequence[int]) -> list[str | None]:
        """The paths of photos by id, in order; None for a photo no longer indexed."""
        with self.open_index() as index:
            facts = photo_facts(index, ids)
        return [facts[i].path if i in facts else None for i in map(int, ids)]

    def photo_count(self) -> int:
        with self.open_index() as index:
            return index.photo_count()

    def photos_after(self, after_id: int = 0, limit: int | None = None) -> list[tuple[int, str]]:
        """(id, path) of photos added after `after_id`, in id order (the first `limit` of them when given)."""
        with self.open_index() as index:
            return index.photos_after(after_id, limit)

    def folders(self) -> list[FolderCount]:
        """The library folders the user added, with how many photos lie under each."""
        with self.open_index() as index:
            return [FolderCount(folder, photos_under(index, folder)) for folder in index.folders()]

    def remove_folder(self, folder: str) -> int:
        """Forget a library folder and every photo under it (the files stay); returns how many were forgotten."""
        with self.open_index() as index:
            return index.remove_folder(folder)

    def tags_of(self, path: str) -> list[PhotoTag]:
        """A photo's tags (user tags first, then by score), without the ones the user rejected."""
        with self.open_index() as index:
            return Tagger(index).tags_of(path)

    def edit_tags(self, path: str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> list[PhotoTag]:
        """Add tags by hand (or confirm model tags) and remove tags (a model tag stays rejected); returns the
        photo's tags now."""
        with self.open_index() as index:
            tagger = Tagger(index)
            for tag in add:
                tagger.set_user_tag(path, tag)
            for tag in remove:
                tagger.remove_tag(path, tag)
            return tagger.tags_of(path)

    def tag_counts(self) -> list[tuple[str, int]]:
        """Every tag in use with its photo count, most used first."""
        with self.open_index() as index:
            return Tagger(index).tag_counts()

    def vocabulary(self) -> list[str]:
        """The tags the model tags with."""
        with self.open_index() as index:
            return Tagger(index).vocabulary()

    def edit_vocabulary(self, add: Iterable[str] = (), remove: Iterable[str] = ()) -> tuple[list[str], list[str]]:
        """Add and remove vocabulary tags; returns (added as stored, removed) — tags not there are left out."""
        with self.open_index() as index:
            tagger = Tagger(index)
            added = [tagger.add_to_vocabulary(tag) for tag in add]
            removed = [tag for tag in remove if tagger.remove_from_vocabulary(tag)]
        return added, removed

    def photo_info(self, path: str) -> IndexedPhoto | None:
        """What the index knows about one photo (dates, camera, size), or None when it is not indexed."""
        with self.open_index() as index:
            return index.photo_info(path)

    def errors(self) -> list[tuple[str, str]]:
        """(path, reason) of every file that could not be indexed."""
        with self.open_index() as index:
            return index.errors()

    def stats(self) -> LibraryStats:
        with self.open_index() as index:
            stats = LibraryStats(
                library=str(self.path),
                photos=index.photo_count(),
                folders=index.folders(),
                embeddings=embedding_counts(index.vectors.counts(), self.store.list()),
                tags=len(Tagger(index).tag_counts()),
                errors=len(index.errors()),
            )
        try:
            return replace(stats, active_model=self.active_id(), serving_model=self.serving_model_id())
        except NoModelError:
            return stats

    def export_xmp(self, paths: Iterable[Path] | None = None, style: str = "ext-appended") -> list[tuple[str, str]]:
        """Write every photo's tags (under `paths`, default all) into XMP sidecars; originals are not touched.

        User tags and confirmed model tags are written as the user's; unconfirmed model tags are marked as
        PhotoSeek's so a later export replaces them. Returns (photo, error) for sidecars that could not be written.
        """
        prefixes = [str(Path(p).expanduser().resolve()) for p in paths] if paths else None
        failures = []
        with self.open_index() as index:
            tagger = Tagger(index)
            for path in sorted(index.file_states()):
                if prefixes and not any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes):
                    continue
                tags = tagger.tags_of(path)
                user = [t.tag for t in tags if t.state == "confirmed"]
                model = [t.tag for t in tags if t.state == "auto"]
                try:
                    write_tags(Path(path), user, model, style=style)
                except (PhotoSeekError, OSError) as exc:
                    failures.append((path, str(exc)))
        return failures

    def watcher(self, on_report: Callable[[IndexReport], None], debounce_s: float = 2.0) -> FolderWatcher:
        """A watcher over the library folders that indexes new or changed photos and forgets deleted ones.

        `on_report` runs on the watcher's thread after each batch; start() and stop() the returned watcher.
        """

        def photos_under(folder: Path) -> list[str]:
            with self.open_index() as index:
                return list(index.file_states([str(folder)]))

        def on_change(changed: set[Path], deleted: set[Path]) -> None:
            with self.open_index() as index:
                index.remove_paths(str(p) for p in deleted)
            existing = [p for p in changed if p.exists()]
            if existing or deleted:
                report = self.index(existing) if existing else IndexReport(removed=len(deleted))
                on_report(report)

        with self.open_index() as index:
            # A folder on an unplugged drive is skipped, not fatal: the others stay watched.
            roots = [Path(p) for p in index.folders() if Path(p).is_dir()]
        return FolderWatcher(roots, on_change, debounce_s=debounce_s, known_under=photos_under)
