"""The reinforced dataset of an album: stored augmentations, teacher embeddings and synthetic captions.

Per training photo: augmentation 0 is the photo itself, the others are seeded random resized crops (scale
0.35-1, aspect 3/4-4/3), horizontal flips and mild colour jitter, made with Pillow. Every teacher (an installed
model package, run by core with its own preprocessing) embeds every augmentation once; the embeddings are stored
side by side (``ΣD`` columns, each teacher's part unit length, as in DataCompDR).

Captions: the *real* caption of a photo is its label in one of core's tag templates (what the app's tagging and
search use); the *synthetic* captions stand in for DataCompDR's CoCa captions, which need a captioner this
machine does not have: the teachers' ensemble names the photo's top concepts from the generic tag vocabulary
("a photo of a dog."), so distilling on them keeps the generic knowledge the teachers have.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from core.encoders import ModelPackage
from core.tagging import TAG_TEMPLATES
from trainer.train.album import AlbumPhoto
from trainer.train.loss import Teacher

SYN_TEMPLATE = "a photo of {}."
CROP_SCALE = (0.35, 1.0)  # milder than CLIP's 0.08: album photos are few, and a label must stay visible
CROP_RATIO = (3 / 4, 4 / 3)
JITTER = 0.2
FORMAT = 1

Log = Callable[[str], None]


@dataclass(frozen=True)
class Augmentation:
    """One stored augmentation: crop box (fractions of width/height), flip, colour factors."""

    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    flip: bool = False
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0

    def apply(self, image: Image.Image) -> Image.Image:
        w, h = image.size
        left, top, right, bottom = self.box
        out = image.crop((round(left * w), round(top * h), round(right * w), round(bottom * h)))
        if self.flip:
            out = ImageOps.mirror(out)
        for enhance, factor in (
            (ImageEnhance.Brightness, self.brightness),
            (ImageEnhance.Contrast, self.contrast),
            (ImageEnhance.Color, self.saturation),
        ):
            if factor != 1.0:
                out = enhance(out).enhance(factor)
        return out


def sample_augmentation(rng: random.Random) -> Augmentation:
    """A random resized crop (area and aspect as above, relative to the photo), flip and colour jitter."""
    area = rng.uniform(*CROP_SCALE)
    aspect = np.exp(rng.uniform(np.log(CROP_RATIO[0]), np.log(CROP_RATIO[1])))
    w = min(1.0, float(np.sqrt(area * aspect)))
    h = min(1.0, float(np.sqrt(area / aspect)))
    left, top = rng.uniform(0.0, 1.0 - w), rng.uniform(0.0, 1.0 - h)
    return Augmentation(
        (left, top, left + w, top + h),
        rng.random() < 0.5,
        *(rng.uniform(1 - JITTER, 1 + JITTER) for _ in range(3)),
    )


@dataclass
class AlbumReinforcement:
    """Teacher knowledge about the training photos, computed once (and cached) before training."""

    teacher_ids: list[str]
    teacher_dims: list[int]
    teacher_scales: list[float]
    image_emb: torch.Tensor  # [N, A, ΣD]
    captions: list[str]
    caption_emb: torch.Tensor  # [C, ΣD]
    real: list[list[int]]
    syn: list[list[int]]
    labels: list[str]
    keys: list[str]
    augmentations: list[list[Augmentation]]

    def teachers(self) -> list[Teacher]:
        """The loss's view of the teachers: their columns and fixed logit scales."""
        out, start = [], 0
        for tid, dim, scale in zip(self.teacher_ids, self.teacher_dims, self.teacher_scales, strict=True):
            out.append(Teacher(tid, slice(start, start + dim), scale))
            start += dim
        return out

    def columns(self, teacher_id: str) -> slice:
        """The columns of one teacher's embeddings."""
        return next(t.columns for t in self.teachers() if t.name == teacher_id)


def label_prompts(label: str) -> list[str]:
    """The real captions of a label: core's tag templates, so training matches how the app tags and searches."""
    return [template.format(label) for template in TAG_TEMPLATES]


def cache_key(photos: Sequence[AlbumPhoto], teachers: Sequence[ModelPackage], **settings: object) -> str:
    """Identity of a reinforced dataset: photos, labels, teacher packages (file hashes) and settings."""
    h = hashlib.sha256(f"album-reinforcement v{FORMAT}\n".encode())
    for p in photos:
        h.update(f"{p.label}\0{p.sha256}\n".encode())
    for t in teachers:
        h.update(f"{t.id}\0{sorted(t.card.files.items())}\n".encode())
    h.update(repr(sorted(settings.items())).encode())
    return h.hexdigest()[:24]


def _embed_texts(teacher: ModelPackage, texts: Sequence[str], batch: int = 128) -> np.ndarray:
    return np.concatenate([teacher.embed_texts(list(texts[i : i + batch])) for i in range(0, len(texts), batch)])


def reinforce_album(
    photos: Sequence[AlbumPhoto],
    images: dict[Path, Image.Image],
    teachers: Sequence[ModelPackage],
    teacher_scales: Sequence[float],
    vocabulary: Sequence[str],
    *,
    augmentations: int = 4,
    synthetic: int = 3,
    seed: int = 0,
    log: Log = lambda _m: None,
) -> AlbumReinforcement:
    """Compute the album's reinforced dataset: ``augmentations`` views per photo embedded by every teacher, the
    label prompts and ``synthetic`` vocabulary captions per photo embedded by every teacher."""
    if augmentations < 1 or synthetic < 0 or not teachers:
        raise ValueError("need at least one augmentation and one teacher, and a non-negative caption count")
    rng = random.Random(seed)
    augs = [[Augmentation()] + [sample_augmentation(rng) for _ in range(augmentations - 1)] for _ in photos]
    per_teacher = []
    for teacher in teachers:
        log(f"teacher {teacher.id}: embedding {len(photos)} photos x {augmentations} augmentations")
        rows = []
        for photo, photo_augs in zip(photos, augs, strict=True):
            rows.append(teacher.embed_images([a.apply(images[photo.path]) for a in photo_augs]))
        per_teacher.append(np.stack(rows))  # [N, A, D]
    image_emb = np.concatenate(per_teacher, axis=-1)

    # Synthetic captions: the ensemble's top vocabulary concepts for the un-augmented photo.
    vocab_vectors = [_embed_texts(t, [SYN_TEMPLATE.format(v) for v in vocabulary]) for t in teachers]
    scores = sum(emb[:, 0, :] @ voc.T for emb, voc in zip(per_teacher, vocab_vectors, strict=True))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :synthetic] if synthetic else np.zeros((len(photos), 0), int)

    captions: list[str] = []
    index: dict[str, int] = {}

    def caption_id(text: str) -> int:
        if text not in index:
            index[text] = len(captions)
            captions.append(text)
        return index[text]

    real = [[caption_id(c) for c in label_prompts(p.label)] for p in photos]
    syn = [[caption_id(SYN_TEMPLATE.format(vocabulary[j])) for j in row] for row in top]
    log(f"embedding {len(captions)} captions with {len(teachers)} teacher(s)")
    caption_emb = np.concatenate([_embed_texts(t, captions) for t in teachers], axis=-1)
    return AlbumReinforcement(
        teacher_ids=[t.id for t in teachers],
        teacher_dims=[t.dim for t in teachers],
        teacher_scales=[float(s) for s in teacher_scales],
        image_emb=torch.from_numpy(image_emb),
        captions=captions,
        caption_emb=torch.from_numpy(caption_emb),
        real=real,
        syn=syn,
        labels=[p.label for p in photos],
        keys=[p.sha256 for p in photos],
        augmentations=augs,
    )


def save_reinforcement(path: Path, data: AlbumReinforcement) -> Path:
    """Cache a reinforced album dataset (tensors and plain values only, so it loads with weights_only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in vars(data).items() if k != "augmentations"}
    state["augmentations"] = [[list(vars(a).values()) for a in row] for row in data.augmentations]
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def load_reinforcement(path: Path) -> AlbumReinforcement:
    """Read what ``save_reinforcement`` wrote."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    state["augmentations"] = [
        [Augmentation(tuple(a[0]), bool(a[1]), float(a[2]), float(a[3]), float(a[4])) for a in row]
        for row in state["augmentations"]
    ]
    return AlbumReinforcement(**state)
