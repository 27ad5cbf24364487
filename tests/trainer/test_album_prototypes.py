"""Label prototypes in the album's reinforced dataset, and the distillation targets of label captions built on them.

No teacher knows a user's label word, so the teachers' text embedding of "a photo of nonna." says nothing about the
label; the reinforced dataset therefore gives each label a prototype per teacher (the mean teacher embedding of the
label's stored augmentations), and the distillation term on label captions targets it. Real photos, the real
starter package as teacher.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.encoders import ModelPackage
from tests.trainer.album_support import reinforced_album
from trainer.finetune.reinforce import SYN_TEMPLATE, label_prototypes, load_album_dataset
from trainer.finetune.starter import AlbumStudent, caption_tokens, load_base_text_encoder, student_data
from trainer.finetune.tuner import teacher_scale
from trainer.reinforce.augment import apply_params
from trainer.reinforce.card import read_card, shard_paths
from trainer.reinforce.safetar import iter_samples
from trainer.reinforce.shards import decode_image, parse_sample
from trainer.reinforce.teachers import PackageTeacher
from trainer.train.config import TrainConfig
from trainer.train.distributed import DistInfo
from trainer.train.loop import train
from trainer.train.loss import Teacher, teacher_targets

torch.set_num_threads(1)

ALBUM = {
    "nonna": ["handwritten_math", "book_page", "ancient_coins"],
    "kepler": ["hubble_deep_field", "moon_surface", "retina_fundus"],
    "fuzzballs": ["chelsea_cat", "coffee", "astronaut"],
}
# The label words are the concept vocabulary too, so synthetic captions repeat the label captions' texts.
VOCABULARY = sorted(ALBUM)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, starter_package_dir: Path) -> tuple[Path, ModelPackage]:
    return reinforced_album(tmp_path_factory.mktemp("album"), ALBUM, starter_package_dir, VOCABULARY, synthetic=3)


def _fresh_teacher_embeddings(dataset_dir: Path, teacher: PackageTeacher) -> dict[str, list[np.ndarray]]:
    """The teacher's embedding of every stored augmentation, recomputed from the shard's photo and crop parameters."""
    out: dict[str, list[np.ndarray]] = {}
    for path in shard_paths(dataset_dir, read_card(dataset_dir)):
        for key, members in iter_samples(path):
            sample = parse_sample(key, members)
            image = decode_image(sample.image)
            views = [apply_params(image, p, teacher.resolution, teacher.interpolation) for p in sample.params]
            out.setdefault(sample.label, []).extend(teacher.embed_views(views))
    return out


def test_prototypes_are_the_mean_teacher_embedding_of_each_labels_augmentations(dataset) -> None:
    dataset_dir, base = dataset
    reinf = load_album_dataset(dataset_dir)
    fresh = _fresh_teacher_embeddings(dataset_dir, PackageTeacher(base, logit_scale=teacher_scale(base)))
    assert sorted(reinf.prototypes) == sorted(ALBUM) == sorted(fresh)
    for label, rows in fresh.items():
        assert len(rows) == 3 * 2  # three photos, two stored augmentations each
        mean = np.mean([r / np.linalg.norm(r) for r in rows], axis=0)
        expected = mean / np.linalg.norm(mean)
        np.testing.assert_allclose(reinf.prototypes[label].numpy(), expected, atol=2e-3)
    # Each label's prototype is nearer to its own photos' augmentations than any other label's prototype is.
    for label, rows in fresh.items():
        sims = {other: float(np.mean(np.asarray(rows) @ p.numpy())) for other, p in reinf.prototypes.items()}
        assert max(sims, key=sims.get) == label


def test_prototypes_are_per_teacher_slices() -> None:
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(4, 3, 5, generator=gen)
    teachers = [Teacher("a", slice(0, 2), 30.0), Teacher("b", slice(2, 5), 100.0)]
    protos = label_prototypes(emb, ["x", "y", "x", "y"], teachers)
    for label, rows in (("x", emb[[0, 2]]), ("y", emb[[1, 3]])):
        for t in teachers:
            part = F.normalize(rows[:, :, t.columns].reshape(-1, t.columns.stop - t.columns.start), dim=-1).mean(0)
            torch.testing.assert_close(protos[label][t.columns], F.normalize(part, dim=0))
    with pytest.raises(ValueError, match="labels"):
        label_prototypes(emb, ["x"], teachers)


def test_label_captions_distill_towards_prototypes_and_synthetic_ones_keep_the_teacher_text(dataset) -> None:
    dataset_dir, base = dataset
    reinf = load_album_dataset(dataset_dir)
    table = reinf.distill_caption_emb()
    real_ids = {i: label for ids, label in zip(reinf.real, reinf.labels, strict=True) for i in ids}
    syn_ids = {i for ids in reinf.syn for i in ids}
    assert real_ids and syn_ids and not set(real_ids) & syn_ids
    for i, label in real_ids.items():
        torch.testing.assert_close(table[i], reinf.prototypes[label])
        assert float(table[i] @ reinf.caption_emb[i]) < 0.99  # the teacher's text embedding was something else
    # Synthetic captions are the teachers' text embeddings, also when the text equals a label caption's.
    syn_list = sorted(syn_ids)
    teacher_text = base.embed_texts([reinf.captions[i] for i in syn_list])
    np.testing.assert_allclose(table[syn_list].numpy(), teacher_text, atol=2e-3)
    shared = {reinf.captions[i] for i in real_ids} & {reinf.captions[i] for i in syn_ids}
    assert shared, "the fixture should repeat a label caption among the synthetic ones"
    assert SYN_TEMPLATE.format("nonna") in {reinf.captions[i] for i in syn_ids}


def test_student_batches_carry_prototype_targets_into_the_distillation_loss(dataset) -> None:
    dataset_dir, base = dataset
    reinf = load_album_dataset(dataset_dir)
    student = AlbumStudent(load_base_text_encoder(base), base.dim, 2, teacher_scale(base))
    data = student_data(reinf, base, student)
    batch = next(data.batches(0, 0, 6, DistInfo(), seed=0))
    expected_text = torch.stack([reinf.prototypes[label] for label in batch["label"]])
    torch.testing.assert_close(batch["text_emb"], expected_text)
    # The teachers' image->label distribution: softmax over the batch's label prototypes at the teacher's scale.
    p_i2t, _ = teacher_targets(batch["image_emb"], batch["text_emb"], reinf.teachers)
    scale = reinf.teachers[0].scale
    logits = scale * F.normalize(batch["image_emb"], dim=-1) @ expected_text.T
    torch.testing.assert_close(p_i2t, logits.softmax(dim=1))


def _train_accuracy(student: AlbumStudent, base: ModelPackage, reinf) -> float:
    """Zero-shot accuracy of the student on its training photos' stored augmentations (label prompt per label)."""
    labels = sorted(reinf.prototypes)
    with torch.no_grad():
        texts = F.normalize(student.encode_text(caption_tokens(base, [SYN_TEMPLATE.format(x) for x in labels])), dim=-1)
        cols = reinf.columns(base.id)
        images = F.normalize(student.encode_image(reinf.image_emb[:, :, cols].reshape(-1, base.dim)), dim=-1)
    truth = torch.tensor([labels.index(x) for x in reinf.labels]).repeat_interleave(reinf.image_emb.shape[1])
    return float(((images @ texts.T).argmax(dim=1) == truth).float().mean())


def test_distilling_label_captions_alone_teaches_the_labels(dataset, tmp_path: Path) -> None:
    """With lambda = 1 (no contrastive term: the labels reach the student only through the teachers' targets),
    prototype targets teach the made-up words; the teachers' own text embeddings of them would not."""
    dataset_dir, base = dataset
    reinf = load_album_dataset(dataset_dir)
    cfg = TrainConfig(steps=25, batch_size=9, lr=1e-3, weight_decay=0.05, warmup=2, w_clip=0.0, w_kd=1.0,
                      use_syn=False, log_every=1, checkpoint_every=0, progress=False, resume=False,
                      device="cpu")  # fmt: skip
    accuracy = {}
    for name, table in (("prototypes", None), ("teacher text", reinf.caption_emb)):
        student = AlbumStudent(load_base_text_encoder(base), base.dim, 2, teacher_scale(base))
        before = _train_accuracy(student.eval(), base, reinf)
        data = student_data(reinf, base, student)
        if table is not None:
            data.caption_emb = table
        train(student, data, cfg, teachers=reinf.teachers, out_dir=tmp_path / name)
        accuracy[name] = (before, _train_accuracy(student.eval(), base, reinf))
    before, after = accuracy["prototypes"]
    assert after >= 0.9 and after > before + 0.2, accuracy
    assert accuracy["teacher text"][1] < after - 0.2, accuracy
