"""Fixtures of the acceptance tests: a sealed sandbox per test, or one per module (see sandbox.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.sandbox import Sandbox


@pytest.fixture()
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "sandbox")


@pytest.fixture(scope="module")
def module_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    return Sandbox(tmp_path_factory.mktemp("sandbox"))
