"""Background jobs for the GUI: a QRunnable that runs one plain function and reports back through signals.

Rules (the whole app follows them):
- a job's function never touches widgets; it gets a `JobContext` to report progress and to see cancellation;
- results, progress and errors reach the GUI thread as queued signals of a `JobSignals` object that lives
  in the GUI thread (a QRunnable is not a QObject, so it cannot carry signals itself);
- jobs run as plain callables on a QThreadPool (no QRunnable subclass, so no C++/Python ownership games);
  `JobRunner` keeps each job referenced until it finished.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, QThreadPool, Signal

from core.errors import PhotoSeekError
from core.pathtext import display

log = logging.getLogger(__name__)
_thread_state = threading.local()
BACKGROUND_NICENESS = 10


def lower_thread_priority() -> None:
    """Run the calling (pool) thread, and the threads it starts, below the GUI thread's priority.

    On Linux niceness is per thread and inherited by threads created later (core's decode pool, onnxruntime's
    workers), so the scheduler keeps the GUI thread responsive when the CPU is busy. Elsewhere Qt's thread
    priority does the same job. Done once per thread; failures are harmless.
    """
    if getattr(_thread_state, "lowered", False):
        return
    _thread_state.lowered = True
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)
        except OSError:
            pass
    else:
        thread = QThread.currentThread()
        if thread is not None:
            thread.setPriority(QThread.LowPriority)


class JobSignals(QObject):
    """What a job tells the GUI thread. `finished` always comes last, after `succeeded` or `failed`."""

    progress = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str)
    finished = Signal()


class JobContext:
    """Handed to a job's function: `report(value)` sends progress, `cancel` is set when the user cancels."""

    def __init__(self, signals: JobSignals) -> None:
        self._signals = signals
        self.cancel = threading.Event()

    def report(self, value: object) -> None:
        """Send a progress value to the GUI thread (never blocks)."""
        self._signals.progress.emit(value)

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()


def describe_error(exc: BaseException) -> str:
    """A message for the user: core's own errors speak for themselves, anything else names its type.
    A path in it that is not UTF-8 is shown with `\\xNN` bytes (Qt text cannot hold the raw bytes)."""
    if isinstance(exc, PhotoSeekError):
        return display(str(exc))
    return display(f"{type(exc).__name__}: {exc}")


class Job:
    """Runs `fn(context)` on a pool thread and emits its result or error."""

    def __init__(self, name: str, fn: Callable[[JobContext], Any]) -> None:
        self.name = name
        self._fn = fn
        self.signals = JobSignals()
        self.context = JobContext(self.signals)

    def cancel(self) -> None:
        """Ask the job to stop; it decides when it is safe to."""
        self.context.cancel.set()

    def run(self) -> None:  # runs on a pool thread
        lower_thread_priority()
        try:
            result = self._fn(self.context)
        except Exception as exc:  # every failure must reach the UI, never die silently in a thread
            if not isinstance(exc, PhotoSeekError):
                log.error("job %s failed:\n%s", self.name, traceback.format_exc())
            self._emit(self.signals.failed, describe_error(exc))
        else:
            self._emit(self.signals.succeeded, result)
        finally:
            self._emit(self.signals.finished)

    def _emit(self, signal: Any, *args: object) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the app quit while this job ran past the shutdown wait: nobody is listening
            log.debug("job %s ended after the app quit", self.name)


class JobRunner(QObject):
    """Starts jobs on its own thread pool and keeps them alive until they finish."""

    def __init__(self, max_threads: int = 4, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._running: set[Job] = set()
        self._closed = False

    def start(
        self,
        name: str,
        fn: Callable[[JobContext], Any],
        *,
        on_success: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
        on_finished: Callable[[], None] | None = None,
    ) -> Job:
        """Run `fn` in the background; the callbacks run on the GUI thread. After shutdown() nothing starts (a
        late callback, e.g. an index job's refresh, would outlive the app's objects); the job comes back cancelled."""
        job = Job(name, fn)
        if self._closed:
            job.cancel()
            return job
        if on_success is not None:
            job.signals.succeeded.connect(on_success)
        if on_error is not None:
            job.signals.failed.connect(on_error)
        if on_progress is not None:
            job.signals.progress.connect(on_progress)
        if on_finished is not None:
            job.signals.finished.connect(on_finished)
        job.signals.finished.connect(lambda: self._running.discard(job))
        self._running.add(job)
        self.pool.start(job.run)
        return job

    def running(self) -> list[Job]:
        """Jobs started and not finished yet."""
        return list(self._running)

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel every job and wait for the pool to drain; False if something was still running."""
        self._closed = True
        for job in list(self._running):
            job.cancel()
        self.pool.clear()  # jobs not started yet never start
        return self.pool.waitForDone(timeout_ms)
