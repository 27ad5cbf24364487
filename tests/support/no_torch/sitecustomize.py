"""Imported by Python at start-up when this folder is on PYTHONPATH: ``import torch`` (and the other packages of the
``train`` extra) then fails as in an install without them. Tests run core commands under it (``run_without_torch``)."""

import sys

for _name in ("torch", "onnx", "onnxscript", "safetensors", "torchvision", "timm", "open_clip"):
    sys.modules[_name] = None  # an import of a None entry raises ImportError
