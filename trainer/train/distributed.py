"""Process-group set-up for torchrun (gloo on CPU, nccl on GPU) and feature gathering for the loss."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class DistInfo:
    """Where this process runs: its rank among ``world_size`` processes and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: this process's GPU when CUDA is available, else the CPU; or ``cpu`` / ``cuda`` explicitly."""
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but CUDA is not available")
    return torch.device("cuda", local_rank)


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 (idempotent), else describe a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if world <= 1:
        return DistInfo(device=dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev)


def gather_with_grad(x: Tensor, info: DistInfo) -> Tensor:
    """All ranks' ``x`` concatenated in rank order, differentiable towards every rank's input.

    Each rank then computes the loss over the global batch; the all-gather's backward sums the gradients that
    all ranks' losses send to this rank's features, and DDP's average over ranks turns that sum back into the
    gradient of one global-batch loss, so N processes train like one process with the same global batch.
    """
    if not info.distributed:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


@torch.no_grad()
def gather_no_grad(x: Tensor, info: DistInfo) -> Tensor:
    """All ranks' ``x`` concatenated in rank order (teacher embeddings, caption ids: no gradient needed)."""
    if not info.distributed:
        return x
    parts = [torch.empty_like(x) for _ in range(info.world_size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def all_gather_objects(obj: object, info: DistInfo) -> list[object]:
    """Every rank's picklable ``obj`` (used for per-rank RNG states in checkpoints)."""
    if not info.distributed:
        return [obj]
    out: list[object] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.distributed:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    """Leave the process group if this process joined one."""
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
