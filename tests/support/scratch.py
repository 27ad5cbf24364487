"""Scratch folders for module-scoped fixtures that write gigabytes (full-size MobileCLIP checkpoints and packages).

pytest keeps ``tmp_path_factory`` folders until the session ends; these are removed when their fixture ends, so a
run needs room for one such fixture at a time rather than all of them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def scratch_folder(factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    folder = factory.mktemp(name)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
