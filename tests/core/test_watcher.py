"""FolderWatcher against real files in temporary folders: every wait is a bounded poll."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.errors import LibraryError
from core.scanning import scan
from core.watcher import FolderWatcher

WAIT_S = 5.0
DEBOUNCE_S = 0.2


class Recorder:
    """Collects on_change calls (changed, deleted, monotonic time) from the watcher's thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[set[Path], set[Path], float]] = []
        self.threads: set[str] = set()
        self.cond = threading.Condition()

    def __call__(self, changed: set[Path], deleted: set[Path]) -> None:
        with self.cond:
            self.calls.append((set(changed), set(deleted), time.monotonic()))
            self.threads.add(threading.current_thread().name)
            self.cond.notify_all()

    @property
    def changed(self) -> set[Path]:
        return set().union(*(c for c, _, _ in self.calls))

    @property
    def deleted(self) -> set[Path]:
        return set().union(*(d for _, d, _ in self.calls))

    def wait_for(self, condition: Callable[[Recorder], bool], timeout: float = WAIT_S) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: condition(self), timeout):
                raise AssertionError(f"condition not met within {timeout} s; calls: {self.calls}")

    def settle(self, quiet: float = 3 * DEBOUNCE_S) -> None:
        """Wait until no call has arrived for `quiet` seconds (so a wrong extra call would be seen)."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            with self.cond:
                count = len(self.calls)
                self.cond.wait(quiet)
                if len(self.calls) == count:
                    return


def photo(path: Path, payload: bytes = b"\xff\xd8 not really a jpeg") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "Pictures"
    folder.mkdir()
    return folder.resolve()  # the watcher reports resolved paths


def test_new_photo_is_reported_once_from_the_watcher_thread(root: Path) -> None:
    rec = Recorder()
    with FolderWatcher([root], rec, debounce_s=DEBOUNCE_S):
        new = photo(root / "IMG_0001.JPG")
        rec.wait_for(lambda r: new in r.changed)
        rec.settle()
    assert [(c, d) for c, d, _ in rec.calls] == [({new}, set())]
    assert rec.threads == {"photoseek-watcher"}


def test_non_photos_and_hidden_files_are_ignored(root: Path) -> None:
    rec = Recorder()
    with FolderWatcher([root], rec, debounce_s=DEBOUNCE_S):
        (root / "notes.txt").write_text("x")
        photo(root / ".hidden.jpg")
        photo(root / ".thumbnails" / "t.png")
        photo(root / "trip" / ".cache" / "t.jpg")
        (root / "folder.jpg").mkdir()  # a folder with a photo's name is not a photo
        sentinel = photo(root / "trip" / "beach.webp")  # events arrive in order: the ignored ones came first
        rec.wait_for(lambda r: sentinel in r.changed)
        rec.settle()
    assert rec.changed == {sentinel}
    assert rec.deleted == set()


def test_files_without_extension_are_judged_like_the_scanner_does(root: Path) -> None:
    rec = Recorder()
    with FolderWatcher([root], rec, debounce_s=DEBOUNCE_S):
        jpeg_bytes = photo(root / "export_0001", b"\xff\xd8\xff\xe0" + os.urandom(64))
        text = root / "README"
        text.write_text("not a picture")
        sentinel = photo(root / "z.jpg")
        rec.wait_for(lambda r: sentinel in r.changed)
        rec.settle()
    scanner_says = {Path(p.path) for p in scan([jpeg_bytes, text])}
    assert rec.changed == scanner_says | {sentinel}


def test_modified_photo(root: Path) -> None:
    existing = photo(root / "a.png")
    rec = Recorder()
    with FolderWatcher([root], rec, debounce_s=DEBOUNCE_S):
        with existing.open("ab") as f:
            f.write(b"more pixels")
        rec.wait_for(lambda r: r.calls)
    assert rec.changed == {existing} and rec.deleted == set()


def test_rename_is_deleted_old_plus_changed_new(root: Path) -> None:
    old = photo(root / "a.jpg")
    new = root / "sub" / "b.jpg"
    new.parent.mkdir()
    rec = Recorder()
    with FolderWatcher([root], rec, debounce_s=DEBOUNCE_S):
        old.rename(new)
        rec.wait_for(lambda r: old in r.deleted and new in r.changed)
        rec.settle()
    assert rec.changed == {new} and rec.deleted == {old}


def test_editor_saves_through_temp_file_and_rename(root: Path) -> None:
    target = photo(root / "edit.jpg", b"version 1")
    rec = Recorder()
    with FolderWatcher([root], rec, debounce_s=DEBOUNCE_S):
        # Atomic save: write a temporary file beside the photo, then rename it over the photo.
        temp = root / ".edit.jpg.tmp-4821"
        temp.write_bytes(b"version 2")
        os.replace(temp, target)
        # Backup-style save: move the original aside, write a new file under the old name.
        target.rename(root / "edit.jpg~")
        target.write_bytes(b"version 3")
        rec.wait_for(lambda r: r.calls)
        rec.settle()
    assert [(c, d) for c, d, _ in rec.calls] == [({target}, set())]
    assert target.read_bytes() == b"version 3"


def test_deleted_photo(root: Path) -> None:
    doomed = photo(root / "a.tif")
    keep = photo(root / "b.tif")
    rec = Recorder()
    with FolderWatcher([root], rec, debounce_s=DEBOUNCE_S):
        doomed.unlink()
        rec.wait_for(lambda r: r.calls)
    assert rec.deleted == {doomed} and rec.changed == set()
    assert keep.exists()


def test_created_then_deleted_in_one_burst_is_not_reported_as_changed(root: Path) -> None:
    rec = Recorder()
    with FolderWatcher([root], rec, debounce_s=DEBOUNCE_S):
        short_lived = photo(root / "partial.jpg")
        short_lived.unlink()
        sentinel = photo(root / "final.jpg")
        rec.wait_for(lambda r: sentinel in r.changed)
        rec.settle()
    assert rec.changed == {sentinel}
    assert rec.deleted <= {short_lived}  # harmless either way: the index never had it


def test_burst_of_50_files_becomes_one_or_two_calls(root: Path) -> None:
    rec = Recorder()
    with FolderWatcher([root], rec, debounce_s=DEBOUNCE_S):
        expected = {photo(root / "DCIM" / f"IMG_{i:04d}.JPG", os.urandom(2048)) for i in range(50)}
        rec.wait_for(lambda r: r.changed >= expected)
        rec.settle()
    assert rec.changed == expected and rec.deleted == set()
    assert len(rec.calls) <= 2


def test_debounce_waits_for_a_quiet_period_not_a_fixed_window(root: Path) -> None:
    rec = Recorder()
    with FolderWatcher([root], rec, debounce_s=0.5, max_delay_s=30):
        expected = set()
        for i in range(12):  # 12 files 0.05 s apart: ~0.6 s of activity (> debounce), never quiet for 0.5 s
            expected.add(photo(root / f"{i}.png"))
            time.sleep(0.05)
        rec.wait_for(lambda r: r.changed >= expected)
    assert len(rec.calls) == 1


def test_max_delay_flushes_during_a_long_stream(root: Path) -> None:
    rec = Recorder()
    with FolderWatcher([root], rec, debounce_s=0.3, max_delay_s=0.6):
        expected = set()
        for i in range(15):  # 1.5 s of steady writes, never quiet for 0.3 s
            expected.add(photo(root / f"{i}.png"))
            time.sleep(0.1)
        stream_end = time.monotonic()
        rec.wait_for(lambda r: r.changed >= expected)
    assert rec.calls[0][2] < stream_end, "no batch was delivered while events kept coming"
    assert len(rec.calls) >= 2


def _moved_away(root: Path, folder: Path) -> Path:
    """Move a folder out of the watched root (as a file manager's trash does) and return where it went."""
    trash = root.parent / "Trash"
    trash.mkdir(exist_ok=True)
    return Path(shutil.move(folder, trash / folder.name))


def test_folder_moved_out_reports_known_photos_with_a_lookup(root: Path) -> None:
    album = root / "2023" / "album"
    inside = {photo(album / f"{i}.jpg") for i in range(3)} | {photo(album / "deeper" / "x.png")}
    outside = photo(root / "keep.jpg")
    index = {str(p) for p in inside | {outside}}  # what the photo index knows

    def known_under(folder: Path) -> list[str]:
        prefix = str(folder) + os.sep
        return [p for p in index if p.startswith(prefix)]

    rec = Recorder()
    with FolderWatcher([root], rec, debounce_s=DEBOUNCE_S, known_under=known_under):
        _moved_away(root, root / "2023")
        rec.wait_for(lambda r: r.deleted >= inside)
        rec.settle()
    assert rec.deleted == inside and rec.changed == set()


def test_folder_moved_out_reports_the_folder_without_a_lookup(root: Path) -> None:
    album = root / "album"
    photo(album / "a.jpg")
    rec = Recorder()
    with FolderWatcher([root], rec, debounce_s=DEBOUNCE_S):
        _moved_away(root, album)
        rec.wait_for(lambda r: album in r.deleted)
        rec.settle()
    assert album in rec.deleted and rec.changed == set()
    assert rec.deleted <= {album, album / "a.jpg"}


def test_folder_moved_in_reports_its_photos(root: Path, tmp_path: Path) -> None:
    incoming = tmp_path / "Downloads" / "trip"
    wanted = {photo(incoming / "a.jpg"), photo(incoming / "day2" / "b.heic.png")}
    photo(incoming / ".secret.jpg")
    (incoming / "readme.txt").write_text("x")
    rec = Recorder()
    with FolderWatcher([root], rec, debounce_s=DEBOUNCE_S):
        shutil.move(incoming, root / "trip")
        expected = {root / "trip" / p.relative_to(incoming) for p in wanted}
        rec.wait_for(lambda r: r.changed >= expected)
        rec.settle()
    assert rec.changed == expected and rec.deleted == set()


def test_stop_delivers_the_pending_batch(root: Path) -> None:
    rec = Recorder()
    watcher = FolderWatcher([root], rec, debounce_s=60)
    watcher.start()
    try:
        new = photo(root / "late.jpg")
        deadline = time.monotonic() + WAIT_S
        while not watcher.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watcher.pending
        assert rec.calls == []
    finally:
        started = time.monotonic()
        watcher.stop()
    assert time.monotonic() - started < 2.0  # did not sit out the 60 s debounce
    assert [(c, d) for c, d, _ in rec.calls] == [({new}, set())]
    assert not watcher.pending


def test_a_failing_callback_is_reported_and_watching_goes_on(root: Path) -> None:
    errors: list[BaseException] = []
    rec = Recorder()

    def on_change(changed: set[Path], deleted: set[Path]) -> None:
        rec(changed, deleted)
        if len(rec.calls) == 1:
            raise RuntimeError("index is busy")

    with FolderWatcher([root], on_change, debounce_s=DEBOUNCE_S, on_error=errors.append):
        first = photo(root / "1.jpg")
        rec.wait_for(lambda r: first in r.changed)
        second = photo(root / "2.jpg")
        rec.wait_for(lambda r: second in r.changed)
    assert [str(e) for e in errors] == ["index is busy"]


def test_roots_are_resolved_deduplicated_and_may_be_single_files(root: Path, tmp_path: Path) -> None:
    nested = root / "2023"
    nested.mkdir()
    elsewhere = tmp_path / "Desktop"
    single = photo(elsewhere / "wallpaper.png")
    sibling = photo(elsewhere / "screenshot.png")
    rec = Recorder()
    with FolderWatcher([root, nested, single, root / ".." / "Pictures"], rec, debounce_s=DEBOUNCE_S) as watcher:
        assert watcher.roots == [root, single.resolve()]
        with sibling.open("ab") as f:
            f.write(b"!")  # beside the single-file root, but not part of the library
        with single.open("ab") as f:
            f.write(b"!")
        in_nested = photo(nested / "n.jpg")
        rec.wait_for(lambda r: r.changed >= {single.resolve(), in_nested})
        rec.settle()
    assert rec.changed == {single.resolve(), in_nested}


def test_missing_root_is_a_library_error(tmp_path: Path) -> None:
    with pytest.raises(LibraryError, match="no such file or folder"):
        FolderWatcher([tmp_path / "nope"], lambda c, d: None)


def test_start_twice_is_refused_and_restart_after_stop_works(root: Path) -> None:
    rec = Recorder()
    watcher = FolderWatcher([root], rec, debounce_s=DEBOUNCE_S)
    watcher.start()
    with pytest.raises(RuntimeError):
        watcher.start()
    watcher.stop()
    watcher.stop()  # idempotent
    with watcher:
        new = photo(root / "again.jpg")
        rec.wait_for(lambda r: new in r.changed)
