"""The memory-mapped embedding store: commits, deletions, compaction, power-loss repair, legacy conversion, and
search over it with filters and RAW twins answered from SQL."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import pytest

from core.encoders import ModelPackage
from core.index_db import PhotoIndex, PhotoRecord
from core.index_schema import MIGRATIONS
from core.metadata import PhotoMeta
from core.model_card import read_card
from core.query import SAMPLED_MEDIAN_MIN, parse_query
from core.scoring import MAX_TERMS, score_rows, score_terms, scoring_graph, terms_graph
from core.search import SearchEngine
from core.tagging import Tagger
from core.vector_store import COMPACT_MIN_DEAD

DIM = 16


def _unit(rng: np.random.Generator, rows: int, dim: int = DIM) -> np.ndarray:
    vectors = rng.standard_normal((rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _record(path: str, taken: str | None = None, camera: str | None = None) -> PhotoRecord:
    when = None if taken is None else datetime.fromisoformat(taken).replace(tzinfo=UTC).timestamp()
    return PhotoRecord(path, 100, 1, f"hash-{path}", PhotoMeta(10, 10, when, camera))


def _stored(index: PhotoIndex, model_id: str = "m") -> dict[str, np.ndarray]:
    """Live rows of a model's store by photo path."""
    store = index.vector_snapshot(model_id, DIM)
    rows = np.flatnonzero(store.live)
    return dict(zip(index.paths_of(store.ids[rows]), store.matrix[rows].astype(np.float32), strict=True))


def test_scoring_graphs_are_valid_onnx_and_exact() -> None:
    onnx.checker.check_model(onnx.load_from_string(scoring_graph()), full_check=True)
    onnx.checker.check_model(onnx.load_from_string(terms_graph(3)), full_check=True)
    rng = np.random.default_rng(0)
    rows = _unit(rng, 70_000, 24).astype(np.float16)  # more than one chunk
    queries = _unit(rng, MAX_TERMS + 1, 24)
    exact = rows.astype(np.float32) @ queries.T
    np.testing.assert_allclose(score_rows(rows, queries[:3]), exact[:, :3], atol=1e-6)
    assert score_rows(rows[:0], queries[:3]).shape == (0, 3)
    for terms in range(1, MAX_TERMS + 2):  # one product per term, then the matrix product past MAX_TERMS
        np.testing.assert_allclose(score_terms(rows, queries[:terms]), exact[:, :terms].T, atol=1e-6)
    assert np.array_equal(score_terms(rows, queries[0]), score_rows(rows, queries[0]).T)  # a plain query: same bits
    assert score_terms(rows[:0], queries[:2]).shape == (2, 0)


def test_a_negative_term_scores_as_numpy_does_with_and_without_dead_rows(tmp_path: Path, tiny_package_dir: Path):
    """A query with a negative term, on a store past the size where the median is bracketed by a sample, scores
    each photo as the float32 product does, demoted by its excess over the live photos' median."""
    model = ModelPackage(tiny_package_dir)
    rng = np.random.default_rng(9)
    count = SAMPLED_MEDIAN_MIN + 5_001
    paths = [f"/p/{i:06d}.jpg" for i in range(count)]
    query = parse_query("a dog on a beach -leash")
    positive, negative = (model.embed_texts([text], as_query=True)[0] for text in ("a dog on a beach", "leash"))
    with PhotoIndex(tmp_path) as index:
        key = index.vectors.key_for(model.card)
        index.save_batch(key, [_record(path) for path in paths], _unit(rng, count, model.dim))
        for dead in (False, True):
            if dead:
                index.remove_paths(paths[::3])
            snapshot = index.vector_snapshot(key, model.dim)
            assert snapshot.live.all() != dead
            matrix = snapshot.matrix.astype(np.float32)
            against = matrix @ negative
            excess = np.clip(against - np.median(against[snapshot.live]), 0.0, None)
            expected = np.where(snapshot.live, matrix @ positive - excess, -np.inf)
            np.testing.assert_allclose(SearchEngine(index, model).scores(query), expected, atol=1e-5)


def test_rows_count_only_once_their_batch_commits(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    first, lost, second = _unit(rng, 3), _unit(rng, 2), _unit(rng, 2)
    with PhotoIndex(tmp_path) as index:
        index.save_batch("m", [_record(f"/p/{i}.jpg") for i in range(3)], first)
        with pytest.raises(RuntimeError), index.transaction():  # a crash after the rows were written
            ids = [
                index.conn.execute(
                    "INSERT INTO photos(path, size, mtime_ns, added_at) VALUES (?, 1, 1, 0) RETURNING id",
                    (f"/lost/{i}.jpg",),
                ).fetchone()[0]
                for i in range(2)
            ]
            index.vectors.append("m", ids, lost)
            raise RuntimeError("killed")
        assert len(index.vector_snapshot("m", DIM)) == 3 and index.photo_count() == 3
        index.save_batch("m", [_record(f"/q/{i}.jpg") for i in range(2)], second)  # overwrites the dead tail
        stored = _stored(index)
    assert sorted(stored) == sorted([f"/p/{i}.jpg" for i in range(3)] + ["/q/0.jpg", "/q/1.jpg"])
    np.testing.assert_allclose(stored["/q/1.jpg"], second[1], atol=1e-3)
    np.testing.assert_allclose(stored["/p/2.jpg"], first[2], atol=1e-3)


def test_deleted_and_reembedded_photos_leave_dead_rows_until_compaction(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    count = COMPACT_MIN_DEAD * 2
    paths = [f"/photos/{i:05d}.jpg" for i in range(count)]
    vectors = _unit(rng, count)
    with PhotoIndex(tmp_path) as index:
        for start in range(0, count, 512):
            index.save_batch("m", [_record(p) for p in paths[start : start + 512]], vectors[start : start + 512])
        snapshot_before = index.vector_snapshot("m", DIM)
        gone = paths[: COMPACT_MIN_DEAD - 1]
        index.remove_paths(gone)
        changed = _unit(rng, 1)
        index.save_batch("m", [PhotoRecord(paths[-1], 200, 2, "new content", PhotoMeta(10, 10))], changed)
        assert index.vectors.needs_compaction("m")
        snapshot = index.vector_snapshot("m", DIM)
        assert len(snapshot) == count - len(gone) and len(snapshot.live) == count + 1
        index.vectors.compact("m")
        compacted = index.vector_snapshot("m", DIM)
        stored = _stored(index)
        assert not index.vectors.needs_compaction("m")
    assert len(compacted.live) == len(compacted) == count - len(gone) and compacted.live.all()
    assert sorted(p.name for p in (tmp_path / "vectors").iterdir()) == ["1-1.f16", "1-1.ids"]
    assert list(stored)[:2] == [paths[len(gone)], paths[len(gone) + 1]]  # row order kept
    np.testing.assert_allclose(stored[paths[-1]], changed[0], atol=1e-3)
    np.testing.assert_allclose(stored[paths[1500]], vectors[1500], atol=1e-3)
    # A snapshot taken before the compaction still reads its own rows.
    np.testing.assert_allclose(snapshot_before.vector(5), vectors[5], atol=1e-3)


def test_rows_lost_from_the_files_are_cut_back_and_embedded_again(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    with PhotoIndex(tmp_path) as index:
        index.save_batch("m", [_record(f"/p/{i}.jpg") for i in range(5)], _unit(rng, 5))
        matrix_file = tmp_path / "vectors" / "1-0.f16"
        with open(matrix_file, "r+b") as file:  # a power loss that kept the commit but not the last two rows
            file.truncate(3 * DIM * 2)
        snapshot = index.vector_snapshot("m", DIM)
        assert len(snapshot) == 3
        embedded = index.embedded_ids("m")
        ids = {index.photo_id(f"/p/{i}.jpg") for i in range(5)}
    assert len(embedded) == 3 and embedded < ids  # the other two get embedded by the next index run


def test_a_model_of_another_width_under_the_same_id_starts_over(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    with PhotoIndex(tmp_path) as index:
        index.save_batch("m", [_record("/p/a.jpg")], _unit(rng, 1))
        assert index.embedded_ids("m", 8) == set()  # a package now giving 8-d vectors must embed again
        with pytest.raises(Exception, match="index the library again"):
            index.vector_snapshot("m", 8)
        index.save_batch("m", [_record("/p/a.jpg")], _unit(rng, 1, 8))
        assert len(index.vector_snapshot("m", 8)) == 1 and index.embedded_ids("m", 8)


def test_schema_2_embeddings_are_moved_into_the_store(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    vectors = _unit(rng, 3)
    conn = sqlite3.connect(tmp_path / "index.sqlite3", isolation_level=None)
    for script in MIGRATIONS[:2]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 2")
    for i, vector in enumerate(vectors):
        conn.execute(
            "INSERT INTO photos(id, path, size, mtime_ns, added_at) VALUES (?, ?, 1, 1, 0)", (i + 1, f"/o/{i}")
        )
        conn.execute("INSERT INTO embeddings VALUES (?, 'old', ?)", (i + 1, vector.tobytes()))
    conn.close()
    with PhotoIndex(tmp_path) as index:
        assert index.schema_version == len(MIGRATIONS)
        stored = _stored(index, "old")
        tables = {r[0] for r in index.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        index.remove_paths(["/o/0"])  # the cascade from photos still reaches the new tables
        assert len(index.vector_snapshot("old", DIM)) == 2
    assert "legacy_embeddings" not in tables and "embeddings" not in tables
    for i in range(3):
        np.testing.assert_allclose(stored[f"/o/{i}"], vectors[i], atol=1e-3)


@pytest.fixture
def filtered_library(tmp_path: Path, tiny_package_dir: Path) -> tuple[Path, ModelPackage]:
    """Photos with dates, cameras, a tag and a RAW+JPEG pair, embedded with the tiny model's image space."""
    model = ModelPackage(tiny_package_dir)
    rng = np.random.default_rng(6)
    records = [
        _record("/photos/2021/beach.jpg", "2021-07-01T10:00:00", "Pixel 7"),
        _record("/photos/2021/IMG_1.JPG", "2021-08-01T10:00:00", "Canon EOS R"),
        _record("/photos/2021/IMG_1.CR2", "2021-08-01T10:00:00", "Canon EOS R"),
        _record("/photos/2022/lone.nef", "2022-01-05T10:00:00", "Nikon Z6"),
        _record("/photos/2022/snow.jpg", None, None),
        _record("/photos/2021-extra/x.jpg", "2021-02-01T10:00:00", "Pixel 7"),
    ]
    with PhotoIndex(tmp_path) as index:
        ids = index.save_batch(model.id, records, _unit(rng, len(records)))
        Tagger(index).set_user_tag("/photos/2021/beach.jpg", "holiday")
        Tagger(index).set_user_tag("/photos/2022/snow.jpg", "holiday")
        assert len(ids) == len(records)
    return tmp_path, model


def _names(hits: list) -> list[str]:
    return [Path(h.path).name for h in hits]


def test_filters_run_as_sql_and_raw_twins_answer_as_their_jpeg(filtered_library) -> None:
    library, model = filtered_library
    with PhotoIndex(library) as index:
        engine = SearchEngine(index, model)

    def names(query: str, **kwargs) -> set[str]:
        return set(_names(engine.run(parse_query(query), top=50, **kwargs)))

    assert names("in:/photos/2021") == {"beach.jpg", "IMG_1.JPG"}  # not /photos/2021-extra; the RAW twin folds in
    assert names("camera:canon") == {"IMG_1.JPG"}
    assert names("camera:pixel year:2021") == {"beach.jpg", "x.jpg"}
    assert names("tag:holiday") == {"beach.jpg", "snow.jpg"}
    assert names("after:2022-01") == {"lone.nef"}  # snow.jpg has no date taken: its file's date is 1970
    by_date = engine.run(parse_query("year:2021"), top=50)
    assert _names(by_date) == ["IMG_1.JPG", "beach.jpg", "x.jpg"]  # filters alone: newest first
    assert by_date[0].raw == "/photos/2021/IMG_1.CR2"
    ranked = engine.search("a photo", top=50)
    assert sorted(_names(ranked)) == sorted(["beach.jpg", "IMG_1.JPG", "lone.nef", "snow.jpg", "x.jpg"])
    assert [h.score for h in ranked] == sorted((h.score for h in ranked), reverse=True)
    assert len(engine.search("a photo", top=2)) == 2


def test_a_narrow_filter_scores_its_own_rows_as_the_whole_pass_would(
    tmp_path: Path, tiny_package_dir: Path, monkeypatch
) -> None:
    """Scoring only a filter's rows (read where they lie) ranks them exactly as the pass over every row does."""
    model = ModelPackage(tiny_package_dir)
    rng = np.random.default_rng(8)
    records = [_record(f"/p/{i:03d}.jpg", f"{2000 + i % 20}-06-01T10:00:00", "Pixel 7") for i in range(300)]
    with PhotoIndex(tmp_path) as index:
        key = index.vectors.key_for(model.card)
        index.save_batch(key, records, _unit(rng, len(records), model.dim))
        index.remove_paths(["/p/020.jpg", "/p/040.jpg"])  # dead rows inside the filter's range
        snapshot = index.vector_snapshot(key, model.dim)
        query = _unit(rng, 1, model.dim)
        some = np.array([299, 5, 40, 120, 7])
        expected = np.full(len(snapshot.live), -np.inf, np.float32)
        alive = some[snapshot.live[some]]
        expected[alive] = snapshot.matrix[alive].astype(np.float32) @ query[0]
        np.testing.assert_allclose(snapshot.scores_of(some, query)[0], expected, atol=1e-6)
        engine = SearchEngine(index, model)
    narrow = [(h.path, h.score) for h in engine.run(parse_query("a photo year:2000"), top=50)]
    monkeypatch.setattr("core.search.NARROW_FILTER_SHARE", 0.0)  # the whole pass
    whole = [(h.path, h.score) for h in engine.run(parse_query("a photo year:2000"), top=50)]
    assert narrow == whole and len(narrow) == 13  # 15 photos of 2000, two removed


def test_similar_leaves_out_the_photo_and_its_twins(filtered_library) -> None:
    library, model = filtered_library
    with PhotoIndex(library) as index:
        engine = SearchEngine(index, model)
    names = _names(engine.similar(Path("/photos/2021/IMG_1.CR2"), top=10))
    assert "IMG_1.JPG" not in names and "IMG_1.CR2" not in names and len(names) == 4


def test_dropping_a_model_forgets_its_embeddings_and_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    with PhotoIndex(tmp_path) as index:
        ids = index.save_batch("kept", [_record(f"/p/{i}.jpg") for i in range(3)], _unit(rng, 3))
        index.vectors.append("gone", ids, _unit(rng, 3))  # outside a transaction: autocommit, as a test shortcut
        index.vectors.drop("gone")
        assert index.vectors.counts() == {"kept": 3} and len(index.vector_snapshot("gone", DIM)) == 0
        assert index.embedded_ids("gone") == set() and len(index.vector_snapshot("kept", DIM)) == 3
    assert sorted(p.name for p in (tmp_path / "vectors").iterdir()) == ["1-0.f16", "1-0.ids"]


def _schema_3_store(
    conn: sqlite3.Connection, folder: Path, model_id: str, photo_ids: list[int], rows: np.ndarray
) -> None:
    """A store as schema 3 kept it: under the model's id, its rows in `<store>-0.f16` / `.ids`."""
    store_id = conn.execute(
        "INSERT INTO vector_stores(model_id, generation, rows, dim) VALUES (?, 0, ?, ?) RETURNING id",
        (model_id, len(rows), rows.shape[1]),
    ).fetchone()[0]
    folder.mkdir(exist_ok=True)
    rows.astype(np.float16).tofile(folder / f"{store_id}-0.f16")
    np.asarray(photo_ids, np.int64).tofile(folder / f"{store_id}-0.ids")
    conn.executemany(
        "INSERT INTO vectors(photo_id, store_id, row) VALUES (?, ?, ?)",
        [(pid, store_id, row) for row, pid in enumerate(photo_ids)],
    )


def test_schema_3_stores_are_adopted_under_their_image_key(tmp_path: Path, tiny_package_dir: Path) -> None:
    rng = np.random.default_rng(8)
    base = read_card(tiny_package_dir)
    words = dataclasses.replace(base, id="words")  # a text-only fine-tune: the same image side
    vectors = _unit(rng, 3)
    conn = sqlite3.connect(tmp_path / "index.sqlite3", isolation_level=None)
    for script in MIGRATIONS[:3]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 3")
    for i in range(3):
        conn.execute(
            "INSERT INTO photos(id, path, size, mtime_ns, added_at) VALUES (?, ?, 1, 1, 0)", (i + 1, f"/o/{i}")
        )
    _schema_3_store(conn, tmp_path / "vectors", "tiny", [1, 2, 3], vectors)
    _schema_3_store(conn, tmp_path / "vectors", "words", [1, 2], vectors[:2])  # embedded twice before sharing
    conn.close()

    with PhotoIndex(tmp_path) as index:
        assert index.schema_version == len(MIGRATIONS) == 5
        # Schema 5: the date index holds the camera too, so a date + camera filter never reads the table.
        assert [r[2] for r in index.conn.execute("PRAGMA index_info(photos_by_date)")] == [None, "camera"]
        assert index.vectors.counts() == {"tiny": 3, "words": 2}  # nothing adopted until a model is used

        # A kill mid-adoption (here: the re-keying refused) leaves the schema-3 store as it was.
        index.conn.set_authorizer(lambda action, *_: sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_UPDATE else 0)
        with pytest.raises(sqlite3.DatabaseError):
            index.vectors.key_for(base)
        index.conn.set_authorizer(None)
        assert index.vectors.counts() == {"tiny": 3, "words": 2}

        key = index.vectors.key_for(base)
        assert index.vectors.counts() == {key: 3, "words": 2}
        assert index.vectors.key_for(words) == key  # the smaller copy of the same embeddings goes
        assert index.vectors.counts() == {key: 3} and index.vectors.key_for(words) == key
        stored = _stored(index, key)
    for i in range(3):
        np.testing.assert_allclose(stored[f"/o/{i}"], vectors[i], atol=1e-3)
    assert sorted(p.name for p in (tmp_path / "vectors").iterdir()) == ["1-0.f16", "1-0.ids"]
