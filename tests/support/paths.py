"""Paths the tests share: the repository root, and the cache of test model packages under it."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "test-models"
