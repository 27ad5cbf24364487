"""The text anchor: a fine-tune keeps generic captions where the base put them, so ordinary searches stay as they were.

A text-only fine-tune moves nothing on the image side, so generic search changes only where the text tower moves
the embeddings of ordinary captions. The anchor holds them in place: every step, a batch of generic captions (the
tag vocabulary in the tagger's prompt forms and sentences pairing two of its words) is embedded by the student and
pulled towards the base's embedding of the same caption (``1 - cosine``, scaled by the anchor's weight), while the
album's label words are free to move. It needs no photos, so nothing ships with it, and it costs one extra text
batch a step. Measured on real photos outside the album: README, "Measured here" (bench/album_forgetting.py).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.tagging import TAG_TEMPLATES, default_vocabulary

SCENE_TEMPLATES = ("a {} and a {}", "a {} next to a {}", "a {} in front of a {}", "{} with {} in the background",
                   "close-up of a {} on a {}")  # fmt: skip
SCENES = 1000
ANCHOR_BATCH = 32  # captions per step: each of the ~2,300 captions is seen about 4 times in 300 steps (16: mAP -0.02)


def anchor_captions(
    vocabulary: Sequence[str] | None = None, labels: Sequence[str] = (), scenes: int = SCENES, seed: int = 0
) -> list[str]:
    """The generic captions the anchor holds: each vocabulary word in every tag prompt form, then ``scenes``
    sentences that put two vocabulary words together (a search is often a short scene, not one word).

    Vocabulary words that hold one of the album's ``labels`` as a word are left out: a user who teaches "cat" for
    their own cat wants that word to move, and the anchor would hold it back."""
    taught = {label.lower() for label in labels}
    words = [
        word
        for word in (default_vocabulary() if vocabulary is None else vocabulary)
        if not taught & {word.lower(), *word.lower().split()}
    ]
    prompts = [template.format(word) for word in words for template in TAG_TEMPLATES]
    if len(words) < 2:
        return prompts
    rng = random.Random(seed)
    return prompts + [rng.choice(SCENE_TEMPLATES).format(*rng.sample(words, 2)) for _ in range(scenes)]


class TextAnchor:
    """A loss term that keeps the student's embeddings of fixed captions at its own starting embeddings.

    ``tokens`` are the captions as the student's ``encode_text`` takes them: token ids ``[C, L]``, or rows ``[C]`` of
    its cached caption table (then only its trainable layers run, see ``Tuner.student_data``); the targets are
    the student's embeddings when the anchor is made (the base's, before any step). Each call samples ``batch``
    captions with its own seeded generator, so a run is repeatable and the data order is untouched.
    """

    def __init__(self, student: nn.Module, tokens: Tensor, weight: float, batch: int = ANCHOR_BATCH, seed: int = 0):
        if weight <= 0:
            raise ValueError(f"the anchor's weight must be positive, got {weight}")
        self.tokens, self.weight, self.batch = tokens, float(weight), min(batch, len(tokens))
        self.generator = torch.Generator().manual_seed(seed)
        was_training = student.training
        student.eval()
        with torch.no_grad():
            self.targets = torch.cat([self._embed(student, tokens[i : i + 256]) for i in range(0, len(tokens), 256)])
        student.train(was_training)

    def _embed(self, student: nn.Module, tokens: Tensor) -> Tensor:
        device = student.logit_scale.device
        return F.normalize(student.encode_text(tokens.to(device)).float(), dim=-1)

    def __call__(self, student: nn.Module) -> Tensor:
        rows = torch.randint(len(self.tokens), (self.batch,), generator=self.generator)
        was_training = student.training
        student.eval()  # without dropout the anchor sees only real drift: 0 at the start (dropout alone gives ~0.03)
        try:
            moved = self._embed(student, self.tokens[rows])
        finally:
            student.train(was_training)
        return self.weight * (1.0 - (moved * self.targets[rows].to(moved.device)).sum(dim=-1)).mean()
