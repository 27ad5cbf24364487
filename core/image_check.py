"""Check a package's reduced-precision image encoder on the CPU it runs on, and fall back when it strays.

int8 kernels differ between CPUs: onnxruntime's u8 x s8 convolutions sum pairs of products in 16 bits on x86 CPUs
without VNNI, and saturate there, so one int8 graph can be faithful on one machine and off on another. A package
that ships such a graph also ships its exact (float32) graph and a few check views with the exact graph's
embeddings; core runs the fast graph on those views once per process and uses it only if every view stays within
the card's cosine bound. The check is recomputed every time: nothing about the machine is stored.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from core.errors import ModelPackageError
from core.model_card import ImageCheckSpec, PreprocessSpec
from core.preprocess import normalisation

# The CPU features that decide which int8 kernels onnxruntime runs (Linux /proc/cpuinfo flag names).
INT8_CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


@dataclass(frozen=True)
class CheckViews:
    """The check views as the encoder takes them, and the exact graph's embeddings of them."""

    pixels: np.ndarray  # float32 [N, 3, S, S], normalised as the card's preprocessing says
    reference: np.ndarray  # float32 [N, D], unit length


@dataclass(frozen=True)
class ImageCheckResult:
    """What the check found on this CPU and which encoder file core therefore runs."""

    encoder_file: str
    cosine_min: float
    cosine_mean: float
    passed: bool
    cpu: str

    def describe(self) -> str:
        verdict = "kept" if self.passed else "replaced by the exact graph"
        return (
            f"fast image encoder on this CPU: cosine to the exact graph min {self.cosine_min:.4f}, "
            f"mean {self.cosine_mean:.4f} -> {verdict} ({self.encoder_file})"
        )


def normalize_views(views: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 RGB views [N, S, S, 3] -> float32 [N, 3, S, S], exactly as `core.preprocess.preprocess` scales them."""
    scale, offset = normalisation(spec)
    pixels = views.astype(np.float32)
    pixels *= scale
    pixels -= offset
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))


def load_check_views(path: Path, spec: PreprocessSpec, dim: int) -> CheckViews:
    """Read a check file (npz: `views` uint8 [N, S, S, 3], `reference` float32 [N, D]); never unpickles."""
    try:
        with np.load(path, allow_pickle=False) as data:
            views, reference = data["views"], data["reference"]
    except (OSError, KeyError, ValueError) as exc:
        raise ModelPackageError(f"{path}: cannot read the image check views: {exc}") from exc
    size = spec.size
    if views.dtype != np.uint8 or views.ndim != 4 or views.shape[1:] != (size, size, 3) or not len(views):
        raise ModelPackageError(f"{path}: check views must be uint8 [N, {size}, {size}, 3], not {views.shape}")
    if reference.shape != (len(views), dim):
        raise ModelPackageError(f"{path}: reference embeddings must be [{len(views)}, {dim}], not {reference.shape}")
    return CheckViews(normalize_views(views, spec), reference.astype(np.float32))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two [N, D] arrays."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)


def judge(embeddings: np.ndarray, views: CheckViews, check: ImageCheckSpec, encoder_file: str) -> ImageCheckResult:
    """Compare the fast graph's embeddings of the check views with the exact graph's."""
    found = cosines(embeddings.astype(np.float64), views.reference.astype(np.float64))
    passed = bool(np.isfinite(found).all() and found.min() >= check.min_cosine)
    return ImageCheckResult(
        encoder_file=encoder_file if passed else check.fallback.file,
        cosine_min=float(np.nan_to_num(found.min(), nan=-1.0)),
        cosine_mean=float(np.nan_to_num(found.mean(), nan=-1.0)),
        passed=passed,
        cpu=cpu_description(),
    )


@cache
def cpu_description() -> str:
    """The CPU's model name and the int8-relevant features it has, e.g. 'AMD EPYC 7B13 (x86_64: avx2)'."""
    machine = platform.machine() or "unknown"
    name, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model", "Hardware") and not name:
                name = value.strip()
            elif key in ("flags", "Features"):
                flags.update(value.split())
    except OSError:
        name = platform.processor()
    features = [flag for flag in INT8_CPU_FLAGS if flag in flags]
    return f"{name or 'unknown CPU'} ({machine}: {', '.join(features) or 'no int8 dot-product features listed'})"
