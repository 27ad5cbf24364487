"""Index-type jobs: what each one does in the background, its progress beats, how it ended and what it is called.

A job that indexes library folders marks them incomplete while it runs and clears the marks when it finishes
them (core.incomplete_folders), so a folder stopped by Cancel, by quitting or by a killed process shows what is
left until a later run (the catch-up on opening, a rescan) completes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.pathtext import display

if TYPE_CHECKING:
    from core.incomplete_folders import IncompleteFolder
    from desktop.library_service import LibraryService
    from desktop.workers import JobContext


@dataclass(frozen=True)
class IndexProgress:
    """One progress beat of an index-type job."""

    kind: str  # "index", "rescan", "catchup" (on opening), "reembed", "remove" or "starter"
    done: int
    total: int  # -1 while the size is not known yet (scanning, building)
    rate: float  # photos per second, 0 when unknown
    eta_seconds: float | None
    loading_model: bool = False  # the model's first batch of this session is under way (it loads first)


@dataclass(frozen=True)
class IndexOutcome:
    """How an index-type job ended: its core report (None on error) or the error message."""

    kind: str
    report: Any
    model_id: str | None
    error: str | None = None

    @property
    def cancelled(self) -> bool:
        return bool(self.report is not None and self.report.cancelled)


def photos_left(report: Any) -> int:
    """Photos a stopped run had still to index: those found that were neither up to date nor handled."""
    return max(0, report.found - report.unchanged - report.indexed - report.failed)


def describe_job(kind: str, arg: Any) -> str:
    """What an index-type job does, for the progress panel (`arg`: its paths, folder or model id)."""
    if kind == "index":
        names = ", ".join(display(Path(p).name or str(p)) for p in arg[:3])
        return f"Indexing {names}" + ("…" if len(arg) > 3 else "")
    if kind == "rescan":
        return f"Rescanning {display(Path(arg).name or arg)}" if arg else "Rescanning the library"
    if kind == "catchup":
        return "Catching up with changes on disk"
    if kind == "remove":
        return f"Removing {display(Path(arg).name or arg)} from the library"
    if kind == "reembed":
        return f"Switching to model {arg}: embedding photos"
    return "Building the starter model (a few minutes)"


def run_job(service: LibraryService, kind: str, arg: Any, context: JobContext) -> Any:
    """Do an index-type job (on a worker thread); returns core's report (None for building the starter)."""
    from core.incomplete_folders import IncompleteFolders

    def progress(done: int, total: int) -> None:
        context.report((done, total))

    if kind == "remove":
        report = service.remove_folder(arg)
        IncompleteFolders(service.library).finish([arg])
        return report
    if kind == "starter":
        _build_starter(service)
        return None
    marks = IncompleteFolders(service.library)
    folders = _folders_of(service, kind, arg)
    marks.begin(folders)
    finished = False
    try:
        if kind == "reembed":
            report = service.reembed(arg, progress=progress, cancel=context.cancel)
        elif kind == "rescan":
            report = service.index(None if arg is None else [Path(arg)], progress=progress, cancel=context.cancel)
        else:  # "index" (a drop) or "catchup" (on opening)
            report = service.index([Path(p) for p in arg], progress=progress, cancel=context.cancel)
        finished = not report.cancelled
        return report
    finally:  # a stop or an error leaves the folders marked; what is left is counted by the next refresh
        if finished:
            marks.finish(folders)
        else:
            marks.stop(folders)


def _folders_of(service: LibraryService, kind: str, arg: Any) -> list[str]:
    """The library folders a job indexes (as the index lists them: resolved paths; dropped files are none)."""
    if kind == "index":
        return [str(path.resolve()) for path in (Path(p).expanduser() for p in arg) if path.is_dir()]
    if kind == "catchup":
        return list(arg)
    if kind == "rescan" and arg is not None:
        return [arg]
    return service.folders()  # a rescan of the library, or a re-embed with another model


def incomplete_folders(service: LibraryService) -> list[IncompleteFolder]:
    """The library's incomplete folders with the photos left under each (counted now where not known yet)."""
    from core.incomplete_folders import IncompleteFolders

    marks = IncompleteFolders(service.library)
    model_id = service.active_model_id()
    return marks.count_missing(model_id) if model_id is not None else marks.read()


def _build_starter(service: LibraryService) -> None:
    """Build the starter model; a failure says why in plain words and what the user can do instead."""
    from core.errors import PhotoSeekError, StarterBuildError
    from desktop.no_model import build_failed_text

    try:
        service.build_starter()
    except StarterBuildError as exc:
        raise PhotoSeekError(build_failed_text(service.library, exc.reason)) from exc
