"""Post-training int8 quantization of the starter's image encoder, calibrated on real photos.

EfficientNet-Lite was designed for integer inference (ReLU6, no squeeze-excitation), so static per-channel int8
keeps its embeddings within ~1% cosine of float32 while onnxruntime runs it about three times faster on CPUs with
int8 dot-product instructions: indexing a library is bound by this encoder. Only convolutions, their ReLU6 and the
residual adds are quantized; the ImageNet head and the ConSE mixing stay in float32.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quant_pre_process, quantize_static
from PIL import Image

from core.model_card import PreprocessSpec
from core.pixels import to_rgb
from core.preprocess import preprocess

# Photos (and one scanned page, as libraries hold documents too) that ship inside the scikit-image wheel.
CALIBRATION_FILES = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "color.png",
    "page.png",
)
QUANTIZED_OPS = ["Conv", "Clip", "Add"]


def calibration_photos() -> list[Image.Image]:
    """The calibration photos as RGB images; raises RuntimeError when scikit-image is not installed."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("calibrating the int8 image encoder needs scikit-image's photos: pip install scikit-image")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    photos = []
    for name in CALIBRATION_FILES:
        with Image.open(data / name) as image:
            image.load()
            photos.append(to_rgb(image))
    return photos


def calibration_pixels(spec: PreprocessSpec) -> np.ndarray:
    """Every view of every calibration photo, preprocessed as the card says: float32 [N * views, 3, S, S]."""
    return np.concatenate([preprocess(photo, spec) for photo in calibration_photos()])


class _Batches(CalibrationDataReader):
    def __init__(self, input_name: str, pixels: np.ndarray, batch_size: int = 8) -> None:
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            {input_name: pixels[i : i + batch_size]} for i in range(0, len(pixels), batch_size)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_image_encoder(src: Path, dest: Path, input_name: str, pixels: np.ndarray) -> Path:
    """Write an int8 (QDQ, per-channel weights) copy of the float32 encoder `src` to `dest`.

    Activation ranges are the min/max seen on `pixels`. Activations are unsigned (u8 x s8): onnxruntime's fast
    int8 kernels are u8s8 (signed activations measured no faster than float32 here). Weights keep all 8 bits:
    7-bit weights ("reduce_range", against u8s8 saturation on x86 without VNNI) measured a worst photo at 0.967
    cosine instead of 0.991.
    """
    # onnxruntime's recommended preparation: shape inference and graph folding, so QDQ pairs land where it fuses them.
    prepared = dest.with_suffix(".prepared.onnx")
    try:
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        _quantize(prepared, dest, input_name, pixels)
    finally:
        prepared.unlink(missing_ok=True)
    return dest


def _quantize(src: Path, dest: Path, input_name: str, pixels: np.ndarray) -> None:
    quantize_static(
        str(src),
        str(dest),
        _Batches(input_name, pixels),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=QUANTIZED_OPS,
    )
