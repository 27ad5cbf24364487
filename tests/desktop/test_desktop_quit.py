"""Quitting while a background job runs: the job stops within a moment and nothing prints a traceback (the real
app's objects are torn down in a subprocess, as when a user closes the window mid-index)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from desktop.workers import JobRunner
from tests.desktop.support import WAIT_MS, photo_folder
from tests.support.paths import REPO

STOP_LIMIT_S = 3.0  # the running batch finishes, then the window's process ends

CLOSE_MID_INDEX = """
import sys, time
from pathlib import Path
from PySide6.QtCore import QSettings
from desktop.app import create_main_window, make_application

library, photos, settings = (Path(arg) for arg in sys.argv[1:4])
app = make_application()
window = create_main_window(library, QSettings(str(settings), QSettings.IniFormat))
window.show()
window.add_paths([photos])
closed = []

def close_midway(progress):
    if 0 < progress.done < progress.total and not closed:
        closed.append(time.perf_counter())
        print(f"closing at {progress.done} / {progress.total}", flush=True)
        window.close()

window.controller.index_progress.connect(close_midway)
app.exec()
del window, app  # what the end of the process does anyway: the Qt objects go first
print(f"stopped_after={time.perf_counter() - closed[0]:.3f}", flush=True)
"""


def test_closing_the_window_mid_index_stops_quickly_without_a_traceback(library: Path, tmp_path: Path) -> None:
    photos = photo_folder(tmp_path / "photos", copies=6, max_side=256)
    done = subprocess.run(
        [sys.executable, "-c", CLOSE_MID_INDEX, str(library), str(photos), str(tmp_path / "settings.ini")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=WAIT_MS / 1000,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "closing at" in done.stdout, done.stdout  # it really was mid-index
    assert "Traceback" not in done.stderr and "Signal source has been deleted" not in done.stderr, done.stderr
    stopped = float(done.stdout.split("stopped_after=")[1])
    assert stopped < STOP_LIMIT_S, f"the process took {stopped:.1f} s to stop after the window closed"


def test_a_runner_that_shut_down_starts_nothing(qtbot) -> None:
    runner = JobRunner(max_threads=1)
    assert runner.shutdown(1000)
    ran: list[str] = []
    job = runner.start("late refresh", lambda _: ran.append("ran"), on_finished=lambda: ran.append("finished"))
    assert job.context.cancelled and runner.running() == []
    assert runner.pool.waitForDone(WAIT_MS)  # had it been queued, it would have run by now
    assert ran == []
