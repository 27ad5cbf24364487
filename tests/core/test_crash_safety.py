"""A killed indexer (SIGKILL at random moments) never corrupts the index, and reruns never re-encode a finished photo."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.index_db import PhotoIndex
from core.model_store import ModelStore
from tests.photo_corpus import available_photos, materialize
from tests.support.paths import REPO


def _consistent_state(library: Path) -> int:
    """Checks the database after a kill; returns how many photos are committed."""
    conn = sqlite3.connect(library / "index.sqlite3")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        photos = conn.execute("SELECT COUNT(*), COUNT(DISTINCT path) FROM photos").fetchone()
        assert photos[0] == photos[1]  # no duplicate paths
        per_photo = conn.execute(
            "SELECT COUNT(v.row) FROM photos p LEFT JOIN vectors v ON v.photo_id = p.id GROUP BY p.id"
        ).fetchall()
        assert all(count == 1 for (count,) in per_photo)  # each committed photo has exactly its one embedding
    finally:
        conn.close()
    # The embedding store opens and holds a unit row for every committed photo (rows past the commit are ignored).
    card = ModelStore(library).find("starter").card
    with PhotoIndex(library) as index:
        key = index.vectors.key_for(card)
        store = index.vector_snapshot(key, 384)
        live_ids = set(store.ids[store.live].tolist())
        assert live_ids == index.embedded_ids(key) and len(live_ids) == photos[0]
        np.testing.assert_allclose(np.linalg.norm(store.matrix[store.live].astype(np.float32), axis=1), 1.0, atol=2e-3)
    return photos[0]


def _committed_photos(library: Path) -> int:
    """Photos committed so far, read while the indexer may be writing (WAL lets a reader in)."""
    try:
        conn = sqlite3.connect(f"file:{library / 'index.sqlite3'}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return 0
    try:
        return conn.execute("SELECT COUNT(*) FROM photos").fetchone()[0]
    except sqlite3.Error:
        return 0  # not created or migrated yet
    finally:
        conn.close()


def _kill_at_a_random_moment(process: subprocess.Popen, library: Path, rng: random.Random, mid_batch: bool) -> bool:
    """SIGKILL the indexer either at a random moment of its start-up or just after a random commit.

    Returns False when it finished first. Waiting for a commit, rather than a fixed time, keeps the kills inside
    indexing on fast and slow machines alike.
    """
    if mid_batch:
        start = _committed_photos(library)
        deadline = time.monotonic() + 120
        while _committed_photos(library) == start and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
    else:
        time.sleep(rng.uniform(0.1, 1.5))
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(library: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    names = [p.name for p in available_photos()]
    for side in (640, 560, 480, 400, 320, 256):  # distinct files: every size is a different photo file
        materialize(folder / f"size{side}", names, max_side=side)
    total = sum(1 for _ in folder.rglob("*.jpg"))
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg"), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "core", "index", str(folder), "--library", str(library), "--batch-size", "2"]
    rng = random.Random(1234)

    committed = 0
    kills = 0
    for attempt in range(8):
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not _kill_at_a_random_moment(process, library, rng, mid_batch=attempt % 3 != 0):
            break  # it finished before this kill
        kills += 1
        if (library / "index.sqlite3").exists():
            now = _consistent_state(library)
            assert now >= committed  # committed batches stay committed
            committed = now
    assert kills >= 3, "the indexer finished before it could be killed three times"
    assert 0 < committed < total

    final = subprocess.run([*command, "--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    report = json.loads(final.stdout)
    assert _consistent_state(library) == total
    assert report["indexed"] == total - committed  # nothing finished before the kills was encoded again
    assert report["unchanged"] == committed


def test_two_processes_indexing_one_library_at_once(library: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    names = [p.name for p in available_photos()]
    materialize(folder / "a", names, max_side=480)
    materialize(folder / "b", names, max_side=360)
    total = sum(1 for _ in folder.rglob("*.jpg"))
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    command = [sys.executable, "-m", "core", "index", str(folder), "--library", str(library), "--batch-size", "4"]
    runs = [
        subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err.decode()
    assert _consistent_state(library) == total
