"""Generation at scale: torchrun with two CPU processes gives the same shards as one process, an interrupted run
resumes without redoing finished shards, the command line, the three source kinds and a captioner plug-in."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.photo_corpus import load_photo, materialize
from tests.support.paths import REPO
from trainer.cli import main
from trainer.reinforce.card import read_card
from trainer.reinforce.generate import RUN_FILE, ReinforceConfig, ReinforceError, reinforce
from trainer.reinforce.reader import ReinforcedDataset, replay_transform
from trainer.reinforce.safetar import iter_samples
from trainer.reinforce.shards import decode_image, load_npz, parse_sample
from trainer.reinforce.sources import open_source
from trainer.reinforce.teachers import PackageTeacher, Teacher

torch.set_num_threads(1)
ALBUM = {"people": ("astronaut", "cameraman"), "space": ("moon_surface", "rocket_launch_pad", "hubble_deep_field")}


@pytest.fixture(scope="module")
def album(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("album")
    for label, names in ALBUM.items():
        materialize(root / label, names, max_side=128)
    return root


@pytest.fixture(scope="module")
def starter(starter_package_dir: Path) -> PackageTeacher:
    return PackageTeacher(starter_package_dir)


class Flaky(Teacher):
    """Delegates to a teacher, counts image batches, and fails on batch number ``fail_at`` (simulated crash)."""

    def __init__(self, inner: Teacher, fail_at: int | None = None) -> None:
        self.inner, self.fail_at, self.calls = inner, fail_at, 0
        for name in ("id", "dim", "logit_scale", "resolution", "interpolation", "mean", "std", "kind"):
            setattr(self, name, getattr(inner, name))

    def embed_views(self, views):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("simulated crash")
        return self.inner.embed_views(views)

    def embed_texts(self, texts):
        return self.inner.embed_texts(texts)

    def source(self):
        return self.inner.source()


def assert_same_shards(a: Path, b: Path) -> bool:
    """Same shard files with the same members; npz arrays equal to float tolerance. Returns whether bytes match."""
    names = sorted(p.name for p in (a / "shards").glob("*.tar"))
    assert names == sorted(p.name for p in (b / "shards").glob("*.tar")) and names
    identical = True
    for name in names:
        left, right = (a / "shards" / name).read_bytes(), (b / "shards" / name).read_bytes()
        identical &= left == right
        members_a = [m for _, m in iter_samples(a / "shards" / name)]
        members_b = [m for _, m in iter_samples(b / "shards" / name)]
        assert len(members_a) == len(members_b)
        for ma, mb in zip(members_a, members_b, strict=True):
            assert ma.keys() == mb.keys()
            for ext in ma:
                if ext == "npz":
                    na, nb = load_npz(ma[ext]), load_npz(mb[ext])
                    assert all(np.allclose(na[k], nb[k], atol=1e-6) for k in ("image_emb", "text_emb"))
                else:
                    assert ma[ext] == mb[ext], (name, ext)
    card_a, card_b = read_card(a), read_card(b)
    assert [s["samples"] for s in card_a["shards"]] == [s["samples"] for s in card_b["shards"]]
    return identical


def test_torchrun_two_processes_match_one_process(album: Path, library: Path, tmp_path: Path) -> None:
    common = [str(album), "--teachers", "starter", "--shard-size", "2", "--library", str(library), "--no-progress"]
    assert main(["reinforce", *common, "--out", str(tmp_path / "one")]) == 0
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "trainer", "reinforce", *common,
         "--out", str(tmp_path / "two")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "two" / "dataset_card.json").is_file()
    identical = assert_same_shards(tmp_path / "one", tmp_path / "two")
    assert identical  # deterministic tar/npz writing: byte-identical shards, hence identical card hashes
    shards_one = read_card(tmp_path / "one")["shards"]
    assert shards_one == read_card(tmp_path / "two")["shards"] and len(shards_one) == 3


def test_interrupted_run_resumes_without_redoing_finished_shards(
    album: Path, starter: PackageTeacher, tmp_path: Path
) -> None:
    config = ReinforceConfig(augmentations=2, batch_size=2)
    source = open_source(album, shard_size=2)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        reinforce(source, out, [Flaky(starter, fail_at=2)], config)  # dies inside the second shard
    shards = out / "shards"
    assert sorted(p.name for p in shards.iterdir()) == ["000000.json", "000000.tar"]  # no partial shard left
    assert not (out / "dataset_card.json").exists()
    before = (shards / "000000.tar").stat()
    again = Flaky(starter)
    result = reinforce(source, out, [again], config)
    assert result.already_done == [0] and result.written == [1, 2]
    assert again.calls == 2  # one batch for each remaining shard, none for the finished one
    after = (shards / "000000.tar").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    clean = tmp_path / "clean"
    reinforce(source, clean, [starter], config)
    assert assert_same_shards(out, clean)
    assert read_card(out)["shards"] == read_card(clean)["shards"]
    with pytest.raises(ReinforceError, match="different settings.*augmentations"):
        reinforce(source, out, [starter], ReinforceConfig(augmentations=3, batch_size=2))
    assert json.loads((out / RUN_FILE).read_text())["augmentations"] == 2


def test_cli_refuses_synthetic_captions_without_a_captioner(album: Path, library: Path, tmp_path: Path, capsys) -> None:
    args = ["reinforce", str(album), "--out", str(tmp_path / "x"), "--library", str(library), "--no-progress"]
    assert main([*args, "--captions", "5"]) == 1
    assert "needs a captioner, and none is installed" in capsys.readouterr().err
    assert main([*args, "--teachers", "no-such-model"]) == 1
    assert "no model package 'no-such-model'" in capsys.readouterr().err
    assert main(["reinforce", str(tmp_path / "missing"), "--out", str(tmp_path / "y"), "--library", str(library)]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_image_folder_with_sidecar_captions_skips_uncaptioned(starter: PackageTeacher, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    paths = materialize(folder, ["coffee", "chelsea_cat", "moon_surface"], max_side=96)
    paths["coffee"].with_suffix(".txt").write_text("an espresso cup on a red saucer\n")
    paths["chelsea_cat"].with_suffix(".txt").write_text("a tabby cat")
    result = reinforce(open_source(folder), tmp_path / "out", [starter], ReinforceConfig(augmentations=1))
    card = read_card(tmp_path / "out")
    assert result.samples == 2 and card["samples"] == 2 and card["source"]["kind"] == "folder"
    assert card["skipped_count"] == 1 and card["skipped"][0]["origin"] == "moon_surface.jpg"
    assert "no real caption" in card["skipped"][0]["reason"]
    captions = sorted(parse_sample(k, m).caption for k, m in iter_samples(tmp_path / "out" / "shards" / "000000.tar"))
    assert captions == ["a tabby cat", "an espresso cup on a red saucer"]


def test_webdataset_source_with_large_rotated_and_png_images(starter: PackageTeacher, tmp_path: Path) -> None:
    """Input shards hold jpg/png + txt; images are stored upright and at most max_side pixels."""
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    rotated, png, big = io.BytesIO(), io.BytesIO(), io.BytesIO()
    load_photo("coffee", max_side=100).save(rotated, format="JPEG", exif=exif)
    load_photo("chelsea_cat", max_side=50).save(png, format="PNG")
    load_photo("rocket_launch_pad").save(big, format="JPEG", quality=90)
    members = [("r0.jpg", big.getvalue()), ("r0.txt", b"a rocket"), ("r1.jpg", rotated.getvalue()),
               ("r1.txt", b"coffee"), ("r2.png", png.getvalue()), ("r2.txt", b"a cat"), ("r3.txt", b"no image")]  # fmt: skip
    src = tmp_path / "in" / "part-000.tar"
    src.parent.mkdir()
    with tarfile.open(src, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    out = tmp_path / "out"
    reinforce(open_source(src.parent, max_side=64), out, [starter], ReinforceConfig(augmentations=1))
    card = read_card(out)
    assert card["source"]["kind"] == "webdataset" and card["samples"] == 3 and card["skipped_count"] == 1
    assert "no image member" in card["skipped"][0]["reason"]
    stored = {}
    for key, members_out in iter_samples(out / "shards" / "000000.tar"):
        sample = parse_sample(key, members_out)
        stored[sample.caption] = (sample, members_out)
    rocket = decode_image(stored["a rocket"][0].image)
    assert max(rocket.size) == 64 and "jpg" in stored["a rocket"][1]
    coffee = decode_image(stored["coffee"][0].image)
    upright = load_photo("coffee", max_side=100).transpose(Image.Transpose.ROTATE_270)  # portrait once upright
    assert max(coffee.size) == 64 and coffee.size[0] < coffee.size[1]
    upright = upright.resize(coffee.size, Image.Resampling.LANCZOS)
    diff = np.abs(np.asarray(coffee, dtype=int) - np.asarray(upright, dtype=int)).mean()
    assert diff < 8  # same picture, turned upright (JPEG re-encoding noise only)
    assert stored["a cat"][1]["png"] == png.getvalue()  # small upright PNG stored as it was


class LengthCaptioner:
    """A test captioner plug-in: two captions per image from measured image properties (not invented text)."""

    id = "test-brightness-captioner"

    def caption(self, images, count):
        out = []
        for image in images:
            level = float(np.asarray(image.convert("L")).mean())
            words = ["a dark picture" if level < 100 else "a bright picture", f"a picture {image.width} pixels wide"]
            out.append(words[:count])
        return out

    def describe(self):
        return {"id": self.id, "kind": "test"}


def test_synthetic_captions_from_a_captioner_plugin(album: Path, starter: PackageTeacher, tmp_path: Path) -> None:
    out = tmp_path / "syn"
    reinforce(open_source(album, shard_size=8), out, [starter], ReinforceConfig(augmentations=1, captions=2),
              captioner=LengthCaptioner())  # fmt: skip
    card = read_card(out)
    assert card["synthetic_captions"] == 2 and card["captioner"]["id"] == "test-brightness-captioner"
    assert card["captioner_note"] == ""
    samples = [parse_sample(k, m) for k, m in iter_samples(out / "shards" / "000000.tar")]
    assert len(samples) == 5
    for sample in samples:
        assert len(sample.syn_captions) == 2 and sample.text_emb.shape == (3, 384)
        assert np.allclose(starter.embed_texts([sample.caption, *sample.syn_captions]), sample.text_emb, atol=2e-5)
    data = ReinforcedDataset(out, image_transform=replay_transform(64, (0, 0, 0), (1, 1, 1)),
                             tokenize=lambda s: torch.tensor(list(s.encode())))  # fmt: skip
    by_key = {s.key: s for s in samples}
    for item in data:
        sample = by_key[item["key"]]
        assert bytes(item["syn_text"].tolist()).decode() == sample.syn_captions[item["syn_index"]]
        assert torch.equal(item["syn_text_emb"], torch.from_numpy(sample.text_emb[1 + item["syn_index"]]))


def test_uncaptioned_photo_with_a_captioner_uses_its_first_caption(starter: PackageTeacher, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    materialize(folder, ["moon_surface"], max_side=64)
    reinforce(open_source(folder), tmp_path / "out", [starter], ReinforceConfig(augmentations=1, captions=2),
              captioner=LengthCaptioner())  # fmt: skip
    [(key, members)] = list(iter_samples(tmp_path / "out" / "shards" / "000000.tar"))
    sample = parse_sample(key, members)
    assert sample.caption == sample.syn_captions[0] and sample.caption in ("a dark picture", "a bright picture")
    assert sample.meta["real_caption"] is False
    assert np.allclose(sample.text_emb[0], sample.text_emb[1])
