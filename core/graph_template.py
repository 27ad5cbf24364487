"""Graph templates: per MobileCLIP variant, a weight-less reparameterized ONNX graph per encoder and its descriptor.

The trainer exports them (``python -m trainer export-templates``) into ``assets/mobileclip/``: ``<tag>.json.gz`` (this
module's ``TemplateDescriptor``) beside ``<tag>-image.onnx.gz`` and ``<tag>-text.onnx.gz`` (gzip: the node names
that make up most of a graph shrink about 15 times, so all nine variants take well under 1 MB). Every weight of a graph is an
initializer stored as ONNX *external data*: the graph names a data file and, per initializer, an offset and length,
and holds no weights itself. Core fills a template by writing that data file from a checkpoint (``core.template_fill``)
and copying the graph unchanged, which gives a normal, self-contained model package without torch or the onnx package.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import types
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from core.errors import ModelPackageError
from core.mobileclip_detect import Candidate
from core.mobileclip_keys import Layout, openclip_layout
from core.paths import assets_dir

TEMPLATE_DIR = "mobileclip"  # inside assets/
DESCRIPTOR_VERSION = 1
DESCRIPTOR_SUFFIX = ".json.gz"


@dataclass(frozen=True)
class MobileOneSource:
    """Where a MobileOne block's branches are in the checkpoint: key prefixes of its BatchNorm / ConvBN parts."""

    in_ch: int
    out_ch: int
    groups: int
    kernel_size: tuple[int, int]
    skip: str | None
    convs: tuple[str, ...]
    scale: str | None
    eps: float = 1e-5


@dataclass(frozen=True)
class MobileOneFusion:
    """``target.{weight,bias}`` = the merged branches of one MobileOne block."""

    target: str
    block: MobileOneSource
    kind: str = "mobileone"


@dataclass(frozen=True)
class LargeKernelFusion:
    """``target.*`` = large-kernel ConvBN ``large`` plus small-kernel ConvBN ``small``."""

    target: str
    large: str
    small: str
    kernel_size: tuple[int, int]
    eps: float = 1e-5
    kind: str = "large_kernel"


@dataclass(frozen=True)
class RepMixerFusion:
    """``target.*`` = ``x + layer_scale * (mixer(x) - norm(x))`` as one depthwise conv."""

    target: str
    layer_scale: str  # full key of the (C, 1, 1) layer scale
    mixer: MobileOneSource
    norm: MobileOneSource
    kind: str = "repmixer"


@dataclass(frozen=True)
class RepCPEFusion:
    """``target.*`` = ``x + conv(x)``; ``conv`` is the key prefix of the depthwise conv (weight and bias)."""

    target: str
    conv: str
    kind: str = "repcpe"


Fusion = MobileOneFusion | LargeKernelFusion | RepMixerFusion | RepCPEFusion
FUSION_KINDS: dict[str, type] = {
    "mobileone": MobileOneFusion,
    "large_kernel": LargeKernelFusion,
    "repmixer": RepMixerFusion,
    "repcpe": RepCPEFusion,
}


@dataclass(frozen=True)
class InitializerSlot:
    """One float32 initializer of a graph: its name, the fused state-dict key it holds, its shape and file offset."""

    name: str
    key: str
    shape: tuple[int, ...]
    offset: int


@dataclass(frozen=True)
class GraphTemplate:
    """One encoder's template: ``template`` (gzip, in the assets folder) becomes ``package_file`` beside ``data_file``."""

    template: str
    package_file: str
    data_file: str
    inputs: tuple[str, ...]
    output: str
    slots: tuple[InitializerSlot, ...]

    @property
    def data_size(self) -> int:
        """Bytes of the filled data file."""
        last = max(self.slots, key=lambda s: s.offset)
        return last.offset + 4 * _count(last.shape)


def _count(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


@dataclass(frozen=True)
class ModelEntry:
    """A named model built on the template: registry name, display name, checkpoint file and preprocessing."""

    name: str
    display: str
    layout: str  # "v1" (ml-mobileclip names) or "openclip"
    checkpoint_file: str
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    notes: tuple[str, ...]
    license_text: str


@dataclass(frozen=True)
class Architecture:
    """The variant a template computes: golden tag, towers, input size, embedding size, checkpoint layout."""

    tag: str
    image: str
    text: str
    resolution: int
    embed_dim: int
    layout: str  # the layout the checkpoint_layout and fusion keys use
    openclip_form: bool  # a v1 model also published in the open_clip layout
    logit_scale_max: float | None  # v1 clamps exp(logit_scale) at 100; open_clip does not
    family: str = "mobileclip"


@dataclass(frozen=True)
class TemplateCheck:
    """What the trainer measured when it exported the template: filled with the golden weights, onnxruntime against
    PyTorch's train-time model on the golden inputs (max abs difference of the normalised features)."""

    image_max_abs_diff: float
    text_max_abs_diff: float
    torch: str
    onnxruntime: str


@dataclass(frozen=True)
class TemplateDescriptor:
    """Everything core needs to turn a checkpoint of this variant into a model package."""

    architecture: Architecture
    models: tuple[ModelEntry, ...]
    checkpoint_layout: Layout
    fusions: tuple[Fusion, ...]
    image: GraphTemplate
    text: GraphTemplate
    check: TemplateCheck
    version: int = DESCRIPTOR_VERSION

    def candidates(self) -> list[Candidate]:
        """The file forms of this template's models, for ``core.mobileclip_detect``."""
        arch = self.architecture
        rows = []
        for model in self.models:
            v1_model = model.layout == "v1"
            rows.append(Candidate(model.name, model.display, arch.layout, v1_model, self.checkpoint_layout))
            if arch.openclip_form:
                rows.append(Candidate(model.name, model.display, "openclip", v1_model, self.openclip_layout()))
        return rows

    def openclip_layout(self) -> Layout:
        return openclip_layout(self.checkpoint_layout)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _from_json(kind: Any, value: Any) -> Any:
    """``value`` (parsed JSON) as an instance of type hint ``kind``: dataclasses, tuples, dicts, unions, scalars."""
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return kind(
            **{f.name: _from_json(hints[f.name], value[f.name]) for f in dataclasses.fields(kind) if f.name in value}
        )
    if kind is Fusion or origin in (typing.Union, types.UnionType):
        if kind is Fusion:
            return _from_json(FUSION_KINDS[value["kind"]], value)
        if value is None:
            return None
        return _from_json(next(a for a in typing.get_args(kind) if a is not type(None)), value)
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json(args[0], v) for v in value)
        return tuple(_from_json(a, v) for a, v in zip(args, value, strict=True))
    if origin is dict:
        key_type, value_type = typing.get_args(kind)
        return {str(k): _from_json(value_type, v) for k, v in value.items()}
    return kind(value)


def parse_descriptor(data: Any, where: str) -> TemplateDescriptor:
    """A descriptor's JSON as a TemplateDescriptor; ModelPackageError when it is not one this version reads."""
    if not isinstance(data, dict) or data.get("version") != DESCRIPTOR_VERSION:
        raise ModelPackageError(f"{where}: not a graph template descriptor of version {DESCRIPTOR_VERSION}")
    try:
        return _from_json(TemplateDescriptor, data)
    except (KeyError, TypeError, ValueError, StopIteration) as exc:
        raise ModelPackageError(f"{where}: malformed graph template descriptor ({type(exc).__name__}: {exc})") from exc


def template_dir() -> Path:
    """The folder of the bundled graph templates."""
    return assets_dir() / TEMPLATE_DIR


def write_descriptor(folder: Path, descriptor: TemplateDescriptor) -> Path:
    """Write ``<tag>.json.gz`` (used by the trainer when it exports templates)."""
    path = folder / f"{descriptor.architecture.tag}{DESCRIPTOR_SUFFIX}"
    write_gzip(path, (json.dumps(descriptor.to_json(), separators=(",", ":")) + "\n").encode("utf-8"))
    return path


def write_gzip(path: Path, data: bytes) -> None:
    """Write ``data`` gzip-compressed with no time stamp, so an unchanged export gives identical bytes."""
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as out:
        out.write(data)


@cache
def load_descriptors(folder: Path | None = None) -> tuple[TemplateDescriptor, ...]:
    """Every descriptor in ``folder`` (default: the bundled templates), sorted by tag."""
    folder = folder or template_dir()
    found = []
    for path in sorted(folder.glob(f"*{DESCRIPTOR_SUFFIX}")):
        try:
            data = json.loads(gzip.decompress(path.read_bytes()).decode("utf-8"))
        except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelPackageError(f"{path}: cannot read the graph template descriptor: {exc}") from exc
        found.append(parse_descriptor(data, str(path)))
    if not found:
        raise ModelPackageError(
            f"{folder}: no MobileCLIP graph templates (export them: python -m trainer export-templates)"
        )
    return tuple(found)
