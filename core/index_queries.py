"""Read-side index queries for search, each one SQL statement over indexed columns: filters as embedding rows,
facts of the hits shown, and the other files of a shot. Nothing here walks every photo in Python."""

from __future__ import annotations

import calendar
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from core.index_db import PhotoIndex
from core.pathtext import from_db, path_range, to_db
from core.query import ParsedQuery
from core.raw import RAW_EXTENSIONS
from core.tagging import clean_tag

PHOTO_DATE = "COALESCE(p.taken_at, p.mtime_ns / 1e9)"  # when it was taken, else the file's date
IN_CHUNK = 500  # ids per `IN (...)`, well under SQLite's variable limit


@dataclass(frozen=True)
class PhotoFacts:
    """What a search hit shows about its photo."""

    path: str
    taken_at: float  # when it was taken, else the file's modification time (epoch seconds)


def _epoch(day: date) -> float:
    return float(calendar.timegm(day.timetuple()))


def filter_rows(index: PhotoIndex, store_id: int, query: ParsedQuery, *, newest_first: bool = False) -> np.ndarray:
    """Rows of a model's store whose photos pass the query's folder, date, camera and tag filters (newest photo
    first if asked)."""
    where, params = ["v.store_id = ?"], [store_id]
    if query.folder is not None:
        where.append("p.path >= ? AND p.path < ?")
        params.extend(path_range(str(query.folder)))
    if query.date_from is not None:
        where.append(f"{PHOTO_DATE} >= ?")
        params.append(_epoch(query.date_from))
    if query.date_to is not None:
        where.append(f"{PHOTO_DATE} < ?")
        params.append(_epoch(query.date_to))
    if query.camera is not None:
        cameras = matching_cameras(index, query.camera)
        if not cameras:
            return np.zeros(0, np.int64)
        where.append(f"p.camera IN ({','.join('?' * len(cameras))})")
        params.extend(cameras)
    for tag in query.tags:
        where.append("p.id IN (SELECT photo_id FROM tags WHERE tag = ? AND state != 'rejected')")
        params.append(clean_tag(tag))
    # With a date range and a camera, the date index (which holds the camera) answers both without a table lookup;
    # SQLite alone would pick the camera index and look up every photo of that camera.
    both = query.camera is not None and (query.date_from is not None or query.date_to is not None)
    photos = "photos p INDEXED BY photos_by_date" if both else "photos p"
    sql = f"SELECT v.row FROM vectors v JOIN {photos} ON p.id = v.photo_id WHERE {' AND '.join(where)}"
    if newest_first:
        sql += f" ORDER BY {PHOTO_DATE} DESC, p.id"
    return np.fromiter((r[0] for r in index.conn.execute(sql, params)), np.int64)


def matching_cameras(index: PhotoIndex, needle: str) -> list[str]:
    """The library's camera names that contain `needle`, ignoring case (a few dozen names, read from their index)."""
    names = [r[0] for r in index.conn.execute("SELECT DISTINCT camera FROM photos WHERE camera IS NOT NULL")]
    return [name for name in names if needle.lower() in name.lower()]


def photos_under(index: PhotoIndex, folder: str) -> int:
    """How many indexed photos lie under a folder (a range count on the path index)."""
    low, high = path_range(folder)
    return index.conn.execute("SELECT COUNT(*) FROM photos WHERE path >= ? AND path < ?", (low, high)).fetchone()[0]


def newest_first_ids(index: PhotoIndex) -> tuple[np.ndarray, int]:
    """Every photo's id, newest first (date taken, else file date; among equal dates the last added first), with
    the RAW files whose rendered twin is indexed left out (browsing shows such a shot as its JPEG, as search does);
    and the highest photo id, read in the same snapshot, to ask for what is new later."""
    walk = f"SELECT id FROM photos INDEXED BY photos_by_date ORDER BY {PHOTO_DATE.replace('p.', '')} DESC"
    index.conn.execute("BEGIN")  # one read snapshot: photos indexed meanwhile are all after the id returned
    try:
        ids = np.fromiter((r[0] for r in index.conn.execute(walk)), np.int64)
        last_id = index.conn.execute("SELECT COALESCE(MAX(id), 0) FROM photos").fetchone()[0]
        hidden = _hidden_raws(index)
    finally:
        index.conn.execute("COMMIT")
    return (ids[~np.isin(ids, hidden)] if hidden else ids), last_id


def _hidden_raws(index: PhotoIndex) -> list[int]:
    """Ids of the RAW files whose rendered twin (JPEG, HEIC...) is indexed."""
    # A test of each row's last few characters finds the few RAW files to look at closely.
    tests, params = [], []
    for length in sorted({len(ext) for ext in RAW_EXTENSIONS}):
        endings = sorted(ext for ext in RAW_EXTENSIONS if len(ext) == length)
        tests.append(f"lower(CAST(substr(path, -{length}) AS TEXT)) IN ({','.join('?' * len(endings))})")
        params.extend(endings)
    raws = index.conn.execute(f"SELECT id, path FROM photos WHERE {' OR '.join(tests)}", params).fetchall()
    paths = {from_db(path): pid for pid, path in raws}
    return [paths[path] for path, shot in shots_of(index, list(paths)).items() if shot.hidden]


def photo_facts(index: PhotoIndex, ids: Sequence[int]) -> dict[int, PhotoFacts]:
    """Path and date of photos by id (ids no longer in the index are left out)."""
    facts: dict[int, PhotoFacts] = {}
    ids = [int(i) for i in ids]
    for start in range(0, len(ids), IN_CHUNK):
        part = ids[start : start + IN_CHUNK]
        sql = f"SELECT p.id, p.path, {PHOTO_DATE} FROM photos p WHERE p.id IN ({','.join('?' * len(part))})"
        facts.update((pid, PhotoFacts(from_db(path), float(when))) for pid, path, when in index.conn.execute(sql, part))
    return facts


@dataclass(frozen=True)
class Shot:
    """How a photo stands with the other files of its shot (same folder, same name, other extension)."""

    hidden: bool  # a camera RAW whose rendered twin (JPEG, HEIC...) answers for the shot
    raw: str | None  # for a rendered photo, the RAW file shot with it
    twins: tuple[str, ...]  # every other file of the shot


def is_raw(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in RAW_EXTENSIONS


def _without_extension(path: str) -> str:
    return path[: len(path) - len(os.path.splitext(path)[1])]


def shots_of(index: PhotoIndex, paths: Sequence[str]) -> dict[str, Shot]:
    """How each photo stands with the other files of its shot, for a page of hits in one statement per chunk: a
    RAW+JPEG pair is one shot, and search answers with the JPEG, which names its RAW."""
    bases = {path: _without_extension(path) for path in paths}
    found: dict[str, list[str]] = {base: [] for base in bases.values()}
    unique = list(found)
    for start in range(0, len(unique), IN_CHUNK // 2):
        part = unique[start : start + IN_CHUNK // 2]
        # Every file named base.<ext> sorts between "base." and "base/" ('/' follows '.'): one path-index range each.
        ranges = ",".join(["(?, ?, ?)"] * len(part))
        bounds = [value for i, base in enumerate(part) for value in (i, to_db(base + "."), to_db(base + "/"))]
        sql = (
            f"WITH shot(i, low, high) AS (VALUES {ranges}) "
            "SELECT shot.i, p.path FROM shot JOIN photos p ON p.path >= shot.low AND p.path < shot.high"
        )
        for i, stored in index.conn.execute(sql, bounds):
            found[part[i]].append(from_db(stored))
    return {path: _shot(path, base, found[base]) for path, base in bases.items()}


def shot_of(index: PhotoIndex, path: str) -> Shot:
    return shots_of(index, [path])[path]


def _shot(path: str, base: str, files: list[str]) -> Shot:
    twins = [other for other in files if other != path and _without_extension(other) == base]
    raws = [t for t in twins if is_raw(t)]
    if is_raw(path):
        return Shot(any(not is_raw(t) for t in twins), None, tuple(twins))
    return Shot(False, raws[0] if raws else None, tuple(twins))
