"""ConSE image tower: an ImageNet classifier's top-k probabilities mix the text embeddings of its classes.

Norouzi et al. 2014, "Zero-shot learning by convex combination of semantic embeddings". The image lands
in the sentence-embedding space of the text tower, so any text query can be compared with it. The starter adds
concept evidence ImageNet lacks (trainer/starter/evidence.py) to the unit ConSE vector.
"""

from __future__ import annotations

import torch
from torch import nn


class ConSEImageEncoder(nn.Module):
    """classifier logits -> softmax(logits / T) -> top-k -> sum_k p_k * class_embedding_k, + evidence.

    Without evidence modules the output is ConSE's plain (not normalised) mix; with them, the ConSE vector is made
    unit-length first so each source's weight means the same on every photo. `mean` and `std` undo the input
    normalisation for the sources that read pixels (RGB in [0, 1]).
    """

    def __init__(
        self,
        classifier: nn.Module,
        class_embeddings: torch.Tensor,
        top_k: int = 20,
        temperature: float = 3.0,
        *,
        ancestors: nn.Module | None = None,
        pixel_sources: tuple[nn.Module, ...] = (),
        mean: float = 0.5,
        std: float = 0.5,
    ):
        super().__init__()
        self.classifier = classifier
        self.register_buffer("class_embeddings", class_embeddings.float())  # [classes, D], unit rows
        self.top_k = top_k
        self.temperature = temperature
        self.ancestors = ancestors
        self.pixel_sources = nn.ModuleList(pixel_sources)
        self.mean = mean
        self.std = std

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(pixels)
        probs = torch.softmax(logits / self.temperature, dim=-1)  # (N, C)
        weights, classes = probs.topk(self.top_k, dim=-1)  # (N, k)
        mix = (weights.unsqueeze(-1) * self.class_embeddings[classes]).sum(dim=1)  # (N, D)
        if self.ancestors is None and not self.pixel_sources:
            return mix
        mix = torch.nn.functional.normalize(mix, dim=-1)
        if self.ancestors is not None:
            mix = mix + self.ancestors(torch.softmax(logits, dim=-1))
        rgb = (pixels * self.std + self.mean).clamp(0, 1)
        for source in self.pixel_sources:
            mix = mix + source(rgb)
        return mix
