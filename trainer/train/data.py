"""Where the training loop's batches come from, with a data position that a checkpoint can resume exactly.

A source yields *global* batches in a fixed order for ``(seed, epoch)`` and hands each rank its contiguous share
(rank r of W gets rows ``r*b/W .. (r+1)*b/W``), so gathering features in rank order rebuilds the global batch that
a single process would have seen. Batches are dicts with the reinforced dataset's keys (``image``, ``text``,
``syn_text``, ``image_emb``, ``text_emb``, ``syn_text_emb``, ``label``, ``key``) plus ``text_key``/``syn_key``,
which identify equal captions for the duplicate-aware contrastive targets.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from trainer.train.distributed import DistInfo

Batch = dict[str, object]


class BatchSource(Protocol):
    """Anything the loop can draw batches from."""

    def batches(self, epoch: int, start: int, batch_size: int, info: DistInfo, seed: int) -> Iterator[Batch]:
        """This rank's share of the global batches of ``epoch``, beginning with global batch number ``start``."""
        ...

    def batches_per_epoch(self, batch_size: int) -> int | None:
        """Global batches in one epoch, or None when only the end of the stream tells."""
        ...


@dataclass
class ReinforcedTensors:
    """A reinforced dataset held in memory (album fine-tuning, tests).

    ``inputs[i, a]`` is what the student's ``encode_image`` takes for augmentation ``a`` of sample ``i`` (pixels,
    or the output of a frozen trunk), ``image_emb[i, a]`` the teachers' concatenated embeddings of that
    augmentation. Captions are a table (``caption_tokens [C, L]``, ``caption_emb [C, ΣD]``); ``real[i]`` and
    ``syn[i]`` list the caption ids a sample may draw its real and synthetic caption from.
    """

    inputs: Tensor
    image_emb: Tensor
    caption_tokens: Tensor
    caption_emb: Tensor
    real: Sequence[Sequence[int]]
    syn: Sequence[Sequence[int]]
    labels: Sequence[str]
    keys: Sequence[str]

    def __post_init__(self) -> None:
        n = self.inputs.shape[0]
        sizes = {len(self.real), len(self.syn), len(self.labels), len(self.keys), self.image_emb.shape[0]}
        if sizes != {n} or self.image_emb.shape[1] != self.inputs.shape[1]:
            raise ValueError("reinforced tensors disagree on the number of samples or augmentations")
        if any(not r for r in self.real):
            raise ValueError("every sample needs at least one real caption")

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def batches_per_epoch(self, batch_size: int) -> int:
        return max(1, len(self) // batch_size)

    def _choices(self, epoch: int, seed: int) -> tuple[Tensor, Tensor, list[int], list[int]]:
        """The epoch's order and per-sample picks: a function of (seed, epoch) only, never of global RNG state."""
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        n = len(self)
        order = torch.randperm(n, generator=gen)
        aug = torch.randint(0, self.inputs.shape[1], (n,), generator=gen)
        u_real, u_syn = torch.rand(n, generator=gen), torch.rand(n, generator=gen)
        real = [int(self.real[i][int(u_real[i] * len(self.real[i]))]) for i in range(n)]
        syn = [int(self.syn[i][int(u_syn[i] * len(self.syn[i]))]) if self.syn[i] else real[i] for i in range(n)]
        return order, aug, real, syn

    def batches(self, epoch: int, start: int, batch_size: int, info: DistInfo, seed: int) -> Iterator[Batch]:
        if batch_size > len(self) or batch_size % info.world_size:
            raise ValueError(f"global batch {batch_size} must be at most {len(self)} and divisible by the ranks")
        order, aug, real, syn = self._choices(epoch, seed)
        local = batch_size // info.world_size
        for b in range(start, self.batches_per_epoch(batch_size)):
            rows = order[b * batch_size : (b + 1) * batch_size][info.rank * local : (info.rank + 1) * local]
            yield self.take(
                rows, aug[rows], torch.tensor([real[i] for i in rows]), torch.tensor([syn[i] for i in rows])
            )

    def take(self, rows: Tensor, aug: Tensor, real: Tensor, syn: Tensor) -> Batch:
        """The batch dict of samples ``rows`` with augmentations ``aug`` and caption ids ``real``/``syn``."""
        return {
            "image": self.inputs[rows, aug],
            "image_emb": self.image_emb[rows, aug],
            "text": self.caption_tokens[real],
            "text_emb": self.caption_emb[real],
            "text_key": real,
            "syn_text": self.caption_tokens[syn],
            "syn_text_emb": self.caption_emb[syn],
            "syn_key": syn,
            "label": [self.labels[i] for i in rows],
            "key": [self.keys[i] for i in rows],
        }


class StreamSource:
    """Batches from an iterable reinforced dataset (``trainer.reinforce.reader.ReinforcedDataset``).

    The dataset splits its shards between ranks and workers itself; ``set_epoch`` fixes its shuffle. Resuming
    at global batch ``start`` re-reads the epoch and skips ``start`` batches, which is exact because the order
    depends on (seed, epoch) only.
    """

    def __init__(self, dataset: IterableDataset, num_workers: int = 0) -> None:
        self.dataset = dataset
        self.num_workers = num_workers

    def batches_per_epoch(self, batch_size: int) -> int | None:
        return None

    def batches(self, epoch: int, start: int, batch_size: int, info: DistInfo, seed: int) -> Iterator[Batch]:
        if batch_size % info.world_size:
            raise ValueError(f"global batch {batch_size} is not divisible by {info.world_size} ranks")
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)
        loader = DataLoader(
            self.dataset, batch_size=batch_size // info.world_size, num_workers=self.num_workers, drop_last=True
        )
        for batch in itertools.islice(loader, start, None):
            batch.setdefault("text_key", batch["text"])
            batch.setdefault("syn_key", batch.get("syn_text", batch["text"]))
            yield batch
