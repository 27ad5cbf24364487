"""One PhotoSeek per library: a second launch hands its folders to the running window and exits (local sockets,
real windows and real photos; the last test runs two real app processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication
from PySide6.QtNetwork import QLocalSocket

from core.index_db import PhotoIndex
from desktop.single_instance import InstanceServer, claim_library, present, send_to_running, server_name
from tests.desktop.support import WAIT_MS, corpus_size, names, photo_folder, wait_for_query
from tests.support.paths import REPO

SECOND_LAUNCH_LIMIT_S = 60.0  # Python + Qt start-up on a loaded 2-core machine; it never opens a window


SECOND_LAUNCH = """
import sys
from pathlib import Path
from PySide6.QtCore import QCoreApplication
from desktop.single_instance import send_to_running
app = QCoreApplication([])
print("handed over" if send_to_running(sys.argv[1], [Path(f) for f in sys.argv[2:]]) else "nobody there")
"""


def send_from_another_process(qtbot, name: str, folders: list[Path]) -> list[bool]:
    """A second launch's client in its own process, as it really runs, while this process's event loop answers.

    (A client on a thread of this process would put Qt objects on a thread without an event loop.)
    """
    command = [sys.executable, "-c", SECOND_LAUNCH, name, *map(str, folders)]
    client = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        qtbot.waitUntil(lambda: client.poll() is not None, timeout=int(SECOND_LAUNCH_LIMIT_S * 1000))
    finally:
        client.kill()
    out = client.communicate()[0]
    assert client.returncode == 0, out
    return [out.strip() == "handed over"]


def test_a_second_launch_hands_its_folders_to_the_running_window(
    qtbot, make_window, library: Path, tmp_path: Path
) -> None:
    photos = photo_folder(tmp_path / "photos", max_side=256)
    window = make_window(library)
    server = claim_library(library)
    assert server is not None and server.server.isListening()
    server.activated.connect(lambda folders: present(window, folders))
    window.showMinimized()
    qtbot.waitUntil(window.isMinimized)
    received: list[list[Path]] = []
    server.activated.connect(received.append)

    with qtbot.waitSignal(window.controller.index_finished, timeout=WAIT_MS) as finished:
        assert send_from_another_process(qtbot, server.name, [photos]) == [True]
    assert received == [[photos.resolve()]]
    assert not window.isMinimized() and window.isVisible()  # brought back to the front
    assert finished.args[0].kind == "index" and finished.args[0].report.indexed == corpus_size()
    wait_for_query(qtbot, window, "")
    qtbot.waitUntil(lambda: len(names(window)) == corpus_size(), timeout=WAIT_MS)
    server.close()


def test_every_library_has_its_own_instance(qtbot, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert server_name(first) == server_name(tmp_path / "x" / ".." / "a")  # the same library, however spelled
    assert server_name(first) != server_name(second)
    server_a = claim_library(first)
    assert server_a is not None
    server_b = claim_library(second)  # library B is not taken by A's window
    assert server_b is not None and server_b.server.isListening()
    sent_to_b: list[list[Path]] = []
    server_b.activated.connect(sent_to_b.append)
    server_a.activated.connect(lambda _: sent_to_b.append(["wrong instance"]))
    assert send_from_another_process(qtbot, server_b.name, [tmp_path]) == [True]
    qtbot.waitUntil(lambda: bool(sent_to_b), timeout=WAIT_MS)
    assert sent_to_b == [[tmp_path.resolve()]]
    server_a.close()
    server_b.close()


CRASH = """
import os, sys
from pathlib import Path
from PySide6.QtCore import QCoreApplication
from desktop.single_instance import claim_library
app = QCoreApplication([])
server = claim_library(Path(sys.argv[1]))
print(server.server.fullServerName(), flush=True)
os._exit(0)  # no clean-up runs, as in a crash: the socket's name is left behind
"""


def test_a_name_left_by_a_crashed_instance_is_taken_over(qtbot, tmp_path: Path) -> None:
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH, str(tmp_path / "lib")], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert crashed.returncode == 0, crashed.stderr
    left_behind = crashed.stdout.strip()
    if sys.platform != "win32":  # a named pipe dies with its process; a Unix socket file stays
        assert os.path.exists(left_behind)
    name = server_name(tmp_path / "lib")
    assert not send_to_running(name, [])  # nobody answers there
    server = claim_library(tmp_path / "lib")
    assert server is not None and server.server.isListening()
    assert send_from_another_process(qtbot, name, []) == [True]
    server.close()


def test_a_probe_that_sends_nothing_is_ignored(qtbot, tmp_path: Path) -> None:
    server = InstanceServer(server_name(tmp_path / "lib"))
    assert server.listen()
    received: list[list[Path]] = []
    server.activated.connect(received.append)
    probe = QLocalSocket()
    probe.connectToServer(server.name)
    assert probe.waitForConnected(1000)
    probe.abort()
    for _ in range(5):
        QCoreApplication.processEvents()
    assert received == []
    server.close()


def app_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.pop("PHOTOSEEK_HOME", None)
    return env


def photo_count(library: Path) -> int:
    if not (library / "index.sqlite3").exists():
        return 0
    with PhotoIndex(library) as index:
        return index.photo_count()


def wait_until(condition, timeout_s: float, process: subprocess.Popen) -> None:
    """Poll a condition on another process's doing (no Qt event loop involved); fail if the process dies."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert process.poll() is None, f"the first instance exited with {process.returncode}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def listening(name: str) -> bool:
    probe = QLocalSocket()
    probe.connectToServer(name)
    up = probe.waitForConnected(200)
    probe.abort()
    return up


def test_launching_the_app_twice_on_a_library_keeps_one_window(library: Path, tmp_path: Path) -> None:
    photos = photo_folder(tmp_path / "photos", max_side=256)
    env = app_env(tmp_path)
    command = [sys.executable, "-m", "desktop", "--library", str(library)]
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: listening(server_name(library)), WAIT_MS / 1000, first)
        started = time.monotonic()
        second = subprocess.run(
            [*command, str(photos)], cwd=REPO, env=env, capture_output=True, text=True, timeout=WAIT_MS / 1000
        )
        took = time.monotonic() - started
        assert second.returncode == 0, second.stdout + second.stderr
        assert took < SECOND_LAUNCH_LIMIT_S, f"the second launch took {took:.1f} s"
        wait_until(lambda: photo_count(library) == corpus_size(), WAIT_MS / 1000, first)  # the first indexed them
    finally:
        first.terminate()
        output = first.communicate(timeout=60)[0]
    assert "Traceback" not in output, output
