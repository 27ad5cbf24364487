"""Reparameterizable building blocks shared by the MobileCLIP image (MCi) and text (MCt) encoders.

Every block exists in two state-dict layouts: the ml-mobileclip v1 names (``V1_NAMES``) and the timm /
open_clip names (``TIMM_NAMES``). A block is built in its train-time, multi-branch form; ``reparameterize()``
switches it in place to the single-conv inference form (BatchNorm folded with running statistics), giving the
same key names as the reference fused models. Kernel sizes may be an int or a ``(kh, kw)`` tuple.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core import reparam

KernelSize = int | tuple[int, int]


@dataclass(frozen=True)
class BlockNames:
    """Attribute names of branches and sub-modules in one state-dict layout."""

    conv: str  # the kxk conv+BN branch list
    scale: str  # the 1x1 conv+BN branch
    skip: str  # the identity BatchNorm branch
    large: str  # large-kernel conv+BN in ReparamLargeKernelConv
    large_fused: str  # fused large-kernel conv
    large_se_first: bool  # whether the large-kernel conv registers its SE before its branches
    block_se: tuple[str, str]  # (reduce, expand) conv names of the SE inside MobileOne blocks
    cpe: str  # depthwise conv of RepCPE
    ffn: str  # ConvFFN attribute inside RepMixer / attention blocks
    layer_scale_module: bool  # layer scales stored as ``<name>.gamma`` (timm) or a bare parameter (v1)


V1_NAMES = BlockNames(
    "rbr_conv", "rbr_scale", "rbr_skip", "lkb_origin", "lkb_reparam", True, ("reduce", "expand"), "pe", "convffn", False
)
TIMM_NAMES = BlockNames(
    "conv_kxk", "conv_scale", "identity", "large_conv", "reparam_conv", False, ("fc1", "fc2"), "pos_enc", "mlp", True
)


def pair(k: KernelSize) -> tuple[int, int]:
    """Return ``k`` as a ``(kh, kw)`` tuple."""
    return (k, k) if isinstance(k, int) else (int(k[0]), int(k[1]))


def same_padding(k: KernelSize) -> tuple[int, int]:
    """Padding that keeps the spatial size for stride 1 (``k // 2`` per dimension)."""
    kh, kw = pair(k)
    return kh // 2, kw // 2


def as_numpy(t: Tensor) -> np.ndarray:
    """A float64 numpy copy of a tensor (on any device), for the fusion math in ``core.reparam``."""
    return t.detach().to("cpu", torch.float64).numpy()


def bn_of(bn: nn.BatchNorm2d) -> reparam.BatchNorm:
    """An eval-mode BatchNorm module as ``core.reparam`` takes it."""
    return reparam.BatchNorm(
        as_numpy(bn.weight), as_numpy(bn.bias), as_numpy(bn.running_mean), as_numpy(bn.running_var), bn.eps
    )


def make_fused_conv(
    in_ch: int,
    out_ch: int,
    kernel_size: KernelSize,
    stride: int | tuple[int, int],
    groups: int,
    kernel: np.ndarray,
    bias: np.ndarray,
    like: Tensor,
) -> nn.Conv2d:
    """A biased conv (padding ``k // 2``) holding float64 ``kernel`` / ``bias``, on the device and dtype of ``like``."""
    conv = nn.Conv2d(
        in_ch,
        out_ch,
        pair(kernel_size),
        stride,
        same_padding(kernel_size),
        groups=groups,
        bias=True,
        device=like.device,
        dtype=like.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(kernel))
        conv.bias.copy_(torch.from_numpy(bias))
    return conv


class LayerScale2d(nn.Module):
    """Per-channel scale stored as ``gamma`` of shape (C, 1, 1) (timm layout)."""

    def __init__(self, dim: int, init_value: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim, 1, 1), init_value))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


def make_layer_scale(dim: int, names: BlockNames, init_value: float = 1e-5) -> nn.Module | nn.Parameter:
    """A (C, 1, 1) layer scale: a ``LayerScale2d`` module (timm) or a bare parameter (v1)."""
    if names.layer_scale_module:
        return LayerScale2d(dim, init_value)
    return nn.Parameter(torch.full((dim, 1, 1), init_value))


def layer_scale_value(ls: nn.Module | Tensor) -> Tensor:
    """The (C, 1, 1) tensor of a layer scale made by ``make_layer_scale``."""
    return ls.gamma if isinstance(ls, LayerScale2d) else ls


class ConvBN(nn.Module):
    """Bias-free conv followed by BatchNorm (keys ``conv.weight``, ``bn.*``); padding ``k // 2``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: KernelSize, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_ch, out_ch, pair(kernel_size), stride, same_padding(kernel_size), groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))

    def as_numpy(self) -> reparam.ConvBN:
        """The conv kernel and BatchNorm as ``core.reparam`` takes them."""
        return reparam.ConvBN(as_numpy(self.conv.weight), bn_of(self.bn))


class SqueezeExcite(nn.Module):
    """Squeeze-excite: mean over H, W, 1x1 conv, ReLU, 1x1 conv, sigmoid gate.

    The mean (instead of ``avg_pool2d`` with a runtime kernel size) keeps exported graphs resolution-agnostic.
    ``names`` are the attribute names of the reducing and expanding convs.
    """

    def __init__(self, channels: int, reduced: int, names: tuple[str, str] = ("fc1", "fc2")) -> None:
        super().__init__()
        self._names = names
        setattr(self, names[0], nn.Conv2d(channels, reduced, 1))
        setattr(self, names[1], nn.Conv2d(reduced, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        s = getattr(self, self._names[1])(F.relu(getattr(self, self._names[0])(s)))
        return x * torch.sigmoid(s)


class MobileOneBlock(nn.Module):
    """MobileOne block: sum of a kxk conv+BN branch, an optional 1x1 conv+BN branch and an optional identity BN,
    then optional SE, then optional GELU.

    Args:
        in_ch, out_ch: channels. kernel_size: int or (kh, kw); padding is ``k // 2`` per dimension.
        stride, groups: of every conv branch.
        use_conv: build the kxk conv branch (False for the RepMixer ``norm``, which is only an identity BN).
        use_scale: build the 1x1 branch; ``None`` = only when both kernel dims are > 1 (as in the reference).
        use_identity: build the identity BN; ``None`` = when ``in_ch == out_ch`` and ``stride == 1``.
        se_ratio: if > 0, add an SE with ``int(out_ch * se_ratio)`` hidden channels (names ``names.block_se``).
        act: apply exact GELU at the end.
        names: state-dict layout (``V1_NAMES`` or ``TIMM_NAMES``).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: KernelSize,
        stride: int = 1,
        groups: int = 1,
        *,
        use_conv: bool = True,
        use_scale: bool | None = None,
        use_identity: bool | None = None,
        se_ratio: float = 0.0,
        act: bool = True,
        names: BlockNames = V1_NAMES,
    ) -> None:
        super().__init__()
        kh, kw = pair(kernel_size)
        self.in_ch, self.out_ch, self.kernel_size = in_ch, out_ch, (kh, kw)
        self.stride, self.groups, self.names = stride, groups, names
        if use_scale is None:
            use_scale = kh > 1 and kw > 1
        if use_identity is None:
            use_identity = in_ch == out_ch and stride == 1
        if not (use_conv or use_scale or use_identity):
            raise ValueError("a MobileOne block needs at least one branch")
        self.se = SqueezeExcite(out_ch, int(out_ch * se_ratio), names.block_se) if se_ratio > 0 else nn.Identity()
        if use_identity:
            setattr(self, names.skip, nn.BatchNorm2d(in_ch))
        if use_conv:
            setattr(self, names.conv, nn.ModuleList([ConvBN(in_ch, out_ch, (kh, kw), stride, groups)]))
        if use_scale:
            setattr(self, names.scale, ConvBN(in_ch, out_ch, 1, stride, groups))
        self.act = nn.GELU() if act else nn.Identity()
        self.reparam_conv: nn.Conv2d | None = None

    def _branches(self) -> tuple[nn.Module | None, nn.Module | None, nn.Module | None]:
        """(identity BN, kxk conv list, 1x1 conv), each None when absent or fused away."""
        return tuple(getattr(self, name, None) for name in (self.names.skip, self.names.conv, self.names.scale))

    def forward(self, x: Tensor) -> Tensor:
        if self.reparam_conv is not None:
            return self.act(self.se(self.reparam_conv(x)))
        out = 0
        skip, convs, scale = self._branches()
        if skip is not None:
            out = skip(x)
        if scale is not None:
            out = out + scale(x)
        if convs is not None:
            for branch in convs:
                out = out + branch(x)
        return self.act(self.se(out))

    def fused_kernel_bias(self) -> reparam.KernelBias:
        """Float64 (kernel, bias) of one conv equivalent to the sum of branches (works before and after fusion)."""
        if self.reparam_conv is not None:
            return as_numpy(self.reparam_conv.weight), as_numpy(self.reparam_conv.bias)
        skip, convs, scale = self._branches()
        return reparam.merge_mobileone(
            reparam.MobileOneBranches(
                self.in_ch,
                self.out_ch,
                self.groups,
                self.kernel_size,
                bn_of(skip) if skip is not None else None,
                [branch.as_numpy() for branch in convs or ()],
                scale.as_numpy() if scale is not None else None,
            )
        )

    def reparameterize(self) -> None:
        """Replace the branches by one biased conv ``reparam_conv`` (SE and activation are kept)."""
        if self.reparam_conv is not None:
            return
        kernel, bias = self.fused_kernel_bias()
        like = next(p for p in self.parameters() if p.is_floating_point())
        for name in (self.names.skip, self.names.conv, self.names.scale):
            if hasattr(self, name):
                delattr(self, name)
        self.reparam_conv = make_fused_conv(
            self.in_ch, self.out_ch, self.kernel_size, self.stride, self.groups, kernel, bias, like
        )


class ReparamLargeKernelConv(nn.Module):
    """Large-kernel conv+BN plus a small-kernel conv+BN branch (same stride and groups), then SE and GELU.

    Used as the first half of the FastViT downsampler (7x7 + 3x3, stride 2, groups = in_ch).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 7,
        stride: int = 2,
        groups: int = 1,
        small_kernel: int = 3,
        use_se: bool = False,
        act: bool = True,
        names: BlockNames = V1_NAMES,
    ) -> None:
        super().__init__()
        self.names, self.kernel_size, self.stride, self.groups = names, kernel_size, stride, groups
        self.in_ch, self.out_ch = in_ch, out_ch
        self.is_fused = False
        se = SqueezeExcite(out_ch, out_ch // 4, ("fc1", "fc2")) if use_se else nn.Identity()
        if names.large_se_first:
            self.se = se
        setattr(self, names.large, ConvBN(in_ch, out_ch, kernel_size, stride, groups))
        self.small_conv = ConvBN(in_ch, out_ch, small_kernel, stride, groups)
        if not names.large_se_first:
            self.se = se
        self.act = nn.GELU() if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if self.is_fused:
            out = getattr(self, self.names.large_fused)(x)
        else:
            out = getattr(self, self.names.large)(x) + self.small_conv(x)
        return self.act(self.se(out))

    def reparameterize(self) -> None:
        """Fold both branches into one conv named ``names.large_fused``."""
        if self.is_fused:
            return
        large = getattr(self, self.names.large)
        kernel, bias = reparam.merge_large_kernel(large.as_numpy(), self.small_conv.as_numpy(), pair(self.kernel_size))
        conv = make_fused_conv(
            self.in_ch, self.out_ch, self.kernel_size, self.stride, self.groups, kernel, bias, large.conv.weight
        )
        delattr(self, self.names.large)
        del self.small_conv
        setattr(self, self.names.large_fused, conv)
        self.is_fused = True


class RepMixer(nn.Module):
    """RepMixer token mixer: ``x + ls * (mixer(x) - norm(x))`` with depthwise MobileOne ``mixer`` (kxk conv,
    optional 1x1, identity BN; no activation) and ``norm`` (identity BN only). Fuses into one depthwise conv.

    Args:
        dim: channels. kernel_size: int or (kh, kw) (3 for images, (1, 11) for the MCt text encoder).
        use_scale: whether the mixer has a 1x1 branch (True for images, False for MCt text).
        layer_scale_init: initial value of the (C, 1, 1) layer scale.
        names: state-dict layout.
    """

    def __init__(
        self,
        dim: int,
        kernel_size: KernelSize = 3,
        use_scale: bool = True,
        layer_scale_init: float = 1e-5,
        names: BlockNames = V1_NAMES,
    ) -> None:
        super().__init__()
        self.dim, self.kernel_size = dim, pair(kernel_size)
        self.norm = MobileOneBlock(
            dim, dim, kernel_size, 1, dim, use_conv=False, use_scale=False, use_identity=True, act=False, names=names
        )
        self.mixer = MobileOneBlock(
            dim, dim, kernel_size, 1, dim, use_scale=use_scale, use_identity=True, act=False, names=names
        )
        self.layer_scale = make_layer_scale(dim, names, layer_scale_init)
        self.reparam_conv: nn.Conv2d | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.reparam_conv is not None:
            return self.reparam_conv(x)
        return x + layer_scale_value(self.layer_scale) * (self.mixer(x) - self.norm(x))

    def reparameterize(self) -> None:
        """Fold identity, layer scale, mixer and norm into ``reparam_conv`` (depthwise, with bias)."""
        if self.reparam_conv is not None:
            return
        kernel, bias = reparam.merge_repmixer(
            as_numpy(layer_scale_value(self.layer_scale)),
            self.mixer.fused_kernel_bias(),
            self.norm.fused_kernel_bias(),
            self.kernel_size,
        )
        like = layer_scale_value(self.layer_scale)
        del self.norm, self.mixer, self.layer_scale
        self.reparam_conv = make_fused_conv(self.dim, self.dim, self.kernel_size, 1, self.dim, kernel, bias, like)


class ConvFFN(nn.Module):
    """Convolutional FFN: depthwise kxk conv + BN (``conv``), 1x1 ``fc1`` (bias), GELU, 1x1 ``fc2`` (bias)."""

    def __init__(self, dim: int, hidden: int, out_dim: int | None = None, kernel_size: KernelSize = 7) -> None:
        super().__init__()
        self.conv = ConvBN(dim, dim, kernel_size, 1, dim)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, out_dim or dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(self.conv(x))))


class RepCPE(nn.Module):
    """Conditional positional encoding ``x + dwconv_kxk(x)`` (conv named ``names.cpe``); fuses to ``reparam_conv``."""

    def __init__(self, dim: int, kernel_size: KernelSize = 7, names: BlockNames = V1_NAMES) -> None:
        super().__init__()
        self.dim, self.kernel_size, self.names = dim, pair(kernel_size), names
        setattr(self, names.cpe, nn.Conv2d(dim, dim, self.kernel_size, 1, same_padding(kernel_size), groups=dim))
        self.reparam_conv: nn.Conv2d | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.reparam_conv is not None:
            return self.reparam_conv(x)
        return x + getattr(self, self.names.cpe)(x)

    def reparameterize(self) -> None:
        """Fold the residual into the depthwise kernel."""
        if self.reparam_conv is not None:
            return
        pe = getattr(self, self.names.cpe)
        kernel, bias = reparam.merge_repcpe(as_numpy(pe.weight), as_numpy(pe.bias))
        conv = make_fused_conv(self.dim, self.dim, self.kernel_size, 1, self.dim, kernel, bias, pe.weight)
        delattr(self, self.names.cpe)
        self.reparam_conv = conv


class RepMixerBlock(nn.Module):
    """FastViT / MCt RepMixer block: ``x = RepMixer(x)``, then ``x = x + ls * ConvFFN(x)``.

    Args:
        dim: channels. kernel_size: RepMixer kernel (3 image, (1, 11) text). ffn_kernel_size: ConvFFN
        depthwise kernel (7 image, (1, 11) text). mlp_ratio: hidden = int(dim * mlp_ratio).
        use_scale: RepMixer 1x1 branch. layer_scale_init: init of both layer scales. names: layout.
    """

    def __init__(
        self,
        dim: int,
        kernel_size: KernelSize = 3,
        mlp_ratio: float = 3.0,
        *,
        ffn_kernel_size: KernelSize = 7,
        use_scale: bool = True,
        layer_scale_init: float = 1e-5,
        names: BlockNames = V1_NAMES,
    ) -> None:
        super().__init__()
        self.names = names
        self.token_mixer = RepMixer(dim, kernel_size, use_scale, layer_scale_init, names)
        setattr(self, names.ffn, ConvFFN(dim, int(dim * mlp_ratio), kernel_size=ffn_kernel_size))
        self.layer_scale = make_layer_scale(dim, names, layer_scale_init)

    def forward(self, x: Tensor) -> Tensor:
        x = self.token_mixer(x)
        return x + layer_scale_value(self.layer_scale) * getattr(self, self.names.ffn)(x)
