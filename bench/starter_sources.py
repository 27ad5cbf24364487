"""Measure the starter's image-side sources on the real-photo corpus: towers (Lite0/1/2) and evidence weights.

    python bench/starter_sources.py --package PACKAGE_DIR [--cache DIR] [--towers lite0,lite1,lite2]

For every tower it runs the classifier (PyTorch) on each photo's two views, then evaluates, in numpy, ConSE alone and
ConSE plus each evidence source (trainer/starter/evidence.py) at several weights, and the combination the build uses:
caption -> photo R@1/5/10 overall and per query group, and tag precision / recall against the person-given tags
(core's tagger rule: z >= 2.5 among the 8 best). Every figure is given for all photos and for two halves split
by query group (seeded), so a weight is chosen on one half and checked on the other. The text side (class, concept,
caption and tag embeddings) is the package's MiniLM text encoder. This is how trainer/starter/build.py's weights were
chosen; the numbers in its comments come from this script. Set PHOTOSEEK_CORPUS_ROOTS as for bench/eval_retrieval.py.
The held-out photos (tests/photo_corpus_tags.HELD_OUT) are left out here, so that no setting is ever chosen on them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.encoders import ModelPackage  # noqa: E402
from core.model_card import PreprocessSpec, ViewSpec  # noqa: E402
from core.preprocess import preprocess  # noqa: E402
from core.tagging import TAG_TEMPLATES, default_vocabulary  # noqa: E402
from tests.photo_corpus import available_photos, load_photo  # noqa: E402
from tests.photo_corpus_tags import HELD_OUT, QUERY_GROUPS, groups_of  # noqa: E402
from trainer.starter import build  # noqa: E402
from trainer.starter.efficientnet_lite import CROP_FRACTION, INPUT_MEAN, INPUT_STD, load_efficientnet_lite  # noqa: E402
from trainer.starter.evidence import (  # noqa: E402
    FACE_WORDS,
    LOW_LIGHT_WORD,
    MONOCHROME_WORD,
    FaceEvidence,
    LowLightEvidence,
    MonochromeEvidence,
    ancestor_table,
)
from trainer.starter.imagenet_prompts import PROMPT_TEMPLATES, imagenet_class_prompts  # noqa: E402
from trainer.starter.yunet import load_yunet  # noqa: E402

RESOLUTION = {"lite0": 224, "lite1": 240, "lite2": 260}


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def embed_prompts(text: ModelPackage, prompts: list[list[str]]) -> np.ndarray:
    flat = [p for group in prompts for p in group]
    vectors = np.concatenate([text.embed_texts(flat[i : i + 256]) for i in range(0, len(flat), 256)])
    return unit(vectors.reshape(len(prompts), len(prompts[0]), -1).mean(axis=1))


def concept_embeddings(text: ModelPackage, words) -> np.ndarray:
    return embed_prompts(text, [[t.format(w) for t in PROMPT_TEMPLATES] for w in words])


def class_embeddings(text: ModelPackage, cache: Path) -> np.ndarray:
    path = cache / "class_embeddings.npy"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, embed_prompts(text, imagenet_class_prompts()))
    return np.load(path)


@torch.inference_mode()
def photo_features(tower: str, images: list) -> dict[str, np.ndarray]:
    """Per photo and view: class logits, face scores [5], monochrome and low-light scores, for one tower's views."""
    mean, std = INPUT_MEAN / 255.0, INPUT_STD / 255.0
    spec = PreprocessSpec(
        RESOLUTION[tower],
        "bicubic",
        (mean,) * 3,
        (std,) * 3,
        (ViewSpec("shortest", CROP_FRACTION), ViewSpec("squash", 1.0)),
    )
    pixels = torch.from_numpy(np.stack([preprocess(image, spec) for image in images]))
    n, views = pixels.shape[:2]
    flat = pixels.reshape(n * views, *pixels.shape[2:])
    net = load_efficientnet_lite(tower)
    logits = torch.cat([net(flat[i : i + 16]) for i in range(0, len(flat), 16)])
    rgb = (flat * std + mean).clamp(0, 1)
    faces = FaceEvidence(load_yunet(), torch.eye(len(FACE_WORDS)), 1.0, build.FACE_THRESHOLD)
    mono = MonochromeEvidence(torch.ones(1), 1.0, build.MONOCHROME_SPREAD, build.MONOCHROME_SOFTNESS)
    low = LowLightEvidence(torch.ones(1), 1.0, build.LOW_LIGHT_LUMA, build.LOW_LIGHT_SOFTNESS)
    return {
        "logits": logits.numpy().reshape(n, views, -1),
        "faces": torch.cat([faces.scores(rgb[i : i + 16]) for i in range(0, len(rgb), 16)])
        .numpy()
        .reshape(n, views, -1),
        "mono": mono(rgb).numpy().reshape(n, views, 1),
        "low": low(rgb).numpy().reshape(n, views, 1),
    }


def softmax(x: np.ndarray, temperature: float) -> np.ndarray:
    z = x / temperature
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Mixer:
    """The starter image embedding rebuilt in numpy from cached features, for any source weights."""

    def __init__(self, text: ModelPackage, cache: Path) -> None:
        self.classes = class_embeddings(text, cache)
        words, matrix = ancestor_table()
        self.ancestors, self.ancestor_vectors = matrix.numpy(), concept_embeddings(text, words)
        self.mono_vector = concept_embeddings(text, [MONOCHROME_WORD])
        self.face_vectors = concept_embeddings(text, FACE_WORDS)
        self.low_vector = concept_embeddings(text, [LOW_LIGHT_WORD])

    def embed(self, f: dict[str, np.ndarray], ancestors: float, mono: float, faces: float, low: float) -> np.ndarray:
        probs = softmax(f["logits"], build.TEMPERATURE)
        top = np.argsort(-probs, axis=-1)[..., : build.TOP_K]
        mix = unit((np.take_along_axis(probs, top, -1)[..., None] * self.classes[top]).sum(axis=-2))
        mass = softmax(f["logits"], 1.0) @ self.ancestors
        gated = np.clip(mass - build.ANCESTOR_GATE, 0, None) / (1 - build.ANCESTOR_GATE)
        mix = mix + ancestors * gated @ self.ancestor_vectors + mono * f["mono"] @ self.mono_vector
        mix = mix + faces * f["faces"] @ self.face_vectors + low * f["low"] @ self.low_vector
        return unit(mix.mean(axis=1))


def halves(photos) -> np.ndarray:
    """0 or 1 per photo: each query group (a photo's first) split in two at random, seeded."""
    rng = np.random.default_rng(1)
    half = np.zeros(len(photos), int)
    for group in (*QUERY_GROUPS, "other"):
        members = rng.permutation([i for i, p in enumerate(photos) if groups_of(p.tags)[0] == group])
        half[members[1::2]] = 1
    return half


def evaluate(images: np.ndarray, captions: np.ndarray, tag_matrix: np.ndarray, vocab: list[str], photos) -> str:
    """All photos' figures, then R@5 (overall and night / dusk) on each half."""
    return " | ".join(
        [_evaluate(images, captions, tag_matrix, vocab, photos)]
        + [_half_recall(images, captions, photos, halves(photos) == h) for h in (0, 1)]
    )


def _ranks(images: np.ndarray, captions: np.ndarray) -> np.ndarray:
    return np.array([int(np.sum(row > row[i])) for i, row in enumerate(captions @ images.T)])


def _half_recall(images: np.ndarray, captions: np.ndarray, photos, half: np.ndarray) -> str:
    ranks = _ranks(images, captions)
    night = half & np.array(["night / dusk" in groups_of(p.tags) for p in photos])
    return f"half R@5 {np.mean(ranks[half] < 5):.2f} night {np.mean(ranks[night] < 5):.2f}"


def _evaluate(images: np.ndarray, captions: np.ndarray, tag_matrix: np.ndarray, vocab: list[str], photos) -> str:
    ranks = _ranks(images, captions)
    scores = images @ tag_matrix.T
    z = (scores - scores.mean(1, keepdims=True)) / (scores.std(1, keepdims=True) + 1e-6)
    hits = given = wanted = 0
    for row, zrow, photo in zip(scores, z, photos, strict=True):
        chosen = {vocab[i] for i in np.argsort(-row)[:8] if zrow[i] >= 2.5}
        truth = set(photo.tags) & set(vocab)
        hits, given, wanted = hits + len(chosen & truth), given + len(chosen), wanted + len(truth)
    parts = [f"R@{k} {np.mean(ranks < k):.2f}" for k in (1, 5, 10)]
    for group in ("people", "night / dusk", "black and white", "indoor", "animals"):
        mask = np.array([group in groups_of(p.tags) for p in photos])
        parts.append(f"{group.split()[0]} R@5 {np.mean(ranks[mask] < 5):.2f}")
    return "  ".join(parts + [f"tags P {hits / max(given, 1):.2f} R {hits / max(wanted, 1):.2f}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", required=True, help="a starter package folder (its text encoder is used)")
    parser.add_argument("--cache", default=".cache/starter-sources")
    parser.add_argument("--towers", default="lite0,lite1,lite2")
    args = parser.parse_args()
    text = ModelPackage(Path(args.package))
    photos = [p for p in available_photos() if p.name not in HELD_OUT]  # never tune on the held-out photos
    images = [load_photo(p.name, max_side=1024) for p in photos]
    vocab = default_vocabulary()
    captions = text.embed_texts([p.caption for p in photos])
    tag_matrix = embed_prompts(text, [[t.format(v) for t in TAG_TEMPLATES] for v in vocab])
    mixer = Mixer(text, Path(args.cache))
    chosen = (build.ANCESTOR_WEIGHT, build.MONOCHROME_WEIGHT, build.FACE_WEIGHT, build.LOW_LIGHT_WEIGHT)
    print(f"{len(photos)} photos; build weights (ancestors, monochrome, faces, low light) = {chosen}")
    for tower in args.towers.split(","):
        features = photo_features(tower, images)
        settings = [("ConSE alone", (0, 0, 0, 0))]
        settings += [
            (f"+ {name} {w}", tuple(w if i == j else 0 for j in range(4)))
            for i, name in enumerate(("ancestors", "monochrome", "faces", "low light"))
            for w in (0.2, 0.4, 0.8)
        ]
        settings += [(f"build's mix, low light {w}", (*chosen[:3], w)) for w in (0, 0.2, 0.4, 0.8)]
        for label, weights in settings:
            print(
                f"{tower} {label:<22} {evaluate(mixer.embed(features, *weights), captions, tag_matrix, vocab, photos)}"
            )


if __name__ == "__main__":
    main()
