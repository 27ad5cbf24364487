"""Stream reinforced shards for training: one stored augmentation and one synthetic caption per sample per epoch.

Reads our shards and Apple's DataCompDR shards (joined with their images) alike. Shards are split across
torch.distributed ranks and DataLoader workers (disjoint), visited in an order shuffled per epoch, and samples
pass through a shuffle buffer; everything is deterministic given ``seed`` and the epoch. Shards and samples are
untrusted: a refused shard or a bad sample is reported (logging, and ``on_error`` if given) and skipped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from trainer.reinforce.augment import AugmentError, AugParams, apply_params, normalize, sample_rng
from trainer.reinforce.card import DatasetCardError, read_card, shard_paths, teacher_slices, verify_shards
from trainer.reinforce.safetar import DEFAULT_LIMITS, Limits, SampleError, ShardError, iter_samples
from trainer.reinforce.shards import Sample, decode_image, parse_sample

__all__ = ["ReinforcedDataset", "read_card", "replay_transform", "teacher_slices"]

_log = logging.getLogger(__name__)
AUG_CHOICES = ("uniform", "sequential")


class ReplayTransform:
    """Stored parameters -> normalised float32 tensor [3, size, size] (picklable for DataLoader workers)."""

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float], interpolation: str = "bicubic") -> None:
        self.size = size
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.interpolation = interpolation

    def __call__(self, image: Image.Image, params: AugParams) -> torch.Tensor:
        view = apply_params(image, params, self.size, self.interpolation)
        return torch.from_numpy(normalize(view, self.mean, self.std))


def replay_transform(
    size: int, mean: Sequence[float], std: Sequence[float], interpolation: str = "bicubic"
) -> Callable[[Image.Image, AugParams], torch.Tensor]:
    """Apply stored augmentation parameters to the original image at any resolution and normalisation.

    At a teacher's own settings (its resolution, interpolation, mean and std) the result is, pixel for pixel,
    what that teacher embedded when the dataset was made.
    """
    return ReplayTransform(size, mean, std, interpolation)


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class ReinforcedDataset(IterableDataset):
    """Reinforced samples as training dicts.

    Each item: ``image`` (the student view replayed from the chosen stored augmentation), ``text`` (tokens of the
    real caption), ``syn_text`` (tokens of one sampled synthetic caption, or of the real one when S = 0),
    ``image_emb`` / ``text_emb`` / ``syn_text_emb`` (float32 teacher embeddings [sum D] matching them), ``label``
    (album label or ""), ``key``, and ``aug_index`` / ``syn_index`` (which were chosen; -1: no synthetic caption).
    """

    def __init__(
        self,
        shards: Sequence[Path] | Path,
        *,
        image_transform: Callable[[Image.Image, AugParams], torch.Tensor],
        tokenize: Callable[[str], torch.Tensor],
        epoch: int = 0,
        aug_choice: str = "uniform",
        shuffle_buffer: int = 256,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        syn_key: str = "syn_text",
        verify: bool = False,
        limits: Limits = DEFAULT_LIMITS,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        if aug_choice not in AUG_CHOICES:
            raise ValueError(f"aug_choice must be one of {AUG_CHOICES}, got {aug_choice!r}")
        self.card: dict[str, Any] | None = None
        if isinstance(shards, (str, Path)) and Path(shards).is_dir():
            self.card = read_card(Path(shards))
            self.shards = shard_paths(Path(shards), self.card)
            if verify:
                problems = verify_shards(Path(shards), self.card)
                if problems:
                    raise DatasetCardError(f"{shards}: " + "; ".join(problems[:5]))
        elif isinstance(shards, (str, Path)):
            self.shards = [Path(shards)]
        else:
            self.shards = [Path(p) for p in shards]
        self.image_transform = image_transform
        self.tokenize = tokenize
        self.epoch = epoch
        self.aug_choice = aug_choice
        self.shuffle_buffer = max(1, shuffle_buffer)
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.syn_key = syn_key
        self.limits = limits
        self.on_error = on_error
        self.errors: list[str] = []  # problems seen by this process (each DataLoader worker keeps its own)

    @property
    def num_samples(self) -> int | None:
        """Samples in the whole dataset when a card says so (None for bare shard lists)."""
        return int(self.card["samples"]) if self.card and isinstance(self.card.get("samples"), int) else None

    def rank_samples(self, world_size: int | None = None) -> list[int] | None:
        """Samples each rank reads this epoch, from the card's per-shard counts (None without a card).

        Shards are whole units of work, so ranks can get different counts; a distributed loop should take
        ``min(...)`` // local batch size as its steps per epoch, or ranks run out of batches at different steps.
        """
        if self.card is None:
            return None
        world = world_size if world_size is not None else self.world_size or _dist_rank_world()[1]
        counts = [int(s.get("samples") or 0) for s in self.card["shards"]]
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.shards))
        return [sum(counts[i] for i in order[rank::world]) for rank in range(world)]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch: it changes the shard order, the shuffle and (uniform) the augmentation picked."""
        self.epoch = epoch

    def _report(self, message: str) -> None:
        self.errors.append(message)
        _log.warning(message)
        if self.on_error is not None:
            self.on_error(message)

    def assigned_shards(self) -> tuple[list[Path], int]:
        """This process's shards for the current epoch and its global worker index."""
        worker = get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        rank, world = _dist_rank_world()
        rank = self.rank if self.rank is not None else rank
        world = self.world_size if self.world_size is not None else world
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.shards))
        # Split by rank first, then among the rank's workers: ranks get shard counts that differ by at most one.
        mine = order[rank::world][worker_id::num_workers]
        return [self.shards[i] for i in mine], rank * num_workers + worker_id

    def _item(self, sample: Sample) -> dict[str, Any]:
        rng = sample_rng(self.seed, sample.key, f"epoch{self.epoch}")
        k = len(sample.params)
        aug = int(rng.integers(k)) if self.aug_choice == "uniform" else self.epoch % k
        if sample.syn_captions:
            syn = int(rng.integers(len(sample.syn_captions)))
            syn_text, syn_emb = sample.syn_captions[syn], sample.syn_embedding(syn)
        else:
            syn, syn_text, syn_emb = -1, sample.caption, sample.text_emb[0]
        image = self.image_transform(decode_image(sample.image), sample.params[aug])
        return {
            "image": image,
            "text": self.tokenize(sample.caption),
            "syn_text": self.tokenize(syn_text),
            "image_emb": torch.from_numpy(np.array(sample.image_emb[aug], dtype=np.float32)),
            "text_emb": torch.from_numpy(np.array(sample.text_emb[0], dtype=np.float32)),
            "syn_text_emb": torch.from_numpy(np.array(syn_emb, dtype=np.float32)),
            "label": sample.label,
            "key": sample.key,
            "aug_index": aug,
            "syn_index": syn,
        }

    def _raw_samples(self, shards: list[Path]) -> Iterator[tuple[str, dict[str, bytes]]]:
        for path in shards:
            try:
                yield from iter_samples(path, self.limits)
            except ShardError as exc:
                self._report(f"shard refused, rest of it skipped: {exc}")

    def _make(self, key: str, members: dict[str, bytes]) -> dict[str, Any] | None:
        try:
            return self._item(parse_sample(key, members, syn_key=self.syn_key, limits=self.limits))
        except (SampleError, AugmentError) as exc:
            self._report(f"sample skipped: {exc}")
            return None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        shards, slot = self.assigned_shards()
        rng = np.random.default_rng([self.seed, self.epoch, slot, 1])
        buffer: list[tuple[str, dict[str, bytes]]] = []
        # Raw members wait in the buffer (compressed image + embeddings); decoding happens on the way out.
        for raw in self._raw_samples(shards):
            if len(buffer) < self.shuffle_buffer:
                buffer.append(raw)
                continue
            index = int(rng.integers(len(buffer)))
            raw, buffer[index] = buffer[index], raw
            item = self._make(*raw)
            if item is not None:
                yield item
        rng.shuffle(buffer)  # type: ignore[arg-type]
        for raw in buffer:
            item = self._make(*raw)
            if item is not None:
                yield item
