"""The album's reinforced dataset, made and read with ``trainer.reinforce`` (the dataset-reinforcement tool).

Only the *training* photos go in (the split handed over in memory), so validation photos never reach a teacher's
stored knowledge or the student. Real captions are the label in one of core's tag templates (what the app's
tagging and search use). Synthetic captions: DataCompDR's come from a CoCa captioner, which PhotoSeek does
not ship; ``ConceptCaptioner`` names each photo's top concepts from the generic tag vocabulary by the teachers'
ensemble ("a photo of a dog."). They are the teachers' own zero-shot reading of the photo, so distilling on them
keeps the generic knowledge the teachers have. Teacher scales: a card's ``logit_scale`` (MobileCLIP: 100), else
the starter's calibrated value.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from core.encoders import ModelPackage
from core.tagging import TAG_TEMPLATES
from trainer.finetune.album import AlbumPhoto
from trainer.reinforce.augment import AugmentConfig, centre_view
from trainer.reinforce.card import read_card, shard_paths, teacher_slices
from trainer.reinforce.generate import ReinforceConfig, reinforce
from trainer.reinforce.safetar import iter_samples
from trainer.reinforce.shards import parse_sample
from trainer.reinforce.sources import PhotoListSource
from trainer.reinforce.teachers import PackageTeacher
from trainer.train.loss import Teacher

SYN_TEMPLATE = "a photo of {}."
CROP_SCALE = (0.35, 1.0)  # milder than CLIP's 0.08: album photos are few, and the labelled subject must stay in view
MAX_SIDE = 512  # photos are stored in the shards at most this size (crops are re-sized to <= 256 px)
FORMAT = 2
PHOTOS_FILE = "album_photos.json"  # older datasets: sample origin -> sha256 of the album photo it came from

Log = Callable[[str], None]


class ConceptCaptioner:
    """Captions without a captioner model: the teachers' top concepts from a vocabulary, as short sentences."""

    id = "photoseek-concepts"

    def __init__(self, teachers: Sequence[PackageTeacher], vocabulary: Sequence[str], template: str = SYN_TEMPLATE):
        self.teachers = list(teachers)
        self.vocabulary = list(vocabulary)
        self.template = template
        self._matrices: list[np.ndarray] | None = None

    def caption(self, images: Sequence[Image.Image], count: int) -> list[list[str]]:
        """The ``count`` concepts whose prompt has the highest summed similarity over the teachers, per image."""
        prompts = [self.template.format(v) for v in self.vocabulary]
        if self._matrices is None:
            self._matrices = [t.embed_texts(prompts) for t in self.teachers]
        scores = sum(
            t.embed_views([centre_view(image, t.resolution, t.interpolation) for image in images]) @ m.T
            for t, m in zip(self.teachers, self._matrices, strict=True)
        )
        order = np.argsort(-np.asarray(scores), axis=1, kind="stable")[:, :count]
        return [[prompts[j] for j in row] for row in order]

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "zero-shot concepts (no captioner model): top vocabulary entries by the teachers' ensemble",
            "teachers": [t.id for t in self.teachers],
            "vocabulary_size": len(self.vocabulary),
            "template": self.template,
        }


@dataclass
class AlbumReinforcement:
    """A reinforced album dataset in memory: every stored augmentation's and caption's teacher embeddings."""

    teachers: list[Teacher]
    image_emb: torch.Tensor  # [N, K, ΣD]
    captions: list[str]
    caption_emb: torch.Tensor  # [C, ΣD]
    real: list[list[int]]
    syn: list[list[int]]
    labels: list[str]
    keys: list[str]  # sha256 of each sample's album photo
    prototypes: dict[str, torch.Tensor] = field(default_factory=dict)  # label -> [ΣD], see label_prototypes

    def __post_init__(self) -> None:
        if not self.prototypes:
            self.prototypes = label_prototypes(self.image_emb, self.labels, self.teachers)

    def columns(self, teacher_id: str) -> slice:
        """The columns of one teacher's embeddings."""
        return next(t.columns for t in self.teachers if t.name == teacher_id)

    def distill_caption_emb(self) -> torch.Tensor:
        """The caption table's teacher embeddings for distillation: a real (label) caption's row is its label's
        prototype, synthetic captions keep the teachers' text embeddings.

        No teacher knows a user's word ("Miso"), so its text embedding of "a photo of Miso." carries nothing about
        the label; the prototype is what each teacher does know about it: where its photos lie. With it the
        distillation term on label captions (``lam > 0``) targets the teachers' nearest-prototype distribution
        over the batch's labels instead of their ignorance.
        """
        table = self.caption_emb.clone()
        for ids, label in zip(self.real, self.labels, strict=True):
            for i in ids:
                table[i] = self.prototypes[label]
        return table


def label_prototypes(
    image_emb: torch.Tensor, labels: Sequence[str], teachers: Sequence[Teacher]
) -> dict[str, torch.Tensor]:
    """Each label's class prototype in every teacher's space: the normalised mean of that teacher's (normalised)
    embeddings of all stored augmentations of the label's training photos, concatenated over teachers ``[ΣD]``.

    ``image_emb`` is ``[N, K, ΣD]`` (sample, augmentation), ``labels`` the N samples' labels.
    """
    if image_emb.shape[0] != len(labels):
        raise ValueError(f"{image_emb.shape[0]} samples but {len(labels)} labels")
    out: dict[str, torch.Tensor] = {}
    for label in sorted(set(labels)):
        rows = image_emb[[i for i, name in enumerate(labels) if name == label]].reshape(-1, image_emb.shape[-1])
        parts = [F.normalize(F.normalize(rows[:, t.columns].float(), dim=-1).mean(dim=0), dim=0) for t in teachers]
        out[label] = torch.cat(parts)
    return out


def label_prompts(label: str) -> list[str]:
    """A label in every tag template: the prompts zero-shot classification averages, as the app's tagging does."""
    return [template.format(label) for template in TAG_TEMPLATES]


def cache_key(photos: Sequence[AlbumPhoto], teachers: Sequence[ModelPackage], **settings: object) -> str:
    """Identity of a reinforced album dataset: photos, labels, teacher packages (file hashes) and settings."""
    h = hashlib.sha256(f"album-reinforcement v{FORMAT}\n".encode())
    for p in sorted(photos, key=lambda p: (p.label, p.sha256)):
        h.update(f"{p.label}\0{p.sha256}\n".encode())
    for t in teachers:
        h.update(f"{t.id}\0{sorted(t.card.files.items())}\n".encode())
    h.update(repr(sorted(settings.items())).encode())
    return h.hexdigest()[:24]


def build_album_dataset(
    photos: Sequence[AlbumPhoto],
    out_dir: Path,
    teachers: Sequence[tuple[ModelPackage, float]],
    vocabulary: Sequence[str],
    *,
    augmentations: int = 4,
    synthetic: int = 3,
    seed: int = 0,
    log: Log = lambda _m: None,
    on_images: Callable[[int], None] | None = None,
) -> Path:
    """Reinforce ``photos`` into ``out_dir`` with ``teachers`` (package, logit scale); returns ``out_dir``.
    ``on_images`` hears how many more photos were reinforced."""
    reinforce_teachers = [PackageTeacher(package, logit_scale=scale) for package, scale in teachers]
    ordered = sorted(photos, key=lambda p: (p.label, p.sha256))
    # Each sample's origin is its photo's sha256: the key the student's batches and the split agree on.
    source = PhotoListSource(
        [(p.path, p.label, p.sha256) for p in ordered], shard_size=256, max_side=MAX_SIDE, seed=seed,
        templates=TAG_TEMPLATES,
    )  # fmt: skip
    config = ReinforceConfig(
        augmentations=augmentations, captions=synthetic, seed=seed, max_side=MAX_SIDE,
        augment=AugmentConfig(scale=CROP_SCALE),
    )  # fmt: skip
    captioner = ConceptCaptioner(reinforce_teachers, vocabulary) if synthetic else None
    staged = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staged, ignore_errors=True)
    reinforce(
        source, staged, reinforce_teachers, config, captioner=captioner, rank=0, world_size=1, log=log,
        on_images=on_images,
    )  # fmt: skip
    shutil.rmtree(out_dir, ignore_errors=True)
    staged.rename(out_dir)
    return out_dir


def load_album_dataset(dataset_dir: Path) -> AlbumReinforcement:
    """Read every sample of a reinforced album dataset: all stored augmentations, the real and synthetic captions,
    and each label's prototype per teacher (computed from the stored augmentation embeddings)."""
    card = read_card(dataset_dir)
    teachers = [Teacher(tid, columns, scale) for tid, columns, scale in teacher_slices(card)]
    captions: list[str] = []
    caption_rows: list[np.ndarray] = []
    # Real and synthetic captions get their own rows even when the texts agree (a label folder named like a
    # vocabulary concept), because their distillation targets differ (see distill_caption_emb).
    index: dict[tuple[bool, str], int] = {}

    def caption_id(text: str, emb: np.ndarray, real_caption: bool) -> int:
        if (real_caption, text) not in index:
            index[(real_caption, text)] = len(captions)
            captions.append(text)
            caption_rows.append(np.asarray(emb, dtype=np.float32))
        return index[(real_caption, text)]

    # Datasets written before the split was handed over in memory map their symlinks' names to sha256 here.
    photos_file = Path(dataset_dir) / PHOTOS_FILE
    origins = json.loads(photos_file.read_text(encoding="utf-8")) if photos_file.is_file() else {}
    image_emb, real, syn, labels, keys = [], [], [], [], []
    for path in shard_paths(dataset_dir, card):
        for key, members in iter_samples(path):
            sample = parse_sample(key, members)
            image_emb.append(np.asarray(sample.image_emb, dtype=np.float32))
            real.append([caption_id(sample.caption, sample.text_emb[0], True)])
            syn.append([caption_id(text, sample.syn_embedding(i), False) for i, text in enumerate(sample.syn_captions)])
            labels.append(sample.label)
            origin = sample.meta.get("origin")
            keys.append(origins.get(origin, origin or sample.key))
    if not image_emb:
        raise ValueError(f"{dataset_dir}: the reinforced dataset holds no samples")
    return AlbumReinforcement(
        teachers=teachers,
        image_emb=torch.from_numpy(np.stack(image_emb)),
        captions=captions,
        caption_emb=torch.from_numpy(np.stack(caption_rows)),
        real=real,
        syn=syn,
        labels=labels,
        keys=keys,
    )
