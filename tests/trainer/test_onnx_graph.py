"""Folding TensorFlow-style "same" Pads into the Convs that read them: same outputs, fewer nodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from trainer.onnx_export import export_onnx, onnx_outputs  # noqa: E402
from trainer.onnx_graph import fold_pads_in_file  # noqa: E402


class _Padded(nn.Module):
    """Three Pads: asymmetric zero before a strided conv (foldable), non-zero value (not), read twice (not)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=0)
        self.edge = nn.Conv2d(8, 8, 3, padding=1)
        self.twice = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(F.pad(x, (0, 1, 0, 1)))  # (left, right, top, bottom): TF "same" for stride 2
        y = self.edge(F.pad(x, (1, 1, 1, 1), value=1.0))
        shared = F.pad(y, (2, 0, 2, 0))
        return self.twice(shared) + shared[:, :4]


def _pads(path: Path) -> int:
    return sum(node.op_type == "Pad" for node in onnx.load(str(path)).graph.node)


def test_zero_pads_fold_into_convs_with_identical_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = _Padded().eval()
    x = torch.randn(2, 3, 16, 16)
    path = export_onnx(module, (x,), tmp_path / "padded.onnx", ["x"], "y", {"x": {0: "batch"}, "y": {0: "batch"}})
    before = onnx_outputs(path, {"x": x.numpy()})
    assert _pads(path) == 3

    assert fold_pads_in_file(path) == 1
    assert _pads(path) == 2  # the non-zero pad and the pad read by two nodes stay
    convs = [n for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    down_pads = [list(a.ints) for n in convs for a in n.attribute if a.name == "pads" and list(a.ints) == [0, 0, 1, 1]]
    assert down_pads, "the strided conv should carry the asymmetric pads [top, left, bottom, right] = [0, 0, 1, 1]"
    after = onnx_outputs(path, {"x": x.numpy()})
    np.testing.assert_array_equal(after, before)
    with torch.no_grad():
        np.testing.assert_allclose(after, module(x).numpy(), atol=1e-5)
    # Batch stays dynamic after folding.
    assert onnx_outputs(path, {"x": np.zeros((5, 3, 16, 16), np.float32)}).shape[0] == 5
