"""Incomplete-folder marks (core.incomplete_folders): what a run leaves when it stops, dies or finishes, kept
in the library's incomplete.json without touching the index schema (real SQLite index, real photos)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from core.incomplete_folders import MARKS_FILE, IncompleteFolder, IncompleteFolders, count_left
from core.index_db import PhotoIndex
from tests.photo_corpus import materialize
from tests.support.paths import REPO

DIED_MID_RUN = """
import sys
from core.incomplete_folders import IncompleteFolders
IncompleteFolders(sys.argv[1]).begin([sys.argv[2]])
"""  # a process that started a run and ended without finishing it (as a kill would leave things)


def test_a_stopped_run_is_listed_until_a_run_finishes_it(tmp_path: Path) -> None:
    marks = IncompleteFolders(tmp_path)
    marks.begin(["/photos/a", "/photos/b"])
    assert marks.read() == []  # being indexed for the first time is not "incomplete" yet
    marks.stop(["/photos/a", "/photos/b"])
    assert marks.read() == [IncompleteFolder("/photos/a", None, False), IncompleteFolder("/photos/b", None, False)]
    marks.finish(["/photos/a"])
    assert [folder.path for folder in marks.read()] == ["/photos/b"]
    assert json.loads((tmp_path / MARKS_FILE).read_text())["folders"].keys() == {"/photos/b"}
    marks.finish(["/photos/b"])
    assert not (tmp_path / MARKS_FILE).exists()  # nothing unfinished, no file


def test_a_mark_left_by_a_process_that_died_counts_as_incomplete_with_the_photos_left(tmp_path: Path) -> None:
    photos = materialize(tmp_path / "photos", ["coffee", "astronaut", "chelsea_cat"], max_side=128)
    folder = str(next(iter(photos.values())).parent.resolve())
    library = tmp_path / "library"
    with PhotoIndex(library) as index:
        index.add_folders([folder])
    done = subprocess.run([sys.executable, "-c", DIED_MID_RUN, str(library), folder], cwd=REPO, check=False)
    assert done.returncode == 0
    marks = IncompleteFolders(library)
    assert marks.read() == [IncompleteFolder(folder, None, False)]  # not ours: nobody is running it
    assert marks.count_missing("starter") == [IncompleteFolder(folder, 3, False)]
    assert count_left(library, "starter", [folder]) == {folder: 3}


def test_a_resumed_run_keeps_the_count_until_it_finishes(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    materialize(folder, ["coffee"], max_side=128)
    marks = IncompleteFolders(tmp_path / "library")
    marks.stop([str(folder)])
    assert marks.count_missing("starter") == [IncompleteFolder(str(folder), 1, False)]
    marks.begin([str(folder)])
    assert marks.read() == [IncompleteFolder(str(folder), 1, True)]
    marks.finish([str(folder)])
    assert marks.read() == []


def test_names_that_are_not_utf8_round_trip_and_a_damaged_file_marks_nothing(tmp_path: Path) -> None:
    name = "/photos/caf\udce9"  # a Latin-1 byte as Python holds it (surrogate escape)
    marks = IncompleteFolders(tmp_path)
    marks.stop([name])
    assert [folder.path for folder in marks.read()] == [name]
    (tmp_path / MARKS_FILE).write_text('{"folders": [1, 2', encoding="ascii")
    assert marks.read() == []
    marks.stop(["/photos/x"])  # and it is replaced whole by the next write
    assert [folder.path for folder in marks.read()] == ["/photos/x"]
