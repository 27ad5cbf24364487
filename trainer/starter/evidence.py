"""Concept evidence ImageNet lacks, mixed into the starter's embedding beside ConSE's class mass.

Each source gives per-image scores in [0, 1] for a few concepts; the image graph adds `weight x score x concept text
embedding` to the unit ConSE vector, so the evidence lands in the same MiniLM space as every query:

- ancestors: ImageNet class probability summed into WordNet ancestors (animal, dog, vehicle, food...; the table in
  assets/imagenet_ancestors.tsv), counted only above a gate, so "an animal" finds the dog without pulling every
  photo towards every generic word;
- monochrome: the image's mean colourfulness (max - min channel) is near zero: "black and white photo";
- low light: the top third of the view (where the sky is, outdoors) is dark on average: "night";
- faces: YuNet (trainer/starter/yunet.py) on the view: person, people, portrait, group photo, crowd.

Weights, gates and thresholds were measured on the real-photo corpus (bench/starter_sources.py), not tuned by hand.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.paths import assets_dir
from trainer.starter.yunet import INPUT_MULTIPLE, YuNet, face_evidence

ANCESTORS_FILE = "imagenet_ancestors.tsv"
MONOCHROME_WORD = "black and white photo"
LOW_LIGHT_WORD = "night"
FACE_WORDS = ("person", "people", "portrait", "group photo", "crowd")
PEAK_THRESHOLD = 0.5  # a score peak this high counts as a face, for the count and the largest face
PORTRAIT_SHARE = 0.02  # one face covering this share of the view makes a portrait


def ancestor_table(path: Path | None = None) -> tuple[list[str], Tensor]:
    """Concept words and the [1000, concepts] 0/1 matrix of which ImageNet classes fall under each."""
    rows = []
    for line in (path or assets_dir() / ANCESTORS_FILE).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            index, concepts = line.split("\t")
            rows.append((int(index), [c for c in concepts.split(",") if c]))
    words = sorted({c for _, concepts in rows for c in concepts})
    matrix = torch.zeros(len(rows), len(words))
    for index, concepts in rows:
        for concept in concepts:
            matrix[index, words.index(concept)] = 1.0
    if len(rows) != 1000 or sorted(i for i, _ in rows) != list(range(1000)):
        raise ValueError(f"{ANCESTORS_FILE} must list the 1000 ImageNet classes once each")
    return words, matrix


class AncestorEvidence(nn.Module):
    """Class probabilities -> the concepts whose summed mass clears `gate`, rescaled to [0, 1]."""

    def __init__(self, matrix: Tensor, embeddings: Tensor, weight: float, gate: float) -> None:
        super().__init__()
        self.register_buffer("matrix", matrix.float())  # [classes, concepts]
        self.register_buffer("embeddings", embeddings.float())  # [concepts, D]
        self.weight = weight
        self.gate = gate

    def forward(self, probs: Tensor) -> Tensor:
        mass = probs @ self.matrix
        return self.weight * ((mass - self.gate).clamp(min=0) / (1 - self.gate)) @ self.embeddings


class MonochromeEvidence(nn.Module):
    """RGB in [0, 1] -> "black and white photo" when the mean channel spread is below `threshold`."""

    def __init__(self, embedding: Tensor, weight: float, threshold: float, softness: float) -> None:
        super().__init__()
        self.register_buffer("embedding", embedding.float())  # [D]
        self.weight = weight
        self.threshold = threshold
        self.softness = softness

    def forward(self, rgb: Tensor) -> Tensor:
        spread = (rgb.amax(dim=1) - rgb.amin(dim=1)).mean(dim=(1, 2))
        score = torch.sigmoid((self.threshold - spread) / self.softness)
        return self.weight * score[:, None] * self.embedding[None, :]


class LowLightEvidence(nn.Module):
    """RGB in [0, 1] -> "night" when the mean luma of the view's top third is below `threshold`.

    The top third holds the sky in most outdoor photos, so a dark one says night, dusk or low light, whatever the lit
    subject below it (city lights, a launch pad's lamps) does; a dark backdrop behind a close-up fires it as well.
    """

    def __init__(self, embedding: Tensor, weight: float, threshold: float, softness: float) -> None:
        super().__init__()
        self.register_buffer("embedding", embedding.float())  # [D]
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1))  # ITU-R BT.601
        self.weight = weight
        self.threshold = threshold
        self.softness = softness

    def scores(self, rgb: Tensor) -> Tensor:
        """[N] in [0, 1]."""
        top = rgb[:, :, : rgb.shape[2] // 3]
        brightness = (top * self.luma).sum(dim=1).mean(dim=(1, 2))
        return torch.sigmoid((self.threshold - brightness) / self.softness)

    def forward(self, rgb: Tensor) -> Tensor:
        return self.weight * self.scores(rgb)[:, None] * self.embedding[None, :]


class FaceEvidence(nn.Module):
    """RGB in [0, 1] -> YuNet on the view -> person / people / portrait / group photo / crowd scores."""

    def __init__(self, detector: YuNet, embeddings: Tensor, weight: float, threshold: float) -> None:
        super().__init__()
        self.detector = detector
        self.register_buffer("embeddings", embeddings.float())  # [len(FACE_WORDS), D]
        self.weight = weight
        self.threshold = threshold  # a face is present above this best score

    def scores(self, rgb: Tensor) -> Tensor:
        """[N, len(FACE_WORDS)] in [0, 1]."""
        size = rgb.shape[-1] // INPUT_MULTIPLE * INPUT_MULTIPLE
        if size != rgb.shape[-1] or rgb.shape[-2] != rgb.shape[-1]:
            rgb = F.interpolate(rgb, size=(size, size), mode="bilinear", align_corners=False)
        bgr = rgb.flip(1) * 255.0
        best, count, share = face_evidence(self.detector(bgr), size, size, PEAK_THRESHOLD).unbind(dim=1)
        present = torch.sigmoid((best - self.threshold) / 0.03)
        several = torch.sigmoid((count - 1.5) * 4)
        portrait = torch.sigmoid((share - PORTRAIT_SHARE) / (PORTRAIT_SHARE / 4)) * (1 - several)
        group = torch.sigmoid((count - 2.5) * 4)
        crowd = torch.sigmoid((count - 5.5) * 4)
        return present[:, None] * torch.stack([torch.ones_like(present), several, portrait, group, crowd], 1)

    def forward(self, rgb: Tensor) -> Tensor:
        return self.weight * self.scores(rgb) @ self.embeddings
