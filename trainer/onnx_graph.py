"""Offline clean-ups of exported ONNX graphs that onnxruntime does not do by itself.

TensorFlow-style "same" padding exports as a separate Pad before each stride-2 convolution. onnxruntime keeps those
Pads, and around each one it converts activations out of and back into its blocked (NCHWc) convolution layout:
on EfficientNet-Lite0 that is ~40% of the image encoder's time. ONNX Conv takes asymmetric pads itself, so a zero
Pad of the spatial axes can be folded into the Conv that reads it, with bit-identical results.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper


def fold_constants(src: Path, dest: Path) -> Path:
    """Write `src` with constant subgraphs computed (onnxruntime's basic level: standard ONNX ops only)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(dest)
    options.log_severity_level = 3
    ort.InferenceSession(str(src), sess_options=options, providers=["CPUExecutionProvider"])
    return dest


def _attribute(node: onnx.NodeProto, name: str, default: object = None) -> object:
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _zero_pad_amounts(pad: onnx.NodeProto, initializers: dict[str, onnx.TensorProto]) -> list[int] | None:
    """The Pad's `pads` when it is a constant zero padding of spatial axes only, else None."""
    if _attribute(pad, "mode", b"constant") not in (b"constant", "constant"):
        return None
    if len(pad.input) > 2 and pad.input[2]:
        value = initializers.get(pad.input[2])
        if value is None or numpy_helper.to_array(value).any():
            return None
    if len(pad.input) > 3 and pad.input[3]:  # explicit axes (opset 18): keep it simple and leave these alone
        return None
    pads = initializers.get(pad.input[1]) if len(pad.input) > 1 else None
    if pads is None:
        return None
    amounts = numpy_helper.to_array(pads).astype(int).tolist()
    rank = len(amounts) // 2
    if rank < 3 or any(amounts[axis] or amounts[rank + axis] for axis in (0, 1)):
        return None  # batch or channel padding cannot move into a Conv
    return amounts


def fold_pads_into_convs(model: onnx.ModelProto) -> int:
    """Fold zero Pads that feed only a Conv into that Conv's `pads`, in place. Returns how many were folded."""
    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    graph_outputs = {output.name for output in graph.output}
    folded = []
    for pad in [node for node in graph.node if node.op_type == "Pad"]:
        amounts = _zero_pad_amounts(pad, initializers)
        consumers = readers.get(pad.output[0], [])
        if amounts is None or len(consumers) != 1 or consumers[0].op_type != "Conv" or pad.output[0] in graph_outputs:
            continue
        conv = consumers[0]
        if _attribute(conv, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            continue
        rank = len(amounts) // 2
        spatial = rank - 2
        conv_pads = list(_attribute(conv, "pads", [0] * (2 * spatial)))
        # ONNX order is [x1_begin, x2_begin, ..., x1_end, x2_end, ...] for both Pad (all axes) and Conv (spatial).
        merged = [conv_pads[i] + amounts[2 + i] for i in range(spatial)]
        merged += [conv_pads[spatial + i] + amounts[rank + 2 + i] for i in range(spatial)]
        for attribute in list(conv.attribute):
            if attribute.name == "pads":
                conv.attribute.remove(attribute)
        conv.attribute.append(helper.make_attribute("pads", merged))
        conv.input[0] = pad.input[0]
        folded.append(pad)
    for pad in folded:
        graph.node.remove(pad)
    return len(folded)


def drop_unused_initializers(model: onnx.ModelProto) -> int:
    """Remove initializers no node reads (left behind by folding), in place. Returns how many went."""
    graph = model.graph
    used = {name for node in graph.node for name in node.input} | {output.name for output in graph.output}
    unused = [tensor for tensor in graph.initializer if tensor.name not in used]
    for tensor in unused:
        graph.initializer.remove(tensor)
    return len(unused)


def fold_pads_in_file(path: Path) -> int:
    """Constant-fold the ONNX file at `path`, fold its zero Pads into Convs and save it in place."""
    path = Path(path)
    folded_path = path.with_suffix(".folded.onnx")
    try:
        fold_constants(path, folded_path)
        model = onnx.load(str(folded_path))
    finally:
        folded_path.unlink(missing_ok=True)
    count = fold_pads_into_convs(model)
    drop_unused_initializers(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return count
