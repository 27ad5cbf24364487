"""Indexing a folder of hostile and odd files beside good photos: every good photo lands, every bad file gets
a reason, nothing stops the run."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import cli
from core.index_db import PhotoIndex
from core.pathtext import display
from tests.photo_corpus import load_photo, materialize


def _png_header_only(path: Path, width: int, height: int) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


def _build_corpus(folder: Path) -> tuple[set[str], dict[str, str]]:
    """Writes good and bad files; returns (good file names, bad file name -> expected reason fragment)."""
    folder.mkdir()
    good = {p.name for p in materialize(folder, ["chelsea_cat", "coffee", "rocket_launch_pad"]).values()}
    cat = load_photo("chelsea_cat")
    (folder / "sub").mkdir()

    deep = (np.asarray(cat.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(deep).save(folder / "sixteen_bit.png")
    cat.convert("CMYK").save(folder / "cmyk.jpg")
    palette = cat.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.info["transparency"] = 0
    palette.save(folder / "palette_alpha.png", transparency=0)
    frames = [load_photo(n).resize((120, 90)) for n in ("chelsea_cat", "coffee")]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    exif = Image.Exif()
    exif[0x0112] = 6
    cat.save(folder / "sub" / "rotated.jpg", exif=exif)
    cat.resize((1, 1)).save(folder / "one_pixel.png")
    Image.fromarray(np.tile(np.asarray(cat.resize((100, 100))), (1, 200, 1))).save(folder / "panorama.jpg")
    unreadable = folder / "no_permission.jpg"
    cat.save(unreadable)
    unreadable.chmod(0)
    good |= {"sixteen_bit.png", "cmyk.jpg", "palette_alpha.png", "animated.gif", "rotated.jpg", "one_pixel.png"}
    good |= {"panorama.jpg"}

    bad = {"zero.jpg": "not a readable image", "random.jpg": "not a readable image", "text.png": "not a readable image"}
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "random.jpg").write_bytes(np.random.default_rng(0).bytes(5000))
    (folder / "text.png").write_text("this is not a picture\n")
    truncated = (folder / "coffee.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(truncated[: len(truncated) // 3])
    bad["truncated.jpg"] = "not a readable image"
    _png_header_only(folder / "huge.png", 100_000, 100_000)
    bad["huge.png"] = "too large"
    (folder / "broken_link.jpg").symlink_to(folder / "does_not_exist.jpg")
    bad["broken_link.jpg"] = "broken symbolic link"
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    bad["loop.jpg"] = "symbolic link loop"
    (folder / "sub" / "back_up").symlink_to(folder, target_is_directory=True)  # a directory loop
    (folder / "folder.jpg").mkdir()  # a directory that looks like a photo
    cat.save(os.fsdecode(os.fsencode(folder) + b"/caf\xe9.jpg"))  # a Latin-1 name: not UTF-8, indexed all the same
    good.add(os.fsdecode(b"caf\xe9.jpg"))
    cat.save(folder / "fus\uef80e.jpg")  # a real name in the block the index keeps for raw bytes: refused
    bad["fus\\uef80e.jpg"] = "U+EF80..U+EFFF"
    (folder / os.fsdecode(b"cass\xe9.jpg")).write_bytes(b"\xff\xd8 broken")  # broken and not UTF-8: a reason
    bad[os.fsdecode(b"cass\xe9.jpg")] = "not a readable image"
    (folder / "deleted_during_run.jpg").write_bytes((folder / "coffee.jpg").read_bytes())
    bad["deleted_during_run.jpg"] = "file not found"
    if os.geteuid() == 0:
        pass  # root reads any file: the photo without permissions is simply indexed
    else:
        good.discard("no_permission.jpg")
        bad["no_permission.jpg"] = "permission denied"
    if os.geteuid() == 0:
        good.add("no_permission.jpg")
    return good, bad


def test_bad_inputs_are_reported_and_good_photos_indexed(
    library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "mixed"
    good, bad = _build_corpus(folder)

    # Delete one file after the scan listed it but before it is decoded.
    from core import indexer

    real_scan = indexer.scan

    def scan_then_delete(roots):
        found = list(real_scan(roots))
        (folder / "deleted_during_run.jpg").unlink()
        return found

    monkeypatch.setattr(indexer, "scan", scan_then_delete)
    assert cli.main(["index", str(folder), "--library", str(library), "--json", "--batch-size", "4"]) == 0
    report = json.loads(capsys.readouterr().out)

    with PhotoIndex(library) as index:
        indexed = {Path(p).name for p in index.file_states()}
        errors = {Path(p).name: reason for p, reason in index.errors()}
    assert indexed == good
    assert set(errors) == set(bad), (errors, bad)
    for name, fragment in bad.items():
        assert fragment in errors[name], (name, errors[name])
    assert report["indexed"] == len(good) and report["failed"] == len(bad)

    # A second run retries nothing that is unchanged and reports the same errors.
    monkeypatch.setattr(indexer, "scan", real_scan)
    assert cli.main(["index", str(folder), "--library", str(library), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["indexed"] == 0
    assert cli.main(["errors", "--library", str(library), "--json"]) == 0
    listed = {Path(e["path"]).name for e in json.loads(capsys.readouterr().out)}
    # Printed paths are valid UTF-8: bytes that are not show as \xNN.
    assert listed == {display(name) for name in bad} - {"deleted_during_run.jpg"}  # a gone file is no error
