"""A hand-made shard in Apple's exact DataCompDR layout (docs/mobileclip-spec.md §9.2, joined with its images) is read
correctly: augmentation replay, caption/embedding alignment, augmentation choice, v2 caption keys, rank/worker
splits."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from tests.photo_corpus import load_photo
from trainer.reinforce.card import datacompdr_card
from trainer.reinforce.reader import ReinforcedDataset, replay_transform, teacher_slices

torch.set_num_threads(1)
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
D = 768
SYN = [f"synthetic caption number {i} of the rocket" for i in range(5)]
REAL = "Rocket on a launch pad at dusk"


def _one_hot_rows(offsets: list[int]) -> np.ndarray:
    """Rows of two 768-d halves, each a unit one-hot: row r is hot at offsets[r] in both halves (+1 in the second)."""
    rows = np.zeros((len(offsets), 2 * D), np.float32)
    for r, col in enumerate(offsets):
        rows[r, col] = 1.0
        rows[r, D + col + 1] = 1.0
    return rows


def _jpeg(name: str) -> bytes:
    out = io.BytesIO()
    load_photo(name, max_side=120).save(out, format="JPEG", quality=90)
    return out.getvalue()


PAUG = [
    [[10, 5, 60, 80], [[0, 0.0], [12, 0.0]]],  # Identity, AutoContrast
    [[0, 0, 70, 70], None],  # RandAugment skipped: null
    [[20, 30, 50, 40], [[11, 178.5], [10, 7.0]]],  # Solarize, Posterize(7 bits)
]


def _dr_members(key: str, image: bytes | None, syn_key: str = "syn_text", v2: bool = False) -> list[tuple[str, bytes]]:
    text_emb = _one_hot_rows([200] if v2 else [200 + c for c in range(6)])
    arrays = {"image_emb": _one_hot_rows([0, 1, 2]), "text_emb": text_emb}
    if v2:
        arrays[f"{syn_key}_emb"] = _one_hot_rows([201 + c for c in range(5)])
    npz = io.BytesIO()
    np.savez(npz, **arrays)
    members = [
        ("url.txt", b"https://example.invalid/rocket.jpg"),
        ("json", json.dumps({"uid": key, "sha256": hashlib.sha256(image or b"").hexdigest()}).encode()),
        ("syn.json", json.dumps({syn_key: SYN}).encode()),
        ("paug.json", json.dumps({"param_aug": PAUG}).encode()),
        ("npz", npz.getvalue()),
    ]
    if image is not None:  # joined with the DataComp tar: image and real caption
        members += [("jpg", image), ("txt", REAL.encode())]
    return [(f"{key}.{ext}", data) for ext, data in members]


def _write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _tokens(text: str) -> torch.Tensor:
    return torch.tensor(list(text.encode()), dtype=torch.long)


def _text(tokens: torch.Tensor) -> str:
    return bytes(tokens.tolist()).decode()


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dr")
    members = _dr_members("000000000", _jpeg("rocket_launch_pad")) + _dr_members("000000001", _jpeg("coffee"))
    members += _dr_members("000000002", None)  # a DR sample not joined with its image
    return _write_tar(folder / "00000000.tar", members)


def _dataset(shards: list[Path], **kwargs) -> ReinforcedDataset:
    transform = replay_transform(224, OPENAI_MEAN, OPENAI_STD, "bicubic")
    return ReinforcedDataset(shards, image_transform=transform, tokenize=_tokens, **kwargs)


def _expected_view(image: Image.Image, entry: list) -> np.ndarray:
    top, left, h, w = entry[0]
    view = image.crop((left, top, left + w, top + h)).resize((224, 224), Image.Resampling.BICUBIC)
    if entry[1] and entry[1][1][0] == 12:
        view = ImageOps.autocontrast(view)
    pixels = np.asarray(view).astype(np.int64)
    if entry[1] and entry[1][0][0] == 11:
        pixels = np.where(pixels >= 178.5, 255 - pixels, pixels) & 0xFE
    norm = pixels.astype(np.float32).transpose(2, 0, 1) / np.float32(255) - np.float32(OPENAI_MEAN)[:, None, None]
    return norm / np.float32(OPENAI_STD)[:, None, None]


def test_teacher_slices_of_datacompdr() -> None:
    card = datacompdr_card([Path("x.tar")])
    assert teacher_slices(card) == [
        ("ViT-L-14/openai", slice(0, 768), 100.0),
        ("ViT-L-14/datacomp_xl_s13b_b90k", slice(768, 1536), 100.0),
    ]


def test_datacompdr_shard_is_read_and_aligned(shard: Path) -> None:
    errors: list[str] = []
    items = list(_dataset([shard], on_error=errors.append, shuffle_buffer=1))
    assert [item["key"] for item in items] == ["000000000", "000000001"]
    assert len(errors) == 1 and "000000002" in errors[0] and "join them with the DataComp images" in errors[0]
    images = {
        "000000000": load_photo("rocket_launch_pad", max_side=120),
        "000000001": load_photo("coffee", max_side=120),
    }
    for item in items:
        aug, syn = item["aug_index"], item["syn_index"]
        assert item["image_emb"].shape == (1536,) and item["image_emb"].dtype == torch.float32
        for half in (item["image_emb"][:D], item["image_emb"][D:], item["syn_text_emb"][:D], item["text_emb"][D:]):
            assert float(half.norm()) == pytest.approx(1.0)
        assert int(item["image_emb"][:D].argmax()) == aug  # row `aug` of image_emb
        assert int(item["text_emb"][:D].argmax()) == 200  # real caption: row 0 of text_emb
        assert 0 <= syn < 5 and int(item["syn_text_emb"][:D].argmax()) == 201 + syn  # row 1 + syn
        assert _text(item["text"]) == REAL and _text(item["syn_text"]) == SYN[syn]
        # Replay: the image the shard's jpg decodes to, cropped/resized/augmented as the entry says.
        stored = Image.open(io.BytesIO(_jpeg("rocket_launch_pad" if item["key"].endswith("0") else "coffee")))
        assert stored.size == images[item["key"]].size
        expected = _expected_view(stored.convert("RGB"), PAUG[aug])
        assert item["image"].shape == (3, 224, 224)
        assert np.allclose(item["image"].numpy(), expected, atol=1e-6)


def test_augmentation_choice_per_epoch(shard: Path) -> None:
    sequential = _dataset([shard], aug_choice="sequential", on_error=lambda m: None)
    for epoch in range(4):
        sequential.set_epoch(epoch)
        assert {item["aug_index"] for item in sequential} == {epoch % 3}
    uniform = _dataset([shard], on_error=lambda m: None, seed=7)
    picks = []
    for epoch in range(12):
        uniform.set_epoch(epoch)
        picks.append(tuple((item["key"], item["aug_index"], item["syn_index"]) for item in uniform))
    assert len({p[1] for run in picks for p in run}) == 3 and len({p[2] for run in picks for p in run}) >= 3
    uniform.set_epoch(5)
    assert tuple((i["key"], i["aug_index"], i["syn_index"]) for i in uniform) == picks[5]  # deterministic


def test_v2_caption_key_layout(tmp_path: Path) -> None:
    key = "syn_text_dfn_mscoco38k"
    shard = _write_tar(tmp_path / "v2.tar", _dr_members("000000010", _jpeg("coffee"), syn_key=key, v2=True))
    items = list(_dataset([shard], syn_key=key))
    assert len(items) == 1
    item = items[0]
    assert int(item["text_emb"][:D].argmax()) == 200
    assert int(item["syn_text_emb"][:D].argmax()) == 201 + item["syn_index"]
    assert _text(item["syn_text"]) == SYN[item["syn_index"]]


def test_shards_split_disjointly_across_ranks_and_workers(tmp_path: Path) -> None:
    image = _jpeg("coffee")
    shards = [_write_tar(tmp_path / f"{s:02d}.tar", _dr_members(f"{s:02d}0000000", image)) for s in range(6)]
    seen: list[str] = []
    for rank in range(2):
        dataset = _dataset(shards, rank=rank, world_size=2, epoch=3, shuffle_buffer=4)
        loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)
        keys = [item["key"] for item in loader]
        assert len(keys) == 3
        again = [item["key"] for item in torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2)]
        assert again == keys  # same seed and epoch: same order
        seen += keys
    assert sorted(seen) == sorted(f"{s:02d}0000000" for s in range(6))
