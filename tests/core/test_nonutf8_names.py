"""Photos whose file names are not valid UTF-8 (old Latin-1 names such as b"caf\\xe9.jpg" on Linux) are indexed,
searched, tagged, exported, moved and pruned like any other; only a real name that holds U+EF80..U+EFFF (the block
the index uses for raw bytes) is refused, with a recorded reason. Output stays valid UTF-8 and valid JSON."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import cli
from core.index_db import PhotoIndex, PhotoRecord
from core.library import Library
from core.metadata import PhotoMeta
from core.pathtext import UnstorablePathError, display, error_key, from_db, to_db
from core.thumbnails import ThumbnailCache
from core.xmp import read_subjects
from tests.photo_corpus import materialize
from tests.support.paths import REPO
from tests.support.waiting import wait_for

pytestmark = pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="file names there are always Unicode")


def raw_path(folder: Path | str, *names: bytes) -> str:
    """The str Python uses for a path whose name parts are raw bytes (lone surrogates for bytes that are not UTF-8)."""
    return os.fsdecode(os.path.join(os.fsencode(folder), *names))


def move_to(source: Path | str, target: str) -> str:
    """Rename through bytes paths, as an old tool writing Latin-1 names would."""
    os.rename(os.fsencode(source), os.fsencode(target))
    return target


def run_cli(*args: str, library: Path) -> tuple[int, str, str]:
    """cli.main with stdout and stderr as a strict UTF-8 terminal: any unprintable path raises UnicodeEncodeError."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    streams = (sys.stdout, sys.stderr)
    sys.stdout, sys.stderr = out, err
    try:
        code = cli.main([*args, "--library", str(library)])
    finally:
        sys.stdout, sys.stderr = streams
    out.flush()
    err.flush()
    return code, out.buffer.getvalue().decode("utf-8"), err.buffer.getvalue().decode("utf-8")


# --- the path <-> text mapping ------------------------------------------------------------------------


def test_every_undecodable_byte_round_trips_through_valid_utf8() -> None:
    for byte in range(0x80, 0x100):
        name = os.fsdecode(b"caf" + bytes([byte]) + b".jpg")
        assert name[3] == chr(0xDC00 + byte)  # what surrogateescape makes of it
        text = to_db(name)
        assert text[3] == chr(0xEF00 + byte)
        text.encode("utf-8")  # storable: raises on any lone surrogate
        assert from_db(text) == name and os.fsencode(from_db(text)) == b"caf" + bytes([byte]) + b".jpg"
    every = os.fsdecode(b"/photos/" + bytes(range(0x80, 0x100)) + b".jpg")
    assert from_db(to_db(every)) == every and len(to_db(every)) == len(every)


def test_ordinary_names_are_unchanged() -> None:
    for name in ("/home/ann/IMG_0001.JPG", "/fotos/Ünïcødé 東京.jpg", "/x/emoji 😀 ﬁ.png", "", "/a\\xe9.jpg"):
        assert to_db(name) == name and from_db(name) == name and display(name) == name and error_key(name) == name


def test_display_is_printable_and_names_the_bytes() -> None:
    name = os.fsdecode(b"/fotos/\xe9t\xe9/caf\xe9 na\xefve.jpg")
    shown = display(name)
    assert shown == "/fotos/\\xe9t\\xe9/caf\\xe9 na\\xefve.jpg"
    shown.encode("utf-8")
    assert display("/x/\ud800.jpg") == "/x/\\ud800.jpg"  # an unpaired half (Windows names) is named too


def test_a_real_name_in_the_mapped_block_is_refused_not_confused() -> None:
    real = "/fotos/caf\uefe9.jpg"  # valid UTF-8 on disk, but it would read back as the byte 0xE9
    with pytest.raises(UnstorablePathError, match="U\\+EF80..U\\+EFFF"):
        to_db(real)
    assert error_key(real) == display(real) == "/fotos/caf\\uefe9.jpg"
    assert to_db(error_key(real)) == error_key(real)
    with pytest.raises(UnstorablePathError, match="unpaired"):
        to_db("/x/\ud800.jpg")


def _record(path: str) -> PhotoRecord:
    return PhotoRecord(path, 100, 1, f"hash-{os.fsencode(path).hex()}", PhotoMeta(10, 10))


def test_index_keeps_real_paths_and_folder_prefixes(tmp_path: Path) -> None:
    latin = raw_path("/fotos", b"\xe9t\xe9")
    inside = [raw_path(latin, b"caf\xe9.jpg"), raw_path(latin, b"plage.jpg")]
    beside = [raw_path("/fotos", b"\xe9t\xe9 2", b"mer.jpg"), "/fotos/Ünïcødé 東京.jpg"]
    with PhotoIndex(tmp_path / "lib") as index:
        index.add_folders([latin, "/fotos"])
        ids = index.save_batch("m", [_record(p) for p in inside + beside], np.zeros((4, 2), np.float32))
        index.save_batch("m", [], np.zeros((0, 2), np.float32), [(raw_path(latin, b"bad\xff.jpg"), "broken", 1, 2)])
        assert set(index.file_states()) == set(inside + beside)
        assert index.folders() == [latin, "/fotos"]
        assert index.photo_id(inside[0]) == ids[0] and index.photo_info(inside[0]).path == inside[0]
        store = index.vector_snapshot("m", 2)
        assert index.paths_of(store.ids) == inside + beside
        assert index.errors() == [(raw_path(latin, b"bad\xff.jpg"), "broken")]
        moved = raw_path(latin, b"caf\xe8.jpg")
        index.move_photo(inside[0], moved, 100, 3)
        assert index.photo_id(moved) == ids[0] and index.photo_id(inside[0]) is None
        # Forgetting the folder takes its photos and errors, not those of "\xe9t\xe9 2" beside it.
        assert index.remove_folder(latin) == 2
        assert set(index.file_states()) == set(beside) and index.errors() == [] and index.folders() == ["/fotos"]
        assert index.remove_paths([beside[0], "/fotos/caf\uefe9.jpg"]) == 1


# --- end to end through the command line --------------------------------------------------------------


def test_latin1_named_photo_is_indexed_searched_tagged_moved_and_pruned(library: Path, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    written = materialize(folder, ["chelsea_cat", "coffee", "rocket_launch_pad"], max_side=480)
    cat = move_to(written["chelsea_cat"], raw_path(folder, b"caf\xe9.jpg"))
    os.mkdir(os.fsencode(raw_path(folder, b"\xe9t\xe9")))  # a Latin-1 folder name too
    coffee = move_to(written["coffee"], raw_path(folder, b"\xe9t\xe9", b"caf\xe9 cr\xe8me.jpg"))
    refused = move_to(written["rocket_launch_pad"], str(folder / "fus\uef80e.jpg"))

    with PhotoIndex(library) as index:  # what an older PhotoSeek recorded for the Latin-1 name: pruned, not kept
        legacy = (display(cat), "the file name is not valid UTF-8: rename the file to index it", None, None)
        index.save_batch("starter", [], np.zeros((0, 1), np.float32), [legacy])

    # `python -m core index` in a strict UTF-8 terminal: the refused name is reported readably, nothing crashes.
    env = {k: v for k, v in os.environ.items() if k != "PHOTOSEEK_HOME"}
    env.update(XDG_DATA_HOME=str(library.parent / "xdg"), PYTHONIOENCODING="utf-8:strict")
    done = subprocess.run(
        [sys.executable, "-m", "core", "index", str(folder), "--library", str(library)],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    text = done.stdout.decode("utf-8")
    assert "3 photos found: 2 indexed" in text and "1 unreadable" in text
    assert f"skipped {folder}/fus\\uef80e.jpg: " in text and "U+EF80..U+EFFF" in text

    with PhotoIndex(library) as index:
        assert set(index.file_states()) == {cat, coffee}
        photo_id = index.photo_id(cat)
        assert [path for path, _ in index.errors()] == [error_key(refused)]
    assert ThumbnailCache(library).path_for(cat).is_file()  # made from the indexing decode

    code, out, _ = run_cli("index", str(folder), "--json", library=library)
    again = json.loads(out)
    assert code == 0 and again["indexed"] == 0 and again["unchanged"] == 3 and again["failed"] == 0

    code, out, _ = run_cli("search", "a cat", "--json", library=library)
    hits = json.loads(out)
    assert code == 0 and hits[0]["path"] == display(cat) == f"{folder}/caf\\xe9.jpg"
    code, out, _ = run_cli("search", "a cat", library=library)
    assert code == 0 and out.splitlines()[0].endswith(f"  {folder}/caf\\xe9.jpg")
    latin_folder = raw_path(folder, b"\xe9t\xe9")
    code, out, _ = run_cli("search", f"in:{latin_folder} photo", "--json", library=library)
    assert code == 0 and [h["path"] for h in json.loads(out)] == [display(coffee)]

    assert run_cli("tags", cat, "--add", "holiday", library=library)[0] == 0
    code, out, _ = run_cli("tags", cat, "--json", library=library)
    assert code == 0 and {"tag": "holiday", "source": "user"}.items() <= json.loads(out)[0].items()
    code, _, err = run_cli("tags", refused, library=library)
    assert code == cli.EXIT_ERROR and "fus\\uef80e.jpg" in err and "rename the file" in err

    code, out, _ = run_cli("export-xmp", "--json", library=library)
    assert code == 0 and json.loads(out) == {"failed": []}
    assert "holiday" in read_subjects(Path(cat + ".xmp"))[0]

    code, out, _ = run_cli("errors", library=library)
    assert code == 0 and out.startswith(f"{folder}/fus\\uef80e.jpg: ") and "U+EF80" in out
    assert run_cli("stats", library=library)[0] == 0

    # Renamed to another Latin-1 name: a move (same id, tags kept, nothing re-encoded).
    renamed = move_to(cat, raw_path(folder, b"chat \xe0 la fen\xeatre.jpg"))
    code, out, _ = run_cli("index", str(folder), "--json", library=library)
    report = json.loads(out)
    assert code == 0 and report["moved"] == 1 and report["indexed"] == 0 and report["removed"] == 0
    with PhotoIndex(library) as index:
        assert index.photo_id(renamed) == photo_id and index.photo_id(cat) is None
    code, out, _ = run_cli("tags", renamed, "--json", library=library)
    assert code == 0 and "holiday" in [t["tag"] for t in json.loads(out)]

    # Deleted: pruned; the refused file gone too: its error goes with it.
    os.unlink(os.fsencode(renamed))
    os.unlink(refused)
    code, out, _ = run_cli("index", str(folder), "--json", library=library)
    assert code == 0 and json.loads(out)["removed"] == 1
    with PhotoIndex(library) as index:
        assert set(index.file_states()) == {coffee} and index.errors() == []


def test_watcher_indexes_a_new_latin1_named_photo(library: Path, tmp_path: Path) -> None:
    folder = tmp_path / "watched"
    materialize(folder, ["coffee"], max_side=320)
    spare = materialize(tmp_path / "spare", ["chelsea_cat"], max_side=320)["chelsea_cat"]
    lib = Library(library)
    lib.index([folder])
    new = raw_path(folder.resolve(), b"chat noir \xe9t\xe9.jpg")
    reports = []
    with lib.watcher(reports.append, debounce_s=0.3):
        shutil.copyfile(spare, os.fsencode(new))
        assert wait_for(lambda: any(r.indexed for r in reports))
        assert lib.search_engine().search("a cat")[0].path == new
        os.unlink(os.fsencode(new))

        def gone() -> bool:
            with lib.open_index() as index:
                return new not in index.file_states()

        assert wait_for(gone)


# --- the desktop grid ---------------------------------------------------------------------------------


def test_grid_shows_a_latin1_named_photo_with_its_thumbnail(qtbot, tmp_path: Path) -> None:
    from PySide6.QtCore import Qt, QUrl

    from desktop.file_actions import local_path
    from desktop.photo_grid import PhotoGridModel
    from desktop.sidebar import Sidebar
    from desktop.thumbnail_loader import ThumbnailLoader

    written = materialize(tmp_path / "photos", ["chelsea_cat"], max_side=300)["chelsea_cat"]
    photo = move_to(written, raw_path(tmp_path / "photos", b"caf\xe9.jpg"))
    cache = ThumbnailCache(tmp_path / "lib")
    loader = ThumbnailLoader(cache.get)
    model = PhotoGridModel(loader)
    model.set_photos([photo], [0.5])
    assert model.index(0).data(Qt.DisplayRole) == "caf\\xe9.jpg"
    assert model.index(0).data(Qt.ToolTipRole).startswith(display(photo))
    assert model.thumbnail(0) is None  # queues the load
    with qtbot.waitSignal(loader.ready, timeout=30_000) as ready:
        pass
    assert ready.args == [photo]  # the real path came back, so the row finds its thumbnail
    pixmap = model.thumbnail(0)
    assert pixmap is not None and not pixmap.isNull() and not loader.has_failed(photo)
    assert loader.wait_idle()

    class Folder:
        path, photo_count, exists = os.path.dirname(photo), 1, True

    sidebar = Sidebar()
    qtbot.addWidget(sidebar)
    sidebar.set_folders([Folder()], 1)
    assert sidebar.folder_row_text(Folder.path) == ("photos", "1")
    latin = raw_path(tmp_path, b"\xe9t\xe9")

    class LatinFolder:
        path, photo_count, exists = latin, 0, False

    sidebar.set_folders([Folder(), LatinFolder()], 1)
    assert sidebar.folder_row_text(latin) == ("\\xe9t\\xe9 (missing)", "0")
    with qtbot.waitSignal(sidebar.folder_chosen) as chosen:
        sidebar.folders.itemClicked.emit(sidebar.folders.item_for(latin), 0)
    assert chosen.args == [latin]

    # A file dropped from the file manager arrives as a percent-encoded URL: its bytes are kept.
    assert local_path(QUrl("file:///fotos/caf%E9.jpg")) == os.fsdecode(b"/fotos/caf\xe9.jpg")
    assert local_path(QUrl.fromLocalFile("/fotos/Ünïcødé 東京.jpg")) == "/fotos/Ünïcødé 東京.jpg"
