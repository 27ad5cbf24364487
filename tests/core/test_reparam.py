"""core.reparam: each fused (kernel, bias) computes what the train-time branches compute, in numpy alone.

A direct grouped convolution (written here in numpy) runs the branches and the fused conv on the same input. The
trainer's torch blocks call these same functions; tests/trainer checks their fused tensors against the golden data.
"""

from __future__ import annotations

import numpy as np
import pytest

from core import reparam

RNG = np.random.default_rng(7)


def conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None, groups: int = 1) -> np.ndarray:
    """Stride-1 grouped convolution with padding ``k // 2`` (float64), ``x`` is ``[C, H, W]``."""
    out_ch, per_group, kh, kw = kernel.shape
    padded = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
    h, w = x.shape[1:]
    out = np.zeros((out_ch, h, w))
    out_per_group = out_ch // groups
    for o in range(out_ch):
        g = o // out_per_group
        for i in range(per_group):
            for dy in range(kh):
                for dx in range(kw):
                    out[o] += kernel[o, i, dy, dx] * padded[g * per_group + i, dy : dy + h, dx : dx + w]
    return out + (0 if bias is None else bias.reshape(-1, 1, 1))


def batch_norm(x: np.ndarray, bn: reparam.BatchNorm) -> np.ndarray:
    shape = (-1, 1, 1)
    return (x - bn.mean.reshape(shape)) / np.sqrt(bn.var.reshape(shape) + bn.eps) * bn.weight.reshape(
        shape
    ) + bn.bias.reshape(shape)


def random_bn(channels: int) -> reparam.BatchNorm:
    return reparam.BatchNorm(
        RNG.uniform(0.5, 1.5, channels),
        RNG.normal(size=channels),
        RNG.normal(size=channels),
        RNG.uniform(0.5, 2, channels),
    )


def random_conv_bn(out_ch: int, per_group: int, kh: int, kw: int) -> reparam.ConvBN:
    return reparam.ConvBN(RNG.normal(size=(out_ch, per_group, kh, kw)), random_bn(out_ch))


def run_conv_bn(x: np.ndarray, branch: reparam.ConvBN, groups: int) -> np.ndarray:
    return batch_norm(conv2d(x, branch.kernel, groups=groups), branch.bn)


@pytest.mark.parametrize(("channels", "groups", "kernel_size"), [(4, 1, (3, 3)), (6, 6, (3, 3)), (4, 4, (1, 5))])
def test_mobileone_merge_equals_sum_of_branches(channels: int, groups: int, kernel_size: tuple[int, int]) -> None:
    x = RNG.normal(size=(channels, 7, 9))
    per_group = channels // groups
    convs = [random_conv_bn(channels, per_group, *kernel_size) for _ in range(2)]
    scale = random_conv_bn(channels, per_group, 1, 1)
    skip = random_bn(channels)
    block = reparam.MobileOneBranches(channels, channels, groups, kernel_size, skip, convs, scale)
    expected = batch_norm(x, skip) + run_conv_bn(x, scale, groups) + sum(run_conv_bn(x, c, groups) for c in convs)
    kernel, bias = reparam.merge_mobileone(block)
    np.testing.assert_allclose(conv2d(x, kernel, bias, groups), expected, atol=1e-10)


def test_large_kernel_merge_equals_both_convs() -> None:
    x = RNG.normal(size=(3, 11, 11))
    large, small = random_conv_bn(3, 1, 7, 7), random_conv_bn(3, 1, 3, 3)
    kernel, bias = reparam.merge_large_kernel(large, small, (7, 7))
    expected = run_conv_bn(x, large, 3) + run_conv_bn(x, small, 3)
    np.testing.assert_allclose(conv2d(x, kernel, bias, 3), expected, atol=1e-10)


def test_repmixer_merge_equals_residual_mixer_minus_norm() -> None:
    dim, ks = 4, (3, 3)
    x = RNG.normal(size=(dim, 6, 6))
    mixer = reparam.MobileOneBranches(dim, dim, dim, ks, random_bn(dim), [random_conv_bn(dim, 1, 3, 3)], None)
    norm = reparam.MobileOneBranches(dim, dim, dim, ks, random_bn(dim), [], None)
    ls = RNG.uniform(0.1, 0.3, (dim, 1, 1))
    kernel, bias = reparam.merge_repmixer(ls, reparam.merge_mobileone(mixer), reparam.merge_mobileone(norm), ks)
    mixed = batch_norm(x, mixer.skip) + run_conv_bn(x, mixer.convs[0], dim)
    expected = x + ls * (mixed - batch_norm(x, norm.skip))
    np.testing.assert_allclose(conv2d(x, kernel, bias, dim), expected, atol=1e-10)


def test_repcpe_merge_folds_the_residual() -> None:
    x = RNG.normal(size=(5, 8, 8))
    weight, bias = RNG.normal(size=(5, 1, 7, 7)), RNG.normal(size=5)
    kernel, fused_bias = reparam.merge_repcpe(weight, bias)
    np.testing.assert_allclose(conv2d(x, kernel, fused_bias, 5), x + conv2d(x, weight, bias, 5), atol=1e-10)
