"""The MobileCLIP golden parity data, vendored in the repository (tests/data/golden, see its README.md).

Every test that reads golden data gets its files from ``golden_file``: a missing file fails the test with a clear
message, it never skips it, so CI cannot pass without the parity checks having run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.paths import REPO

GOLDEN_DIR = REPO / "tests" / "data" / "golden"


def golden_file(name: str) -> Path:
    """The path of golden file ``name`` (e.g. ``golden-S0.npz``); fails the calling test if it is missing."""
    path = GOLDEN_DIR / name
    if not path.is_file():
        pytest.fail(
            f"golden parity file missing: {path} (the golden data is part of the repository: tests/data/golden)",
            pytrace=False,
        )
    return path
