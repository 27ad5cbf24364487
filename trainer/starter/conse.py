"""ConSE image tower: an ImageNet classifier's top-k probabilities mix the text embeddings of its classes.

Norouzi et al. 2014, "Zero-shot learning by convex combination of semantic embeddings". The image lands
in the sentence-embedding space of the text tower, so any text query can be compared with it.
"""

from __future__ import annotations

import torch
from torch import nn


class ConSEImageEncoder(nn.Module):
    """classifier logits -> softmax(logits / T) -> top-k -> sum_k p_k * class_embedding_k (not normalised)."""

    def __init__(
        self, classifier: nn.Module, class_embeddings: torch.Tensor, top_k: int = 20, temperature: float = 3.0
    ):
        super().__init__()
        self.classifier = classifier
        self.register_buffer("class_embeddings", class_embeddings.float())  # [classes, D], unit rows
        self.top_k = top_k
        self.temperature = temperature

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(self.classifier(pixels) / self.temperature, dim=-1)  # (N, C)
        weights, classes = probs.topk(self.top_k, dim=-1)  # (N, k)
        return (weights.unsqueeze(-1) * self.class_embeddings[classes]).sum(dim=1)  # (N, D)
