"""Structural reparameterization of MobileCLIP blocks in numpy: the fusion math, written once.

Train-time MobileOne, RepMixer, RepCPE and large-kernel blocks sum several conv+BatchNorm branches; at inference
each is one biased conv. These functions compute that conv's (kernel, bias) in float64 from numpy arrays. The
trainer's torch blocks (``trainer.models.blocks``) call them on their tensors, and core calls them on a checkpoint's
arrays (``core.fusion_plan``), so both routes fuse identically. Kernels are ``[out, in / groups, kh, kw]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Kernel = tuple[int, int]
KernelBias = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class BatchNorm:
    """An eval-mode BatchNorm: scale, shift, running statistics and eps."""

    weight: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5


@dataclass(frozen=True)
class ConvBN:
    """A bias-free conv kernel followed by a BatchNorm."""

    kernel: np.ndarray
    bn: BatchNorm


def _f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def fold_bn(kernel: np.ndarray, bn: BatchNorm) -> KernelBias:
    """Fold ``bn`` into the preceding bias-free conv ``kernel``; float64 (kernel, bias)."""
    std = np.sqrt(_f64(bn.var) + bn.eps)
    t = _f64(bn.weight) / std
    return _f64(kernel) * t.reshape(-1, 1, 1, 1), _f64(bn.bias) - _f64(bn.mean) * t


def identity_kernel(channels: int, groups: int, kernel_size: Kernel) -> np.ndarray:
    """Float64 kernel ``[channels, channels / groups, kh, kw]`` that maps x to x (1 at the centre tap)."""
    kh, kw = kernel_size
    per_group = channels // groups
    kernel = np.zeros((channels, per_group, kh, kw), dtype=np.float64)
    idx = np.arange(channels)
    kernel[idx, idx % per_group, kh // 2, kw // 2] = 1.0
    return kernel


def pad_kernel_to(kernel: np.ndarray, kernel_size: Kernel) -> np.ndarray:
    """Zero-pad a smaller centred kernel to ``kernel_size`` (both differences must be even)."""
    dh, dw = kernel_size[0] - kernel.shape[2], kernel_size[1] - kernel.shape[3]
    return np.pad(kernel, ((0, 0), (0, 0), (dh // 2, dh // 2), (dw // 2, dw // 2)))


@dataclass(frozen=True)
class MobileOneBranches:
    """The branches of a MobileOne block: optional identity BN, kxk conv+BN list, optional 1x1 conv+BN."""

    in_ch: int
    out_ch: int
    groups: int
    kernel_size: Kernel
    skip: BatchNorm | None
    convs: Sequence[ConvBN]
    scale: ConvBN | None


def merge_mobileone(block: MobileOneBranches) -> KernelBias:
    """(kernel, bias) of one conv equal to the sum of a MobileOne block's branches."""
    kernel = np.zeros((block.out_ch, block.in_ch // block.groups, *block.kernel_size), dtype=np.float64)
    bias = np.zeros(block.out_ch, dtype=np.float64)
    if block.skip is not None:
        k, b = fold_bn(identity_kernel(block.in_ch, block.groups, block.kernel_size), block.skip)
        kernel, bias = kernel + k, bias + b
    if block.scale is not None:
        k, b = fold_bn(block.scale.kernel, block.scale.bn)
        kernel, bias = kernel + pad_kernel_to(k, block.kernel_size), bias + b
    for branch in block.convs:
        k, b = fold_bn(branch.kernel, branch.bn)
        kernel, bias = kernel + k, bias + b
    return kernel, bias


def merge_large_kernel(large: ConvBN, small: ConvBN, kernel_size: Kernel) -> KernelBias:
    """(kernel, bias) of a large-kernel conv+BN plus a small-kernel conv+BN with the same stride and groups."""
    k, b = fold_bn(large.kernel, large.bn)
    ks, bs = fold_bn(small.kernel, small.bn)
    return k + pad_kernel_to(ks, kernel_size), b + bs


def merge_repmixer(layer_scale: np.ndarray, mixer: KernelBias, norm: KernelBias, kernel_size: Kernel) -> KernelBias:
    """(kernel, bias) of the depthwise conv equal to ``x + ls * (mixer(x) - norm(x))``."""
    ls = _f64(layer_scale).reshape(-1, 1, 1, 1)
    (km, bm), (kn, bn) = mixer, norm
    dim = ls.shape[0]
    return identity_kernel(dim, dim, kernel_size) + ls * (km - kn), ls.reshape(-1) * (bm - bn)


def merge_repcpe(weight: np.ndarray, bias: np.ndarray) -> KernelBias:
    """(kernel, bias) of the depthwise conv equal to ``x + dwconv(x)`` (the residual folded into the kernel)."""
    dim, _, kh, kw = weight.shape
    return identity_kernel(dim, dim, (kh, kw)) + _f64(weight), _f64(bias)
