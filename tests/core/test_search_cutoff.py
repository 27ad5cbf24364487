"""The search cutoff at library scale: per-photo bank statistics cached beside the store and extended, and the CLI
stopping where the matches stop unless asked for the K best."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core import cli
from core.cutoff import bank_stats
from core.index_db import PhotoIndex, PhotoRecord
from core.metadata import PhotoMeta
from core.search_cutoff import SUFFIX, photo_bank_stats
from core.vector_store import STORE_DIR
from tests.photo_corpus import materialize

DIM = 16


def _unit(rng: np.random.Generator, rows: int) -> np.ndarray:
    vectors = rng.standard_normal((rows, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _save(index: PhotoIndex, start: int, vectors: np.ndarray) -> None:
    records = [PhotoRecord(f"/p/{start + i}.jpg", 1, 1, f"h{start + i}", PhotoMeta(1, 1)) for i in range(len(vectors))]
    index.save_batch("m", records, vectors)


def test_bank_statistics_are_cached_and_extended_for_new_photos(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    first, later, bank = _unit(rng, 40), _unit(rng, 25), _unit(rng, 30)
    folder = tmp_path / STORE_DIR
    with PhotoIndex(tmp_path) as index:
        _save(index, 0, first)
        stats = photo_bank_stats(folder, index.vectors.state("m"), index.vector_snapshot("m", DIM), bank)
        expected = bank_stats(first.astype(np.float16).astype(np.float32), bank)
        np.testing.assert_allclose(stats.mean, expected.mean, atol=1e-6)
        np.testing.assert_allclose(stats.std, expected.std, atol=1e-6)
        (cache,) = folder.glob(f"*{SUFFIX}")
        assert cache.stat().st_size == 40 * 2 * 4
        cache.write_bytes(np.full((40, 2), 7.0, np.float32).tobytes())  # proves the cached prefix is reused as is
        _save(index, 40, later)
        extended = photo_bank_stats(folder, index.vectors.state("m"), index.vector_snapshot("m", DIM), bank)
        assert len(extended.mean) == 65 and np.all(extended.mean[:40] == 7.0)
        tail = bank_stats(later.astype(np.float16).astype(np.float32), bank)
        np.testing.assert_allclose(extended.mean[40:], tail.mean, atol=1e-6)
        photo_bank_stats(folder, index.vectors.state("m"), index.vector_snapshot("m", DIM), bank[:20])  # new vocabulary
    assert len(list(folder.glob(f"*{SUFFIX}"))) == 1  # the old vocabulary's cache is gone


def test_cli_search_stops_where_the_matches_stop(library: Path, tmp_path: Path, capsys) -> None:
    photos = materialize(tmp_path / "photos")
    assert cli.main(["index", str(tmp_path / "photos"), "--library", str(library), "--json"]) == 0
    capsys.readouterr()

    def search(*args: str) -> list[str]:
        assert cli.main(["search", *args, "--library", str(library), "--json"]) == 0
        return [Path(hit["path"]).stem for hit in json.loads(capsys.readouterr().out)]

    cat = search("a cat")
    assert cat and cat[0] == "chelsea_cat" and len(cat) < len(photos)
    assert len(search("a cat", "--top", str(len(photos)))) == len(photos)  # --top K: the K best, whatever they score
    assert len(search("a submarine deep under the arctic ice")) < len(photos) / 2
