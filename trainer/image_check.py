"""Write a package's image check: views, the exact graph's embeddings of them, and the bound core holds (see
`core.image_check`), and run that check on the building machine so the card records what was seen where."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from core.image_check import ImageCheckResult, cpu_description, judge, load_check_views, normalize_views
from core.model_card import EncoderSpec, ImageCheckSpec, PreprocessSpec
from trainer.onnx_export import onnx_outputs

CHECK_FILE = "image_check.npz"


def save_check_views(dest: Path, views: np.ndarray, reference: np.ndarray) -> Path:
    """Store uint8 views [N, S, S, 3] and their reference embeddings [N, D] (compressed npz, no pickles)."""
    np.savez_compressed(dest, views=views.astype(np.uint8), reference=reference.astype(np.float32))
    return dest


def write_image_check(
    package: Path, views: np.ndarray, exact: EncoderSpec, spec: PreprocessSpec, min_cosine: float
) -> ImageCheckSpec:
    """Embed `views` with the exact graph `package/exact.file` and store them as the package's check file."""
    reference = onnx_outputs(package / exact.file, {exact.inputs[0]: normalize_views(views, spec)})
    save_check_views(package / CHECK_FILE, views, reference)
    return ImageCheckSpec(CHECK_FILE, exact, min_cosine)


def run_image_check(
    package: Path, fast: EncoderSpec, check: ImageCheckSpec, spec: PreprocessSpec, dim: int
) -> ImageCheckResult:
    """The check core runs on load, run here: the fast graph on the stored views against their reference."""
    views = load_check_views(package / check.views, spec, dim)
    embeddings = onnx_outputs(package / fast.file, {fast.inputs[0]: views.pixels})
    return judge(embeddings, views, check, fast.file)


def check_record(result: ImageCheckResult, views: int) -> dict[str, object]:
    """The card's record of a check run: what was measured, on which CPU, with which onnxruntime."""
    return {
        "cpu": cpu_description(),
        "onnxruntime": ort.__version__,
        "views": views,
        "cosine_min": round(result.cosine_min, 5),
        "cosine_mean": round(result.cosine_mean, 5),
        "fast_encoder_kept": result.passed,
    }
