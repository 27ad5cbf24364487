"""Hostile and broken shards are refused with clear messages and never crash a reader (trainer/reinforce)."""

from __future__ import annotations

import io
import json
import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.photo_corpus import load_photo
from trainer.reinforce.card import CARD_FILE, DatasetCardError, read_card
from trainer.reinforce.reader import ReinforcedDataset, replay_transform
from trainer.reinforce.safetar import Limits, SampleError, ShardError, check_member_name, iter_samples
from trainer.reinforce.shards import ShardWriter, encode_npz, load_npz, parse_sample

torch.set_num_threads(1)
DIM = 8


def _jpeg() -> bytes:
    out = io.BytesIO()
    load_photo("coffee", max_side=64).save(out, format="JPEG", quality=90)
    return out.getvalue()


def _unit(rows: int) -> np.ndarray:
    x = np.random.default_rng(rows).standard_normal((rows, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _members(npz: bytes | None = None) -> dict[str, bytes]:
    return {
        "jpg": _jpeg(),
        "txt": b"an espresso cup on a saucer",
        "json": b'{"uid": "x", "label": ""}',
        "syn.json": b'{"syn_text": []}',
        "paug.json": b'{"param_aug": [[[0, 0, 40, 40], null], [[4, 4, 30, 30], [[6, 0.27], [3, -30.45]]]]}',
        "npz": npz if npz is not None else encode_npz({"image_emb": _unit(2), "text_emb": _unit(1)}),
    }


def _good_shard(path: Path, keys: tuple[str, ...] = ("a0", "a1")) -> Path:
    writer = ShardWriter(path)
    for key in keys:
        writer.add(key, _members())
    return writer.close()


def _raw_tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _info(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info


def _dataset(shards: list[Path], errors: list[str]) -> ReinforcedDataset:
    return ReinforcedDataset(
        shards, image_transform=replay_transform(32, (0, 0, 0), (1, 1, 1)), tokenize=lambda s: torch.tensor([len(s)]),
        shuffle_buffer=1, on_error=errors.append,
    )  # fmt: skip


def test_member_names_are_validated() -> None:
    assert check_member_name("./dir/000.jpg") == "dir/000.jpg"
    for bad, reason in (("/etc/passwd", "absolute"), ("a/../../x.jpg", "climbs"), ("C:/x.jpg", "absolute"),
                        ("a\\b.jpg", "backslash"), ("", "empty")):  # fmt: skip
        with pytest.raises(ShardError, match=reason):
            check_member_name(bad)


@pytest.mark.parametrize(
    ("name", "message"),
    [("../../etc/evil.jpg", "climbs out"), ("/abs/000.jpg", "absolute path")],
)
def test_path_traversal_shard_is_refused(tmp_path: Path, name: str, message: str) -> None:
    data = b"x" * 10
    path = _raw_tar(tmp_path / "evil.tar", [(_info("000.txt", 3), b"abc"), (_info(name, len(data)), data)])
    with pytest.raises(ShardError, match=message):
        list(iter_samples(path))


def test_links_are_refused(tmp_path: Path) -> None:
    link = _info("000.jpg", 0, tarfile.SYMTYPE)
    link.linkname = "/etc/passwd"
    path = _raw_tar(tmp_path / "link.tar", [(link, None)])
    with pytest.raises(ShardError, match="link"):
        list(iter_samples(path))


def test_huge_member_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A header claiming 10 GB: refused from the header alone (the data is not even there)."""
    header = _info("000.npz", 10 * 1024**3).tobuf(tarfile.GNU_FORMAT)
    path = tmp_path / "huge.tar"
    path.write_bytes(header + b"\0" * 512 * 20)
    with pytest.raises(ShardError, match=r"10,737,418,240 bytes, over the 67,108,864-byte limit"):
        list(iter_samples(path))
    small = _good_shard(tmp_path / "ok.tar")
    with pytest.raises(ShardError, match="over the 1,000-byte limit"):
        list(iter_samples(small, Limits(member_bytes=1000)))


def test_pickled_npz_is_refused(tmp_path: Path) -> None:
    out = io.BytesIO()
    np.savez(out, image_emb=np.array([{"evil": 1}], dtype=object), text_emb=_unit(1))
    with pytest.raises(SampleError, match="pickled"):
        load_npz(out.getvalue())
    with pytest.raises(SampleError, match="pickled"):
        parse_sample("k", _members(out.getvalue()))


def test_npz_decompression_bomb_is_refused() -> None:
    out = io.BytesIO()
    np.savez_compressed(out, image_emb=np.zeros((2, 300_000), np.float32), text_emb=_unit(1))
    assert len(out.getvalue()) < 20_000  # small on disk, 2.4 MB unpacked
    with pytest.raises(SampleError, match="unpacks to"):
        load_npz(out.getvalue(), Limits(npz_bytes=1 << 20))


def test_truncated_tar_is_refused(tmp_path: Path) -> None:
    good = _good_shard(tmp_path / "good.tar").read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(good[: len(good) // 2 + 100])
    with pytest.raises(ShardError, match="truncated"):
        list(iter_samples(cut))
    # Cut exactly after a member's last block: tarfile alone would read this as a shorter, valid archive.
    with tarfile.open(tmp_path / "good.tar") as archive:
        first = archive.getmembers()[1]
        end = first.offset_data + ((first.size + 511) // 512) * 512
    cut.write_bytes(good[:end])
    with pytest.raises(ShardError, match="no end-of-archive marker"):
        list(iter_samples(cut))


def test_not_a_tar_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "noise.tar"
    path.write_bytes(np.random.default_rng(0).integers(1, 256, 4096, dtype=np.uint8).tobytes() + b"\0" * 1024)
    with pytest.raises(ShardError, match="corrupt"):
        list(iter_samples(path))


def test_bad_samples_are_reported_with_reasons() -> None:
    members = _members()
    cases = [
        ({k: v for k, v in members.items() if k != "jpg"} | {"url.txt": b"http://x"}, "join them with the DataComp"),
        ({**members, "paug.json": b'{"param_aug": [[[0, 0, 4, 4], [[99, 1.0]]]]}'}, "op index 99"),
        ({**members, "paug.json": b"{not json"}, "not valid JSON"),
        ({**members, "npz": encode_npz({"image_emb": _unit(3), "text_emb": _unit(1)})}, "3 image embeddings for 2"),
        ({**members, "npz": b"PK\x03\x04garbage"}, "npz is not readable"),
        (
            {**members, "npz": encode_npz({"image_emb": np.full((2, DIM), np.nan, np.float32), "text_emb": _unit(1)})},
            "NaN",
        ),
        ({**members, "syn.json": b'{"syn_text": [1, 2]}'}, "not a list of strings"),
        ({**members, "jpg": b"\xff\xd8 not really"}, None),  # parsed fine; decoding fails later in the reader
    ]
    for sample, reason in cases:
        if reason is None:
            parse_sample("k", sample)
            continue
        with pytest.raises(SampleError, match=reason):
            parse_sample("k", sample)


def test_reader_skips_hostile_shards_and_keeps_going(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = _good_shard(tmp_path / "good.tar", ("g0", "g1"))
    data = b"x" * 10
    evil = _raw_tar(tmp_path / "evil.tar", [(_info("../escape.jpg", len(data)), data)])
    cut = tmp_path / "cut.tar"
    cut.write_bytes(_good_shard(tmp_path / "other.tar", ("c0",)).read_bytes()[:700])
    broken_image = tmp_path / "image.tar"
    writer = ShardWriter(broken_image)
    writer.add("b0", {**_members(), "jpg": b"\xff\xd8 not an image"})
    writer.close()
    errors: list[str] = []
    with caplog.at_level(logging.WARNING, logger="trainer.reinforce.reader"):
        items = list(_dataset([evil, good, cut, broken_image], errors))
    assert sorted(item["key"] for item in items) == ["g0", "g1"]
    assert len(errors) == 3
    assert any("evil.tar" in e and "climbs out" in e for e in errors)
    assert any("cut.tar" in e and "truncated" in e for e in errors)
    assert any("image is not readable" in e for e in errors)
    assert len(caplog.records) == 3


def test_card_with_escaping_shard_path_is_refused(tmp_path: Path) -> None:
    card = {
        "format": "photoseek-reinforced-dataset",
        "format_version": 1,
        "teachers": [{"id": "t", "dim": 8, "logit_scale": 100.0, "columns": [0, 8]}],
        "embedding_dim": 8,
        "shards": [{"file": "../../outside.tar", "sha256": "0" * 64}],
    }
    (tmp_path / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(DatasetCardError, match="climbs out"):
        read_card(tmp_path)
    card["shards"] = [{"file": "shards/0.tar", "sha256": "0" * 64}]
    card["teachers"][0]["columns"] = [0, 9]
    (tmp_path / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(DatasetCardError, match="columns do not add up"):
        read_card(tmp_path)
