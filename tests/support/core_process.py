"""Run ``python -m core`` (or ``-m desktop``) in a child process where torch cannot be imported
(tests/support/no_torch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO

NO_TORCH = REPO / "tests" / "support" / "no_torch"


def without_torch_env(library: Path, *, as_home: bool = False) -> dict[str, str]:
    """This process's environment with torch and the train extra blocked and the user data folder beside
    ``library``; ``as_home``: ``library`` is the default library (``PHOTOSEEK_HOME``), as for a user's plain command."""
    env = {k: v for k, v in os.environ.items() if k not in ("PHOTOSEEK_HOME", "PYTHONPATH")}
    env.update(
        {"PYTHONPATH": str(NO_TORCH), "XDG_DATA_HOME": str(library.parent / "xdg"), "QT_QPA_PLATFORM": "offscreen"}
    )
    if as_home:
        env["PHOTOSEEK_HOME"] = str(library)
    return env


def run_without_torch(
    *args: str, library: Path, timeout: float = 600, module: str = "core"
) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS --library LIBRARY`` with torch and the train extra blocked; output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args, "--library", str(library)],
        cwd=REPO,
        env=without_torch_env(library),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
