"""The forgetting check: generic caption-to-photo retrieval on real photos outside the album, before and after.

A *generic bank* is a folder of photos with a caption beside each (``<stem>.txt``, the reinforcement tool's folder
convention), none of them from the album. Each caption is a query that has exactly one right photo; recall@5 is
the share of captions whose photo ranks in the top 5 of the bank. A fine-tune *forgets* when its recall@5 falls
by more than the limit (default one point, 0.01) below the base's on the same bank: that model is installed but
not activated unless the user insists (``--force``). Without a bank, the check the app shows is how the fine-tune
ranks the generic concept vocabulary on the album's validation photos against the base (``concept_agreement``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.encoders import ModelPackage
from core.errors import ImageDecodeError
from core.preprocess import load_image
from core.scanning import PHOTO_EXTENSIONS
from trainer.finetune.album import KEEP_SIDE, LOAD_SIDE, AlbumError
from trainer.finetune.evaluate import agreement, concept_ranks, retrieval
from trainer.finetune.reinforce import SYN_TEMPLATE
from trainer.finetune.tuner import Evaluate, Log
from trainer.train.loop import TrainResult

DEFAULT_LIMIT = 0.01  # one point of recall@5
MIN_BANK = 6  # fewer photos than this and recall@5 says nothing (5 of 5 is always a hit)
PATIENCE = 2  # evaluations over the limit in a row that end training (see ForgettingStop)
GENERIC_KEY = "generic_recall@5"  # what a tuner's generic evaluator returns
EmbedTexts = Callable[[list[str]], np.ndarray]


@dataclass
class GenericBank:
    """Captioned real photos that are not in the album, decoded once."""

    root: Path
    names: list[str]
    images: list[Image.Image]
    captions: list[str]


@dataclass(frozen=True)
class ForgettingCheck:
    """Generic recall@5 of the base and of the fine-tune on one bank, and the limit it is held to."""

    photos: int
    before: float
    after: float
    limit: float = DEFAULT_LIMIT

    @property
    def drop(self) -> float:
        return self.before - self.after

    @property
    def forgets(self) -> bool:
        return self.drop > self.limit + 1e-9

    def summary(self) -> str:
        verdict = "FORGETS (over the limit)" if self.forgets else "within the limit"
        return (
            f"forgetting check, generic R@5 on {self.photos} photos outside the album: {self.before:.3f} -> "
            f"{self.after:.3f} (drop {self.drop:+.3f}, limit {self.limit:.3f}): {verdict}"
        )


def read_generic_bank(root: Path) -> GenericBank:
    """Every photo directly in ``root`` that has a non-empty ``<stem>.txt`` caption, in name order.

    Raises AlbumError when the folder is missing or holds fewer than ``MIN_BANK`` readable captioned photos.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise AlbumError(
            f"{root} is not a folder; a generic bank is a folder of photos, each with a <name>.txt caption"
        )
    names, images, captions = [], [], []
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in PHOTO_EXTENSIONS or not path.is_file():
            continue
        sidecar = path.with_suffix(".txt")
        caption = sidecar.read_text(encoding="utf-8", errors="replace").strip() if sidecar.is_file() else ""
        if not caption:
            continue
        try:
            image = load_image(path, min_side=LOAD_SIDE)
        except (ImageDecodeError, OSError):
            continue
        image.thumbnail((KEEP_SIDE, KEEP_SIDE))
        names.append(path.name)
        images.append(image)
        captions.append(caption[:2000])
    if len(images) < MIN_BANK:
        raise AlbumError(
            f"{root}: a generic bank needs at least {MIN_BANK} readable photos with a caption beside each "
            f"(photo.jpg + photo.txt); found {len(images)}"
        )
    return GenericBank(root, names, images, captions)


def generic_recall(images: np.ndarray, embed_queries: EmbedTexts, captions: list[str]) -> float:
    """Recall@5 of caption queries over the bank's photo embeddings ``[N, D]`` (caption i belongs to photo i)."""
    queries = np.asarray(embed_queries(list(captions)), dtype=np.float32)
    return retrieval(images, queries, list(range(len(captions))), ks=(5,))["recall@5"]


def student_recall(inputs: torch.Tensor, tokens: torch.Tensor, captions: list[str]) -> Evaluate:
    """A tuner's generic evaluator: the torch student's caption -> photo recall@5 on a bank, from the student's
    image inputs (its frozen part's outputs) and the captions' token ids (as queries)."""

    @torch.no_grad()
    def evaluate(student: torch.nn.Module) -> dict[str, float]:
        device = student.logit_scale.device
        photos = student.encode_image(inputs.to(device)).float().cpu().numpy()
        queries = student.encode_text(tokens.to(device)).float().cpu().numpy()
        return {GENERIC_KEY: generic_recall(photos, lambda _q: queries, captions)}

    return evaluate


class ForgettingStop:
    """The forgetting check as the training's stop criterion: after each evaluation the student's own generic
    recall@5 (``GENERIC_KEY``, from the tuner's generic evaluator) is compared with the untrained student's; while
    it is within the limit the trainable weights are kept, and once it has been over the limit ``patience``
    evaluations in a row training stops and the last weights within the limit come back (``restore``).

    On a bank of tens of photos one photo is more than the limit, and one that flips out of the top 5 and back
    between two checks is noise, not forgetting: on the 8-label corpus album (49 photos) a single dip at step 60 of
    300 cut a fine-tune that ended with no loss at all. The installed model is checked again by core whatever
    happened here, and that check decides activation."""

    def __init__(self, student: torch.nn.Module, evaluate: Evaluate, limit: float, patience: int = PATIENCE) -> None:
        if patience < 1:
            raise ValueError(f"patience must be at least 1, got {patience}")
        self.student, self.evaluate, self.limit, self.patience = student, evaluate, limit, patience
        self.over = 0  # evaluations over the limit in a row
        student.eval()
        with torch.no_grad():
            self.reference = evaluate(student)[GENERIC_KEY]
        self._kept = self._trainable()
        self.evaluations = 0
        self.kept_evaluation = 0
        self.stopped = False

    def _trainable(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in self.student.named_parameters() if p.requires_grad}

    def __call__(self, scores: dict[str, float]) -> bool:
        self.evaluations += 1
        if self.reference - scores[GENERIC_KEY] <= self.limit + 1e-9:
            self._kept, self.kept_evaluation, self.over = self._trainable(), self.evaluations, 0
            return False
        self.over += 1
        self.stopped = self.over >= self.patience
        return self.stopped

    @torch.no_grad()
    def restore(self) -> None:
        """Put back the last trainable weights that passed the check (the base's when none did)."""
        params = dict(self.student.named_parameters())
        for name, value in self._kept.items():
            params[name].copy_(value)


def forgetting_check(base: ModelPackage, tuned: ModelPackage, bank: GenericBank, limit: float) -> ForgettingCheck:
    """Generic recall@5 of the base and the fine-tune on the bank, both run by core as the app runs them."""
    before = generic_recall(base.embed_images(bank.images), lambda q: base.embed_texts(q, as_query=True), bank.captions)
    after = generic_recall(
        tuned.embed_images(bank.images), lambda q: tuned.embed_texts(q, as_query=True), bank.captions
    )
    return ForgettingCheck(photos=len(bank.images), before=before, after=after, limit=limit)


def keep_within_limit(stop: ForgettingStop, result: TrainResult, log: Log) -> int:
    """After training, put back the last weights within the limit when the last evaluation was over it (an early
    stop, or a dip at the very end); returns the step the weights come from."""
    checked = [r["step"] for r in result.records if GENERIC_KEY in r]
    kept = checked[stop.kept_evaluation - 1] if stop.kept_evaluation else 0
    if stop.over:
        stop.restore()
        log(f"generic recall@5 was over the limit at step {result.step}: keeping the weights of step {kept}")
    return kept


def concept_agreement(
    base: ModelPackage,
    tuned: ModelPackage,
    val_base: np.ndarray,
    val_new: np.ndarray,
    vocabulary: Sequence[str],
) -> dict:
    """Forgetting check on the validation photos: generic concept rankings of the new model vs the base."""
    prompts = [SYN_TEMPLATE.format(v) for v in vocabulary]
    base_top = concept_ranks(val_base, base.embed_texts(prompts))
    new_top = concept_ranks(val_new, tuned.embed_texts(prompts))
    return agreement(base_top, new_top)
