"""Album metrics: zero-shot label accuracy, label-query retrieval, and a forgetting check on generic concepts.

* Zero-shot classification: each photo gets the label whose prompt embedding (mean over core's tag templates, as
  the app's tagging computes it) is most similar. Reported overall, balanced (mean over labels) and per label.
* Retrieval: the bare label as a search query (what a user types), ranked over the photos; recall@k counts the
  label's photos in the top k, divided by min(k, number of them), so 1.0 is perfect at every k; plus mean AP.
* Forgetting: how the model ranks the generic tag vocabulary for each photo, compared with the base model:
  overlap of the top-5 concept sets, and how often the base's top concept is still in the top 5.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from core.tagging import TAG_TEMPLATES

EmbedTexts = Callable[[list[str]], np.ndarray]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def label_matrix(
    embed_texts: EmbedTexts, labels: Sequence[str], templates: Sequence[str] = TAG_TEMPLATES
) -> np.ndarray:
    """One unit vector per label: the mean of its prompts' embeddings."""
    prompts = [t.format(label) for label in labels for t in templates]
    vectors = _unit(np.asarray(embed_texts(prompts), dtype=np.float32))
    return _unit(vectors.reshape(len(labels), len(templates), -1).mean(axis=1))


def zero_shot(images: np.ndarray, labels_matrix: np.ndarray, truth: Sequence[int], names: Sequence[str]) -> dict:
    """Accuracy of picking each photo's label by similarity: overall, balanced and per label."""
    truth = np.asarray(truth)
    pred = (_unit(images) @ labels_matrix.T).argmax(axis=1)
    per_label = {name: float((pred[truth == i] == i).mean()) for i, name in enumerate(names) if (truth == i).any()}
    return {
        "accuracy": float((pred == truth).mean()),
        "balanced_accuracy": float(np.mean(list(per_label.values()))),
        "per_label": per_label,
    }


def retrieval(images: np.ndarray, queries: np.ndarray, truth: Sequence[int], ks: Sequence[int] = (1, 5)) -> dict:
    """Label queries ``[L, D]`` ranked over photos ``[N, D]``: normalised recall@k and mean average precision."""
    truth = np.asarray(truth)
    order = np.argsort(-(_unit(queries) @ _unit(images).T), axis=1, kind="stable")
    out: dict[str, float] = {}
    hits = np.stack([truth[row] == i for i, row in enumerate(order)])  # [L, N] relevance in ranked order
    counts = hits.sum(axis=1)
    valid = counts > 0
    for k in ks:
        out[f"recall@{k}"] = float((hits[valid, :k].sum(axis=1) / np.minimum(k, counts[valid])).mean())
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    out["mAP"] = float(((precision * hits).sum(axis=1)[valid] / counts[valid]).mean())
    return out


def concept_ranks(images: np.ndarray, concepts: np.ndarray, k: int = 5) -> np.ndarray:
    """Indices of each photo's top-k concepts ``[N, k]``."""
    return np.argsort(-(_unit(images) @ _unit(concepts).T), axis=1, kind="stable")[:, :k]


def agreement(base_top: np.ndarray, new_top: np.ndarray) -> dict:
    """Forgetting check: overlap of top-k concept sets with the base and share of base top-1 kept in the top k."""
    k = base_top.shape[1]
    overlap = [len(set(a) & set(b)) / k for a, b in zip(base_top, new_top, strict=True)]
    kept = [a[0] in set(b) for a, b in zip(base_top, new_top, strict=True)]
    return {f"generic_overlap@{k}": float(np.mean(overlap)), f"generic_top1_in_top{k}": float(np.mean(kept))}


def album_metrics(
    images: np.ndarray, embed_texts: EmbedTexts, embed_queries: EmbedTexts, truth: Sequence[int], names: Sequence[str]
) -> dict:
    """Zero-shot classification and label-query retrieval of one model on photos ``images`` ``[N, D]``."""
    result = zero_shot(images, label_matrix(embed_texts, names), truth, names)
    result.update(retrieval(images, np.asarray(embed_queries(list(names))), truth))
    return result
