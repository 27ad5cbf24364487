"""The text anchor of album fine-tunes: generic captions stay where the base put them while the label words move.

Real photos, the real starter package as base and teacher, the real training loop.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from core.encoders import ModelPackage
from core.tagging import TAG_TEMPLATES
from tests.photo_corpus import all_photos
from tests.trainer.album_support import reinforced_album
from trainer.finetune.anchor import TextAnchor, anchor_captions
from trainer.finetune.reinforce import SYN_TEMPLATE, load_album_dataset
from trainer.finetune.starter import AlbumStudent, caption_tokens, load_base_text_encoder, student_data
from trainer.finetune.tuner import teacher_scale
from trainer.train.config import TrainConfig
from trainer.train.loop import train

torch.set_num_threads(1)

ALBUM = {
    "nonna": ["handwritten_math", "book_page", "ancient_coins"],
    "kepler": ["hubble_deep_field", "moon_surface", "retina_fundus"],
    "zorbl": ["chelsea_cat", "coffee", "astronaut"],
}
WORDS = ["dog", "beach", "sunset", "car", "birthday cake", "mountain", "child", "flower", "street", "snow"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, starter_package_dir: Path):
    out, base = reinforced_album(
        tmp_path_factory.mktemp("anchor-album"), ALBUM, starter_package_dir, WORDS, synthetic=2
    )
    return load_album_dataset(out), base


def test_anchor_captions_are_every_tag_prompt_then_two_word_scenes() -> None:
    captions = anchor_captions(WORDS, scenes=50, seed=3)
    prompts = [t.format(w) for w in WORDS for t in TAG_TEMPLATES]
    assert captions[: len(prompts)] == prompts and len(captions) == len(prompts) + 50
    scenes = captions[len(prompts) :]
    assert all(sum(w in s for w in WORDS) >= 2 for s in scenes), scenes
    assert anchor_captions(WORDS, scenes=50, seed=3) == captions  # repeatable
    assert anchor_captions(["dog"], scenes=50) == [t.format("dog") for t in TAG_TEMPLATES]
    # A label the user teaches is free to move: no anchored caption holds it, alone or in a longer tag.
    taught = anchor_captions([*WORDS, "hot dog"], labels=["Dog", "kepler"], scenes=50)
    assert taught and not [c for c in taught if "dog" in c.split() or "dog." in c.split()], taught
    assert len(taught) == len(prompts) - len(TAG_TEMPLATES) + 50


def _student(base: ModelPackage) -> AlbumStudent:
    return AlbumStudent(load_base_text_encoder(base), base.dim, 2, teacher_scale(base), text_only=True)


def test_the_anchor_is_zero_at_the_start_and_pulls_a_moved_text_tower_back(dataset) -> None:
    reinf, base = dataset
    student = _student(base)
    captions = anchor_captions(WORDS, scenes=40)
    student_data(reinf, base, student, captions)  # the anchor's captions join the cached table after the dataset's
    rows = torch.arange(len(reinf.captions), len(reinf.captions) + len(captions))
    anchor = TextAnchor(student, rows, weight=10.0, batch=len(captions))
    student.train()  # dropout on in the trainable layers: the anchor still compares like with like
    assert anchor(student).item() < 1e-6
    top = student.text.layers[-1]
    with torch.no_grad():
        for p in top.parameters():
            p.add_(0.05 * torch.randn_like(p))
    moved = anchor(student).item()
    assert moved > 1e-3
    optimizer = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(30):
        optimizer.zero_grad()
        anchor(student).backward()
        optimizer.step()
    assert anchor(student).item() < moved / 3
    frozen = student.text.layers[0]
    assert all(p.grad is None for p in frozen.parameters())  # only the trainable top moved


def _drift(student: AlbumStudent, base: ModelPackage, texts: list[str]) -> float:
    """Mean 1 - cosine between the student's and the base's embeddings of ``texts``."""
    with torch.no_grad():
        ours = F.normalize(student.eval().encode_text(caption_tokens(base, texts)), dim=-1)
    theirs = torch.from_numpy(base.embed_texts(texts))
    return float((1 - (ours * F.normalize(theirs, dim=-1)).sum(dim=-1)).mean())


def _label_accuracy(student: AlbumStudent, base: ModelPackage, reinf) -> float:
    labels = sorted(reinf.prototypes)
    with torch.no_grad():
        texts = F.normalize(student.encode_text(caption_tokens(base, [SYN_TEMPLATE.format(x) for x in labels])), dim=-1)
        images = F.normalize(reinf.image_emb[:, :, reinf.columns(base.id)].reshape(-1, base.dim), dim=-1)
    truth = torch.tensor([labels.index(x) for x in reinf.labels]).repeat_interleave(reinf.image_emb.shape[1])
    return float(((images @ texts.T).argmax(dim=1) == truth).float().mean())


def test_an_anchored_text_only_finetune_learns_the_labels_and_moves_unseen_captions_less(
    dataset, tmp_path: Path
) -> None:
    """At a learning rate high enough to make the text tower drift, the anchor (over the vocabulary's prompts and
    scenes) keeps real captions it never saw (the corpus's) closer to the base, and the labels are still learnt."""
    reinf, base = dataset
    unseen = [p.caption for p in all_photos()][:40]
    cfg = TrainConfig(steps=40, batch_size=9, lr=1e-3, weight_decay=0.05, warmup=2, w_clip=0.5, w_kd=0.5,
                      log_every=1, checkpoint_every=0, progress=False, resume=False, device="cpu")  # fmt: skip
    outcome = {}
    for weight in (0.0, 30.0):
        torch.manual_seed(0)
        student = _student(base)
        captions = anchor_captions(WORDS, scenes=200) if weight else []
        data = student_data(reinf, base, student, captions)
        rows = torch.arange(len(reinf.captions), len(reinf.captions) + len(captions))
        anchor = TextAnchor(student, rows, weight) if weight else None
        result = train(student, data, cfg, teachers=reinf.teachers, out_dir=tmp_path / str(weight), regularise=anchor)
        assert ("regulariser" in result.records[0]) == bool(weight)
        outcome[weight] = (_drift(student, base, unseen), _label_accuracy(student, base, reinf))
    (free_drift, free_accuracy), (anchored_drift, anchored_accuracy) = outcome[0.0], outcome[30.0]
    assert anchored_drift < free_drift / 2, outcome
    assert anchored_accuracy >= 0.9 and anchored_accuracy >= free_accuracy - 0.1, outcome
