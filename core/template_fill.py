"""Fill a graph template from a checkpoint: fuse the train-time branches in numpy and write the external data file.

The fused tensors are computed one fusion at a time and written straight to the data file at their slot's offset,
so memory holds the checkpoint's arrays plus one fused tensor (not a second copy of the model).
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from core import reparam
from core.errors import CheckpointError
from core.graph_template import (
    Fusion,
    GraphTemplate,
    LargeKernelFusion,
    MobileOneFusion,
    MobileOneSource,
    RepMixerFusion,
)

State = Mapping[str, np.ndarray]


def _bn(state: State, prefix: str, eps: float) -> reparam.BatchNorm:
    return reparam.BatchNorm(
        state[f"{prefix}.weight"],
        state[f"{prefix}.bias"],
        state[f"{prefix}.running_mean"],
        state[f"{prefix}.running_var"],
        eps,
    )


def _conv_bn(state: State, prefix: str, eps: float) -> reparam.ConvBN:
    return reparam.ConvBN(state[f"{prefix}.conv.weight"], _bn(state, f"{prefix}.bn", eps))


def _mobileone(state: State, src: MobileOneSource) -> reparam.KernelBias:
    return reparam.merge_mobileone(
        reparam.MobileOneBranches(
            src.in_ch,
            src.out_ch,
            src.groups,
            src.kernel_size,
            _bn(state, src.skip, src.eps) if src.skip else None,
            [_conv_bn(state, prefix, src.eps) for prefix in src.convs],
            _conv_bn(state, src.scale, src.eps) if src.scale else None,
        )
    )


def fuse(state: State, fusion: Fusion) -> reparam.KernelBias:
    """The float64 (kernel, bias) of one fused conv, from the train-time entries of ``state``."""
    if isinstance(fusion, MobileOneFusion):
        return _mobileone(state, fusion.block)
    if isinstance(fusion, LargeKernelFusion):
        large, small = _conv_bn(state, fusion.large, fusion.eps), _conv_bn(state, fusion.small, fusion.eps)
        return reparam.merge_large_kernel(large, small, fusion.kernel_size)
    if isinstance(fusion, RepMixerFusion):
        mixer, norm = _mobileone(state, fusion.mixer), _mobileone(state, fusion.norm)
        return reparam.merge_repmixer(state[fusion.layer_scale], mixer, norm, fusion.mixer.kernel_size)
    return reparam.merge_repcpe(state[f"{fusion.conv}.weight"], state[f"{fusion.conv}.bias"])


def fused_tensors(state: State, fusions: tuple[Fusion, ...], keys: list[str]) -> Iterator[tuple[str, np.ndarray]]:
    """(key, float32 array) for each fused state-dict key in ``keys``: fused from ``state`` or copied from it."""
    by_key = {}
    for fusion in fusions:
        by_key[f"{fusion.target}.weight"] = (fusion, 0)
        by_key[f"{fusion.target}.bias"] = (fusion, 1)
    cached: tuple[Fusion, reparam.KernelBias] | None = None
    for key in keys:
        if key in by_key:
            fusion, index = by_key[key]
            if cached is None or cached[0] is not fusion:
                cached = (fusion, fuse(state, fusion))
            yield key, cached[1][index].astype(np.float32)
        elif key in state:
            yield key, np.asarray(state[key], dtype=np.float32)
        else:
            raise CheckpointError(f"the checkpoint has no entry {key} that the graph needs")


def write_graph(
    template_folder: Path, graph: GraphTemplate, state: State, fusions: tuple[Fusion, ...], dest: Path
) -> None:
    """Write ``graph.package_file`` and its data file into ``dest`` from ``state``; shapes are checked."""
    with gzip.open(template_folder / graph.template, "rb") as src, (dest / graph.package_file).open("wb") as out:
        shutil.copyfileobj(src, out)
    slots = sorted(graph.slots, key=lambda s: s.offset)
    slot_of = {s.key: s for s in slots}
    with (dest / graph.data_file).open("wb") as out:
        for key, array in fused_tensors(state, fusions, [s.key for s in slots]):
            slot = slot_of[key]
            if tuple(array.shape) != slot.shape:
                raise CheckpointError(f"{key}: shape {tuple(array.shape)} where the graph needs {slot.shape}")
            out.seek(slot.offset)
            np.ascontiguousarray(array, dtype="<f4").tofile(out)
        out.truncate(graph.data_size)
