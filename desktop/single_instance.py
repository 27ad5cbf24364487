"""One running PhotoSeek per library: a second launch hands its folders to the first and exits.

The first instance listens on a local socket named after its library (a hash of the resolved path and the
user), so another library runs beside it. A second launch connects, sends one JSON line
``{"folders": [...]}`` and waits briefly for ``ok``; the first raises its window and indexes the folders as if
they had been dropped. A socket left behind by a crashed instance answers nobody, so it is removed and reused.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

if TYPE_CHECKING:
    from desktop.main_window import MainWindow

log = logging.getLogger(__name__)
CONNECT_MS = 1_000  # a live server accepts at once (the kernel does it, even while its GUI is busy)
ANSWER_MS = 5_000  # the first instance's GUI thread may be busy for a moment
MAX_MESSAGE = 1 << 20


def server_name(library: Path) -> str:
    """The local socket name for `library`: the same for every launch on it, different for another library."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name (some containers): the path alone still tells libraries apart
        user = ""
    key = f"{user}\0{Path(library).expanduser().resolve()}"
    return "photoseek-" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def send_to_running(name: str, folders: Sequence[Path]) -> bool:
    """Hand `folders` to the instance listening on `name`; False when none is running there."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(CONNECT_MS):
        return False
    message = json.dumps({"folders": [str(Path(f).resolve()) for f in folders]}) + "\n"
    socket.write(message.encode("utf-8", "surrogateescape"))
    socket.flush()
    socket.waitForBytesWritten(ANSWER_MS)
    if not socket.waitForReadyRead(ANSWER_MS):
        log.warning("the running PhotoSeek did not answer; it should still show its window")
    socket.disconnectFromServer()
    return True  # connected: a live instance has the message, even if its answer was slow


class InstanceServer(QObject):
    """Listens for later launches on the same library; `activated` brings the folders each one sent."""

    activated = Signal(list)  # list[Path]

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.UserAccessOption)  # only this user may talk to it
        self.server.newConnection.connect(self._accept)

    def listen(self) -> bool:
        """Start listening; a name left by a crashed instance (nobody answers on it) is taken over."""
        if self.server.listen(self.name):
            return True
        QLocalServer.removeServer(self.name)  # callers checked that no live instance answers on it
        if self.server.listen(self.name):
            return True
        log.warning("cannot listen as %s: %s", self.name, self.server.errorString())
        return False

    def close(self) -> None:
        self.server.close()

    def _accept(self) -> None:
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(socket.deleteLater)

    def _read(self, socket: QLocalSocket) -> None:
        if not socket.canReadLine():
            if socket.bytesAvailable() > MAX_MESSAGE:
                socket.abort()
            return
        line = bytes(socket.readLine().data()).decode("utf-8", "surrogateescape")
        socket.write(b"ok\n")
        socket.flush()
        try:
            folders = [Path(f) for f in json.loads(line).get("folders", [])]
        except (ValueError, AttributeError, TypeError):
            log.warning("ignored a malformed message from another PhotoSeek launch")
            return
        self.activated.emit(folders)


def claim_library(library: Path, folders: Sequence[Path] = ()) -> InstanceServer | None:
    """Become the library's instance (a listening server), or hand `folders` to the running one and return None."""
    name = server_name(library)
    if send_to_running(name, folders):
        return None
    server = InstanceServer(name)
    server.listen()  # if even that fails, run anyway: one window is better than none
    return server


def present(window: MainWindow, folders: list[Path]) -> None:
    """What another launch asks of this window: come to the front and index the folders it was given."""
    if window.isMinimized():
        window.setWindowState(window.windowState() & ~Qt.WindowMinimized)
    window.show()
    window.raise_()
    window.activateWindow()
    if folders:
        window.add_paths(folders)
