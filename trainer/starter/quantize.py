"""Post-training int8 quantization of the starter's image encoder, calibrated on real photos; a smaller file for its
text encoder (the same float32 arithmetic).

EfficientNet-Lite was designed for integer inference (ReLU6, no squeeze-excitation), so static per-channel int8
runs about twice as fast as float32 in onnxruntime: indexing a library is bound by this encoder. Only convolutions,
their ReLU6 and the residual adds are quantized; the ImageNet head and the ConSE mixing stay in float32.

How faithful int8 is depends on the CPU: without VNNI, x86 kernels add pairs of u8 x s8 products in 16 bits and
saturate. Measured on an emulated AVX2-only CPU (bench/int8_cpus.py), most of the error came from the stem and the
first blocks, whose inputs (neighbouring pixels, wide ReLU6 maps) are large together; they stay in float32 at a
small cost in speed. The package still ships the float32 graph, which core runs where a CPU's int8 strays anyway.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quant_pre_process, quantize_static
from PIL import Image

from core.model_card import PreprocessSpec
from core.pixels import to_rgb
from core.preprocess import resize_view

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
# Node-name prefixes of the layers kept in float32 (the exported classifier's stem and first two blocks). On the 34
# views of the 17 PyPI corpus photos they lift the worst view's cosine to float32 from 0.984 to 0.994 with AVX-512
# VNNI, and from 0.923 to 0.978 on an emulated AVX2 CPU, for about 10 % of the int8 speed.
# The face detector stays float32 too: its scores feed thresholds, and it is small.
FLOAT_LAYERS = ("/classifier/_conv_stem/", "/classifier/_blocks.0/", "/classifier/_blocks.1/", "/pixel_sources")


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


def calibration_views(spec: PreprocessSpec) -> np.ndarray:
    """Every view of every calibration photo, resized and cropped as the card says: uint8 [N * views, S, S, 3]."""
    return np.stack(
        [
            np.asarray(resize_view(photo, spec.size, view, spec.interpolation), dtype=np.uint8)
            for photo in calibration_photos()
            for view in spec.views
        ]
    )


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
    int8 kernels are u8s8. 7-bit weights ("reduce_range", against saturation without VNNI) cost more accuracy on
    every CPU than keeping the first layers in float32 (bench/int8_cpus.py).
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
        nodes_to_exclude=_float_nodes(src),
    )


def _float_nodes(graph: Path) -> list[str]:
    names = [node.name for node in onnx.load(str(graph)).graph.node if node.name.startswith(FLOAT_LAYERS)]
    if not names:
        raise RuntimeError(f"{graph}: none of the layers to keep in float32 were found (node names changed?)")
    return names


def shrink_text_encoder(graph_file: Path) -> None:
    """Halve the starter's exported text encoder in place, keeping float32 arithmetic: its large weights are stored
    as float16 and cast back to float32 where they are used (onnxruntime folds the casts once, when it loads it).

    Unit embeddings move by at most 1e-4 and no tag or rank changes on the corpus. int8 does not hold: onnxruntime's
    dynamic int8 MatMuls change a third of the photos' tag sets, and an int8 token table (a scale per row) moves
    unit embeddings by 1.3e-3, past the 1e-3 the album fine-tune allows between the package and the MiniLM weights
    it rebuilds (bench/text_precision.py measures all three).
    """
    model = onnx.load(str(graph_file))
    _float16_weights(model.graph)
    onnx.save(model, str(graph_file))


def _float16_weights(graph: onnx.GraphProto, min_elements: int = 4096) -> None:
    """Large float32 weights stored as float16, each cast back to float32 before use (onnxruntime folds the casts
    once, when it loads the graph, so the arithmetic stays float32)."""
    casts = []
    for weight in list(graph.initializer):
        if weight.data_type != onnx.TensorProto.FLOAT or np.prod(weight.dims) < min_elements:
            continue
        half = onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(weight).astype(np.float16), f"{weight.name}.f16")
        graph.initializer.remove(weight)
        graph.initializer.append(half)
        casts.append(onnx.helper.make_node("Cast", [half.name], [weight.name], to=onnx.TensorProto.FLOAT))
    for cast in reversed(casts):
        graph.node.insert(0, cast)
