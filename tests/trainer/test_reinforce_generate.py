"""Reinforce a small album of real photos with two different teachers (the starter package through onnxruntime and
a random-weight MobileCLIP-S0 in torch) and read it back: card, shapes, per-teacher normalisation, exact replay of
what each teacher saw, caption/embedding alignment, and the training reader."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.photo_corpus import materialize
from trainer.reinforce.augment import apply_params
from trainer.reinforce.card import read_card, teacher_slices, verify_shards
from trainer.reinforce.generate import ReinforceConfig, reinforce
from trainer.reinforce.reader import ReinforcedDataset, replay_transform
from trainer.reinforce.safetar import iter_samples
from trainer.reinforce.shards import decode_image, parse_sample
from trainer.reinforce.sources import CAPTION_TEMPLATES, open_source
from trainer.reinforce.teachers import PackageTeacher, Teacher, TorchClipTeacher, ensemble_texts

torch.set_num_threads(1)
ALBUM = {
    "people": ("astronaut", "cameraman", "people_on_stairs"),
    "space": ("hubble_deep_field", "moon_surface", "rocket_launch_pad"),
    "close_ups": ("chelsea_cat", "orange_dahlia", "coffee"),
}
K = 2


class Recording(Teacher):
    """Wraps a teacher and remembers the exact normalised pixels of every view it was asked to embed."""

    def __init__(self, inner: Teacher) -> None:
        self.inner = inner
        for name in ("id", "dim", "logit_scale", "resolution", "interpolation", "mean", "std", "kind"):
            setattr(self, name, getattr(inner, name))
        self.seen: list[str] = []

    def embed_views(self, views):
        self.seen += [hashlib.sha256(a.tobytes()).hexdigest() for a in self.inner.normalize_views(views)]
        return self.inner.embed_views(views)

    def embed_texts(self, texts):
        return self.inner.embed_texts(texts)

    def source(self):
        return self.inner.source()


@pytest.fixture(scope="module")
def album(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("album")
    for label, names in ALBUM.items():
        materialize(root / label, names, max_side=160)
    return root


@pytest.fixture(scope="module")
def teachers(starter_package_dir: Path) -> list[Recording]:
    torch.manual_seed(0)
    from trainer.models.clip import create_model

    mobileclip = TorchClipTeacher.from_mobileclip(create_model("mobileclip-s0"), device="cpu", batch_size=8)
    return [Recording(PackageTeacher(starter_package_dir)), Recording(mobileclip)]


@pytest.fixture(scope="module")
def dataset(album: Path, teachers: list[Recording], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reinforced")
    source = open_source(album, shard_size=4)
    result = reinforce(source, out, teachers, ReinforceConfig(augmentations=K, batch_size=4))
    assert result.written == [0, 1, 2] and result.samples == 9 and result.card_path is not None
    return out


def _samples(dataset: Path):
    card = read_card(dataset)
    for shard in card["shards"]:
        for key, members in iter_samples(dataset / shard["file"]):
            yield parse_sample(key, members), members


def test_card_records_teachers_settings_and_hashes(dataset: Path, album: Path) -> None:
    card = read_card(dataset)
    assert [(t["id"], t["dim"], t["columns"]) for t in card["teachers"]] == [
        ("starter", 384, [0, 384]),
        ("mobileclip-s0", 512, [384, 896]),
    ]
    assert card["teachers"][0]["logit_scale"] == 100.0  # the starter records none: DataCompDR's fixed 100
    assert card["teachers"][1]["logit_scale"] == pytest.approx(1 / 0.07, rel=1e-5)  # MobileCLIP's initial scale
    assert (card["teachers"][1]["resolution"], card["teachers"][1]["interpolation"]) == (256, "bilinear")
    assert teacher_slices(card) == [
        ("starter", slice(0, 384), 100.0),
        ("mobileclip-s0", slice(384, 896), pytest.approx(14.285714)),
    ]
    assert (card["augmentations"], card["synthetic_captions"], card["captioner"]) == (K, 0, None)
    assert "no captioner" in card["captioner_note"] and "none were invented" in card["captioner_note"]
    assert card["samples"] == 9 and card["embedding_dim"] == 896
    assert sorted(card["source"]["labels"]) == ["close ups", "people", "space"]
    assert [s["file"] for s in card["shards"]] == ["shards/000000.tar", "shards/000001.tar", "shards/000002.tar"]
    for shard in card["shards"]:
        assert hashlib.sha256((dataset / shard["file"]).read_bytes()).hexdigest() == shard["sha256"]
    assert verify_shards(dataset, card) == []
    assert {"numpy", "pillow", "torch", "onnxruntime"} <= set(card["versions"])


def test_samples_have_datacompdr_shapes_and_unit_teacher_parts(dataset: Path, album: Path) -> None:
    card = read_card(dataset)
    slices = [s for _, s, _ in teacher_slices(card)]
    count = 0
    for sample, members in _samples(dataset):
        count += 1
        assert set(members) == {"jpg", "txt", "json", "syn.json", "paug.json", "npz"}
        assert sample.image_emb.shape == (K, 896) and sample.image_emb.dtype == np.float32
        assert sample.text_emb.shape == (1, 896) and sample.syn_captions == []
        for part in slices:
            assert np.allclose(np.linalg.norm(sample.image_emb[:, part], axis=1), 1.0, atol=1e-5)
            assert np.allclose(np.linalg.norm(sample.text_emb[:, part], axis=1), 1.0, atol=1e-5)
        label_folder = sample.meta["origin"].split("/")[0]
        assert sample.label == label_folder.replace("_", " ")
        assert sample.caption in {t.format(sample.label) for t in CAPTION_TEMPLATES}
        original = (album / sample.meta["origin"]).read_bytes()  # small upright JPEGs are stored as they are
        assert sample.image == original and sample.meta["sha256"] == hashlib.sha256(original).hexdigest()
        assert len(sample.params) == K and all(p.crop is not None and p.ops is not None for p in sample.params)
    assert count == 9


def test_replay_is_pixel_identical_to_what_each_teacher_saw(dataset: Path, teachers: list[Recording]) -> None:
    replays = [replay_transform(t.resolution, t.mean, t.std, t.interpolation) for t in teachers]
    for teacher in teachers:
        assert len(teacher.seen) == 9 * K
    for sample, _ in _samples(dataset):
        image = decode_image(sample.image)
        for teacher, replay in zip(teachers, replays, strict=True):
            for params in sample.params:
                pixels = replay(image, params).numpy()
                assert pixels.shape == (3, teacher.resolution, teacher.resolution)
                assert hashlib.sha256(pixels.tobytes()).hexdigest() in teacher.seen


def test_stored_embeddings_belong_to_their_views_and_captions(dataset: Path, teachers: list[Recording]) -> None:
    """Re-embedding the replayed views gives the stored rows, augmentation by augmentation, teacher by teacher."""
    card = read_card(dataset)
    first_shard = dataset / card["shards"][0]["file"]
    samples = [parse_sample(key, members) for key, members in iter_samples(first_shard)]
    for teacher, (_, part, _) in zip(teachers, teacher_slices(card), strict=True):
        views = [
            apply_params(decode_image(s.image), p, teacher.resolution, teacher.interpolation)
            for s in samples
            for p in s.params
        ]
        stored = np.concatenate([s.image_emb[:, part] for s in samples])
        assert np.allclose(teacher.inner.embed_views(views), stored, atol=2e-5)
    all_samples = [s for s, _ in _samples(dataset)]
    texts = ensemble_texts([t.inner for t in teachers], [s.caption for s in all_samples])
    assert np.allclose(texts, np.stack([s.text_emb[0] for s in all_samples]), atol=2e-5)


def test_reader_yields_student_views_and_matching_targets(dataset: Path, teachers: list[Recording]) -> None:
    student = teachers[1]  # read at the MobileCLIP teacher's settings: the student view is exactly its view
    data = ReinforcedDataset(
        dataset, image_transform=replay_transform(student.resolution, student.mean, student.std, student.interpolation),
        tokenize=lambda s: torch.tensor(list(s.encode())), shuffle_buffer=4, seed=3,
    )  # fmt: skip
    assert data.num_samples == 9
    stored = {s.key: s for s, _ in _samples(dataset)}
    items = list(data)
    assert sorted(item["key"] for item in items) == sorted(stored)
    for item in items:
        sample = stored[item["key"]]
        assert torch.equal(item["image_emb"], torch.from_numpy(sample.image_emb[item["aug_index"]]))
        assert torch.equal(item["text_emb"], torch.from_numpy(sample.text_emb[0]))
        assert torch.equal(item["syn_text_emb"], item["text_emb"]) and item["syn_index"] == -1  # S = 0
        assert bytes(item["text"].tolist()).decode() == sample.caption and torch.equal(item["syn_text"], item["text"])
        assert item["label"] == sample.label
        assert hashlib.sha256(item["image"].numpy().tobytes()).hexdigest() in student.seen


def test_reader_reports_samples_per_rank(dataset: Path) -> None:
    data = ReinforcedDataset(dataset, image_transform=replay_transform(32, (0, 0, 0), (1, 1, 1)), tokenize=len)
    for epoch in range(3):
        data.set_epoch(epoch)
        counts = data.rank_samples(2)
        assert sorted(counts) in ([4, 5], [1, 8]) and sum(counts) == 9  # shards hold 4, 4 and 1 samples
        for rank, expected in enumerate(counts):
            shards = ReinforcedDataset(dataset, image_transform=data.image_transform, tokenize=len, epoch=epoch,
                                       rank=rank, world_size=2).assigned_shards()[0]  # fmt: skip
            assert sum(1 for path in shards for _ in iter_samples(path)) == expected
