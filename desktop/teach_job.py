"""Teaching runs the trainer as a child process (``python -m trainer finetune ALBUM --progress-json``), so the app
never imports torch and the GUI never waits on it: a QProcess reads the child's JSON lines as they come.

Cancel terminates the child (it unwinds like Ctrl+C and removes its staged package), kills it if it has not ended
after a grace period, and removes the fresh model id's folder should the child have installed it just before.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from core.model_store import ModelStore
from desktop.workers import BACKGROUND_NICENESS

EXTRA_ARGS_ENV = "PHOTOSEEK_TEACH_ARGS"  # `finetune` options instead of APP_OPTIONS, e.g. "--steps 100" (shell words)
# Text side only: on the 60-photo bench album it learnt more than a full fine-tune (held-out accuracy 0.33 -> 1.00,
# mAP 0.95 vs 0.83, with its labels half-distilled towards their prototypes), kept more of the everyday concepts
# (top-5 overlap 0.90 vs 0.72) in the same time, and activating it re-reads no photo (bench/teach_from_app.py).
APP_OPTIONS = ("--text-only",)
KILL_AFTER_MS = 5_000  # after a terminate, how long the child may take to unwind
STDERR_TAIL = 40
PHASE_TEXT = {
    "album": "Reading the photos",
    "reinforce": "Preparing the examples",
    "evaluate": "Checking the current model",
    "train": "Training",
    "export": "Checking and installing the new model",
}


@dataclass(frozen=True)
class TeachProgress:
    """One beat of the child's progress: a phase and, for counted phases, where it is and the seconds left."""

    phase: str
    step: int
    total: int
    eta_s: float | None

    def text(self) -> str:
        """What the progress dialog says."""
        words = PHASE_TEXT.get(self.phase, self.phase)
        if self.total > 0:
            unit = "step" if self.phase == "train" else "photo"
            words += f": {unit} {self.step} of {self.total}"
        if self.eta_s is not None and self.step > 0:
            words += f", {format_seconds(self.eta_s)} left"
        return words


@dataclass
class TeachOutcome:
    """How a teach run ended: the trainer's report (a dict), or cancelled, or the error in the trainer's words."""

    model_id: str
    report: dict | None = None
    cancelled: bool = False
    error: str | None = None
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)  # the child's last stderr lines


def format_seconds(seconds: float) -> str:
    """'about 2 min 10 s' style durations for people."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"about {seconds} s"
    minutes, rest = divmod(seconds, 60)
    return f"about {minutes} min {rest} s" if rest else f"about {minutes} min"


def next_model_id(library: Path, album: str) -> str:
    """A fresh model id for a fine-tune of ``album``: ``<album>-<n>`` with n above every installed one."""
    taken = {model.id for model in ModelStore(library).list()}
    n = 1
    while f"{album}-{n}" in taken or (ModelStore(library).install_dir / f"{album}-{n}").exists():
        n += 1
    return f"{album}-{n}"


class TeachJob(QObject):
    """One fine-tune in a child process; ``progress`` beats, then ``finished(TeachOutcome)`` once."""

    progress = Signal(object)  # TeachProgress
    finished = Signal(object)  # TeachOutcome

    def __init__(
        self,
        library: Path,
        album_dir: Path,
        base_id: str,
        model_id: str,
        extra_args: list[str] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.library, self.album_dir = Path(library), Path(album_dir)
        self.base_id, self.model_id = base_id, model_id
        if extra_args is None:
            chosen = os.environ.get(EXTRA_ARGS_ENV)
            extra_args = shlex.split(chosen) if chosen is not None else list(APP_OPTIONS)
        self.extra_args = list(extra_args)
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.SeparateChannels)
        self.process.readyReadStandardOutput.connect(self._read_stdout)
        self.process.readyReadStandardError.connect(self._read_stderr)
        self.process.started.connect(self._lower_priority)
        self.process.finished.connect(self._ended)
        self.process.errorOccurred.connect(self._failed_to_start)
        self._stdout = b""
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self._report: dict | None = None
        self._error: str | None = None
        self._cancelled = False
        self._done = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.process.kill)
        self._started = 0.0

    def command(self) -> list[str]:
        """The child's command line (the interpreter running the app, so the same packages)."""
        return [
            sys.executable, "-m", "trainer", "finetune", str(self.album_dir), "--library", str(self.library),
            "--base", self.base_id, "--name", self.model_id, "--progress-json", *self.extra_args,
        ]  # fmt: skip

    def start(self) -> None:
        program, *args = self.command()
        self._started = time.monotonic()
        self.process.start(program, args)

    @property
    def running(self) -> bool:
        return self.process.state() != QProcess.NotRunning

    def cancel(self) -> None:
        """Stop the child; nothing it made stays installed. ``finished`` follows with ``cancelled``."""
        if self._done or self._cancelled:
            return
        self._cancelled = True
        self.process.terminate()
        self._timer.start(KILL_AFTER_MS)

    def stop_now(self) -> None:
        """Cancel and wait for the child to end (the app is closing); ``finished`` comes before this returns."""
        self.cancel()
        if not self.process.waitForFinished(KILL_AFTER_MS):
            self.process.kill()
            self.process.waitForFinished(KILL_AFTER_MS)

    def _lower_priority(self) -> None:
        """Run the child below the GUI (its threads inherit this: it is set before torch starts them)."""
        if hasattr(os, "setpriority"):
            try:
                os.setpriority(os.PRIO_PROCESS, int(self.process.processId()), BACKGROUND_NICENESS)
            except OSError:
                pass

    def _read_stdout(self) -> None:
        self._stdout += bytes(self.process.readAllStandardOutput())
        *lines, self._stdout = self._stdout.split(b"\n")
        for line in lines:
            self._handle(line)

    def _handle(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return  # not one of ours (a library printing to stdout)
        if not isinstance(event, dict):
            return
        kind = event.get("event")
        if kind == "progress":
            self.progress.emit(TeachProgress(str(event["phase"]), int(event["step"]), int(event["total"]),
                                             event.get("eta_s")))  # fmt: skip
        elif kind == "report":
            self._report = event
        elif kind == "error":
            self._error = str(event.get("message", "the trainer stopped"))

    def _read_stderr(self) -> None:
        text = bytes(self.process.readAllStandardError()).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.strip():
                self._stderr_tail.append(line.rstrip())

    def _failed_to_start(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.FailedToStart:
            self._error = f"the trainer could not start: {self.process.errorString()}"
            self._ended(-1, QProcess.CrashExit)

    def _ended(self, code: int, _status: QProcess.ExitStatus) -> None:
        if self._done:
            return
        self._done = True
        self._timer.stop()
        self._read_stdout()
        if self._stdout.strip():
            self._handle(self._stdout)
        outcome = TeachOutcome(self.model_id, seconds=time.monotonic() - self._started, log=list(self._stderr_tail))
        if self._cancelled:
            self._remove_leftovers()
            outcome.cancelled = True
        elif self._report is not None and code in (0, 3):
            outcome.report = self._report
        else:
            outcome.error = self._error or self._last_error() or f"the trainer exited with code {code}"
        self.finished.emit(outcome)

    def _last_error(self) -> str | None:
        for line in reversed(self._stderr_tail):  # the trainer's "error: ..." or argparse's "prog: error: ..."
            if "error:" in line:
                return line.split("error:", 1)[1].strip()
        return None

    def _remove_leftovers(self) -> None:
        """After a cancel: the package, if the child got as far as installing it, its staging folders (a kill
        leaves them) and its training work folder. Only this run's fresh id is touched."""
        models = ModelStore(self.library).install_dir
        shutil.rmtree(models / self.model_id, ignore_errors=True)
        for staged in models.glob(f".{self.model_id}.building-*"):
            shutil.rmtree(staged, ignore_errors=True)
        shutil.rmtree(self.library / "cache" / "finetune" / self.model_id, ignore_errors=True)
