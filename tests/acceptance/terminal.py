"""Run a command under a pseudo-terminal, as a user at a terminal would: isatty() is true, so progress bars draw."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

COLUMNS, ROWS = 120, 40


@dataclass(frozen=True)
class TerminalRun:
    """What the terminal showed (stdout and stderr interleaved, ``\\r`` kept) and the exit code."""

    argv: tuple[str, ...]
    returncode: int
    output: str
    seconds: float

    def describe(self) -> str:
        """The command, its exit code, time and the end of its output: for assertion messages."""
        return f"{' '.join(self.argv)} -> {self.returncode} in {self.seconds:.0f} s\n{self.output[-4000:]}"


def _signals_as_a_shell_leaves_them() -> None:
    """In the child, before exec: Ctrl+C and Ctrl+\\ act as they do for a command typed at an interactive shell.
    A test run started in the background of a script (``cmd &``) inherits them ignored, and Python keeps an
    inherited "ignore": the command would then outlive Ctrl+C whatever it does itself."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


class Terminal:
    """One command running with a pty as its stdin, stdout and stderr, in its own session (process group)."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> None:
        self.argv = tuple(argv)
        self.started = time.monotonic()
        self._master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        try:
            self.proc = subprocess.Popen(
                self.argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=dict(env), start_new_session=True,
                preexec_fn=_signals_as_a_shell_leaves_them,
            )  # fmt: skip
        except BaseException:
            os.close(self._master)
            raise
        finally:
            os.close(slave)  # the child holds its copies: reading the master ends with EIO once they are all closed
        self._chunks: list[bytes] = []
        self._closed = False

    @property
    def output(self) -> str:
        """Everything shown so far, with the terminal's ``\\r\\n`` line ends back to ``\\n``."""
        return b"".join(self._chunks).decode("utf-8", "replace").replace("\r\n", "\n")

    def expect(self, text: str, timeout: float) -> None:
        """Read until ``text`` has been shown. Raises TimeoutError (and stops the command) if it does not come."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self._closed or not self._read_some(deadline):
                self.kill()
                raise TimeoutError(f"{text!r} not shown by {' '.join(self.argv)}; output:\n{self.output[-3000:]}")

    def interrupt(self) -> None:
        """What Ctrl+C at the terminal does: SIGINT to the command's process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def kill(self) -> None:
        """Stop the command and every process it started (its own session), then release the terminal."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._close()

    def wait(self, timeout: float) -> TerminalRun:
        """Read until the command exits and closes the terminal. Raises TimeoutError (after killing it) if late."""
        deadline = time.monotonic() + timeout
        while not self._closed:
            if not self._read_some(deadline):
                self.kill()
                raise TimeoutError(f"{' '.join(self.argv)} still running after {timeout} s:\n{self.output[-3000:]}")
        returncode = self.proc.wait()
        return TerminalRun(self.argv, returncode, self.output, time.monotonic() - self.started)

    def _read_some(self, deadline: float) -> bool:
        """Read what is there (waiting up to the deadline); False when the deadline passed."""
        while not self._closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([self._master], [], [], min(left, 1.0))
            if not ready:
                continue
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO: every holder of the terminal's other end has closed it
                data = b""
            if not data:
                self._close()
            self._chunks.append(data)
            return True
        return True

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._master)


def run_in_terminal(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float = 300) -> TerminalRun:
    """Run ``argv`` under a terminal until it exits. Raises TimeoutError (after stopping it) past ``timeout`` s."""
    return Terminal(argv, env=env, cwd=cwd).wait(timeout)
