"""Export PyTorch encoders to ONNX and measure how closely onnxruntime reproduces them."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

OPSET = 17


def export_onnx(
    module: nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    path: Path,
    input_names: Sequence[str],
    output_name: str,
    dynamic_axes: dict[str, dict[int, str]],
    constant_folding: bool = True,
) -> Path:
    """Trace `module` in eval mode into a single-file ONNX graph (TorchScript exporter, opset 17).

    The TorchScript exporter is used because it is an order of magnitude faster than the dynamo one
    for these graphs and gives identical outputs; it needs fixed Python control flow, which our encoders have.
    ``constant_folding=False`` keeps every weight an initializer named by its state-dict key (graph templates).
    """
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # deprecation and tracer warnings about shapes we fix on purpose
        torch.onnx.export(
            module,
            example_inputs,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=list(input_names),
            output_names=[output_name],
            dynamic_axes=dynamic_axes,
            do_constant_folding=constant_folding,
        )
    return path


def onnx_outputs(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The single output of the ONNX graph at `path` for `feeds`, run by onnxruntime as core runs it."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, feeds)
    return actual


def onnx_max_abs_diff(path: Path, feeds: dict[str, np.ndarray], expected: np.ndarray) -> float:
    """Largest absolute difference between onnxruntime's output for `feeds` and `expected`."""
    return float(np.max(np.abs(onnx_outputs(path, feeds) - expected)))
