"""Index-type jobs as the window sees them: progress beats, how a job ended, and what it is called."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.pathtext import display


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
