"""A sealed machine for acceptance runs: a fresh HOME, no network, a socket guard, commands under a terminal.

Every command runs as a child process the way a user runs it: ``python -m core ...`` under a pseudo-terminal
(tests/acceptance/terminal.py), with HOME and the XDG folders in a fresh temporary folder and, on Linux, inside
``unshare -rn`` (a user + network namespace with no interface up). A ``sitecustomize`` on PYTHONPATH records
every attempt to reach a non-local address from Python (sockets, name look-ups) and refuses it, so a library
that would phone home is caught even where the namespace would only have made it fail quietly.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.acceptance.terminal import Terminal, TerminalRun
from tests.support.paths import REPO

NET_LOG_ENV = "PHOTOSEEK_TEST_NET_LOG"
# Not passed on from the test run: the code under test must switch telemetry off itself, and no user setting counts.
INHERITED_SWITCHES = ("XDG_", "PHOTOSEEK_", "HF_", "ORT_", "TRANSFORMERS_", "DO_NOT_TRACK", "MPLCONFIGDIR", "TORCH")
# Nor the marks of a CI machine: onnxruntime sends no telemetry where it sees one (measured: CI=true), so with them
# the privacy checks would pass by accident in CI. A user's machine has none of them.
CI_MARKERS = frozenset(
    {
        "CI",
        "CONTINUOUS_INTEGRATION",
        "GITHUB_ACTIONS",
        "GITLAB_CI",
        "JENKINS_URL",
        "TF_BUILD",
        "APPVEYOR",
        "BITBUCKET_BUILD_NUMBER",
        "BUILDKITE",
        "CIRCLECI",
        "CODEBUILD_BUILD_ID",
        "TEAMCITY_VERSION",
        "TRAVIS",
    }
)

# Imported by every Python process of a sandbox run (it sits first on PYTHONPATH). Loopback and AF_UNIX are allowed
# (Qt, DBus, torch's local rendezvous); anything else is written to the log and refused.
SOCKET_GUARD = '''\
"""Test socket guard (tests/acceptance/sandbox.py): record and refuse every non-local network attempt."""
import ipaddress, json, os, socket, sys, traceback

_LOG = os.environ.get("PHOTOSEEK_TEST_NET_LOG")
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def _is_local(host):
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%")[0]
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: resolving it would ask DNS
    return address.is_loopback or address.is_unspecified


def _refuse(kind, target):
    entry = {"pid": os.getpid(), "argv": sys.argv, "kind": kind, "target": repr(target),
             "stack": traceback.format_stack(limit=12)[:-1]}
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\\n")
    raise OSError(f"network access refused by the PhotoSeek test guard: {kind} {target!r}")


def _check_address(sock, address, kind):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple) and not _is_local(address[0]):
        _refuse(kind, address)


_connect, _connect_ex, _sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto


def connect(self, address):
    _check_address(self, address, "connect")
    return _connect(self, address)


def connect_ex(self, address):
    _check_address(self, address, "connect_ex")
    return _connect_ex(self, address)


def sendto(self, data, *args):
    _check_address(self, args[-1], "sendto")
    return _sendto(self, data, *args)


_getaddrinfo, _create_connection = socket.getaddrinfo, socket.create_connection


def getaddrinfo(host, *args, **kwargs):
    if not _is_local(host):
        _refuse("getaddrinfo", host)
    return _getaddrinfo(host, *args, **kwargs)


def create_connection(address, *args, **kwargs):
    if not _is_local(address[0]):
        _refuse("create_connection", address)
    return _create_connection(address, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto = connect, connect_ex, sendto
socket.getaddrinfo, socket.create_connection = getaddrinfo, create_connection
'''


@functools.cache
def network_namespace_prefix() -> tuple[str, ...]:
    """``unshare -rn`` on Linux (required there: CI runs as root on Linux), nothing elsewhere."""
    if not sys.platform.startswith("linux"):
        return ()
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed to run commands without a network"
    probe = subprocess.run([unshare, "-rn", sys.executable, "-c", "print('ok')"], capture_output=True, text=True)
    assert probe.stdout.strip() == "ok", f"unshare -rn does not work here: {probe.stderr.strip()}"
    return (unshare, "-rn")


class Sandbox:
    """A fresh HOME (XDG folders inside it), a temporary folder and a socket guard, under one root folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.tmp = root / "tmp"
        self.guard = root / "guard"
        self.net_log = root / "network-attempts.jsonl"
        for folder in (self.home, self.tmp, self.guard):
            folder.mkdir(parents=True)
        (self.guard / "sitecustomize.py").write_text(SOCKET_GUARD, encoding="utf-8")

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a user with an empty HOME: this repository importable, no PhotoSeek settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED_SWITCHES) and k not in CI_MARKERS}
        env.update(
            HOME=str(self.home),
            XDG_DATA_HOME=str(self.home / ".local" / "share"),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            XDG_STATE_HOME=str(self.home / ".local" / "state"),
            TMPDIR=str(self.tmp),
            PYTHONPATH=os.pathsep.join([str(self.guard), str(REPO)]),
            PYTHONDONTWRITEBYTECODE="1",
            QT_QPA_PLATFORM="offscreen",
            OMP_NUM_THREADS="2",
            TERM="xterm-256color",
            COLUMNS="120",
            **{NET_LOG_ENV: str(self.net_log)},
        )
        env.update(extra)
        return env

    def start(self, *argv: str | Path, cwd: Path | None = None, **extra_env: str) -> Terminal:
        """Start ``argv`` (``python`` means this interpreter) under a terminal, with no network."""
        command = [sys.executable if a == "python" else str(a) for a in argv]
        return Terminal([*network_namespace_prefix(), *command], env=self.env(**extra_env), cwd=cwd or self.root)

    def run(self, *argv: str | Path, cwd: Path | None = None, timeout: float = 300, **extra_env: str) -> TerminalRun:
        """Run ``argv`` to its end (see ``start``)."""
        return self.start(*argv, cwd=cwd, **extra_env).wait(timeout)

    def python(self, *args: str | Path, cwd: Path | None = None, timeout: float = 300, **extra_env: str) -> TerminalRun:
        """``python ARGS...``: e.g. ``sandbox.python("-m", "core", "stats")``."""
        return self.run("python", *args, cwd=cwd, timeout=timeout, **extra_env)

    def network_attempts(self) -> list[dict]:
        """Every non-local network attempt recorded so far by the socket guard."""
        if not self.net_log.exists():
            return []
        return [json.loads(line) for line in self.net_log.read_text(encoding="utf-8").splitlines() if line]

    def home_files(self) -> list[str]:
        """Everything under HOME (files, links and folders), relative to it."""
        return sorted(str(p.relative_to(self.home)) for p in self.home.rglob("*"))


def library_with_starter(folder: Path, starter_package_dir: Path) -> Path:
    """A library folder with the cached starter package linked in (as tests/conftest.py's ``library`` does)."""
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "starter").symlink_to(starter_package_dir, target_is_directory=True)
    return folder


def expect_ok(run: TerminalRun, *texts: str) -> str:
    """Assert the command exited 0 and printed every one of ``texts``; returns its output."""
    assert run.returncode == 0, run.describe()
    for text in texts:
        assert text in run.output, f"{text!r} not in the output of:\n{run.describe()}"
    return run.output


def progress_draws(output: str, label: str) -> list[str]:
    """Every drawing of the tqdm bar named ``label``, in order; empty unless it redrew in place (``\\r``)."""
    if "\r" + label not in output:
        return []
    return [part.strip() for part in output.replace("\n", "\r").split("\r") if part.startswith(label)]


def assert_offline(sandbox: Sandbox) -> None:
    """No Python process run in the sandbox tried to reach the network (the socket guard's log is empty)."""
    attempts = sandbox.network_attempts()
    assert not attempts, "network attempts:\n" + "\n".join(json.dumps(a, indent=1) for a in attempts[:3])


def assert_home_holds_only(sandbox: Sandbox, *allowed: str) -> None:
    """Nothing was written under HOME except inside the ``allowed`` folders (and the folders leading to them)."""
    parents = {str(Path(a).parents[i]) for a in allowed for i in range(len(Path(a).parts) - 1)}
    extra = [
        f
        for f in sandbox.home_files()
        if f not in parents and not any(f == a or f.startswith(a + "/") for a in allowed)
    ]
    assert not extra, f"written under HOME besides {allowed}: {extra[:20]}"
