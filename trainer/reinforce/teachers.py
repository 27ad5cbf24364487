"""Teachers for dataset reinforcement: any locally installed dual encoder behind one small interface.

A teacher says how it wants its image views (square resolution, interpolation, mean/std) and embeds views
and texts into unit-length rows. An ensemble is an ordered list of teachers; its embedding of a view is the
concatenation of each teacher's unit row, in list order (DataCompDR's layout, docs/mobileclip-spec.md §13.13).

Two implementations: a core model package run by onnxruntime (the starter, imported MobileCLIP packages and any
future package), and a torch CLIP module such as ``trainer.models.clip.MobileCLIP`` (batched, inference mode, on
the GPU when there is one). torch is imported only by the torch teacher.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.encoders import ModelPackage, l2_normalize
from core.errors import ModelPackageError, PhotoSeekError
from core.model_card_types import MobileCLIPArchitecture
from trainer.reinforce.augment import RESAMPLE, normalize

DEFAULT_LOGIT_SCALE = 100.0  # DataCompDR's fixed teacher scale, used when a model records none
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


class TeacherError(PhotoSeekError):
    """A teacher cannot be loaded or was given unusable input."""


class Teacher(ABC):
    """One dual-encoder teacher. Subclasses set the attributes and implement the two embed methods."""

    id: str
    dim: int
    logit_scale: float
    resolution: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    kind: str = "teacher"

    @abstractmethod
    def embed_views(self, views: Sequence[Image.Image]) -> np.ndarray:
        """Embed RGB views of ``resolution`` x ``resolution`` pixels -> float32 [N, dim], unit rows."""

    @abstractmethod
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed captions -> float32 [N, dim], unit rows."""

    def source(self) -> dict[str, Any]:
        """Where the weights come from (for the dataset card and for checking that a resumed run matches)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """The teacher's entry in the dataset card."""
        return {
            "id": self.id,
            "kind": self.kind,
            "dim": self.dim,
            "logit_scale": float(self.logit_scale),
            "resolution": self.resolution,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
            "source": self.source(),
        }

    def normalize_views(self, views: Sequence[Image.Image]) -> np.ndarray:
        """Views as the float32 [N, 3, R, R] batch this teacher's image encoder takes."""
        size = (self.resolution, self.resolution)
        for view in views:
            if view.size != size or view.mode != "RGB":
                raise TeacherError(
                    f"teacher {self.id} takes RGB {size[0]}x{size[1]} views, got {view.mode} {view.size}"
                )
        if not views:
            return np.zeros((0, 3, *size), dtype=np.float32)
        return np.stack([normalize(view, self.mean, self.std) for view in views])


class PackageTeacher(Teacher):
    """A core model package (ONNX encoders run by onnxruntime) as a teacher; each view is fed as one view."""

    kind = "package"

    def __init__(
        self, package: ModelPackage | Path, *, logit_scale: float | None = None, batch_size: int = 32, threads: int = 0
    ) -> None:
        self.package = package if isinstance(package, ModelPackage) else ModelPackage(Path(package), threads=threads)
        card = self.package.card
        self.id = card.id
        self.dim = card.embedding_dim
        recorded = card.architecture.logit_scale if isinstance(card.architecture, MobileCLIPArchitecture) else None
        self.logit_scale = float(logit_scale if logit_scale is not None else recorded or DEFAULT_LOGIT_SCALE)
        self.resolution = card.preprocess.size
        self.interpolation = card.preprocess.interpolation
        self.mean = tuple(card.preprocess.mean)  # type: ignore[assignment]
        self.std = tuple(card.preprocess.std)  # type: ignore[assignment]
        self.batch_size = max(1, batch_size)

    def embed_views(self, views: Sequence[Image.Image]) -> np.ndarray:
        pixels = self.normalize_views(views)
        if not len(pixels):
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            self.package.embed_pixels(pixels[i : i + self.batch_size, None])
            for i in range(0, len(pixels), self.batch_size)
        ]
        return np.concatenate(parts)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            self.package.embed_texts(list(texts[i : i + self.batch_size]))
            for i in range(0, len(texts), self.batch_size)
        ]
        return np.concatenate(parts)

    def source(self) -> dict[str, Any]:
        files = self.package.card.files
        digest = hashlib.sha256("".join(f"{k}={files[k]};" for k in sorted(files)).encode()).hexdigest()
        return {"package": self.package.card.name, "files_sha256": digest}


class TorchClipTeacher(Teacher):
    """A torch CLIP module with ``encode_image(pixels, normalize=True)`` and ``encode_text(ids, eot, normalize=True)``.

    Runs batched under ``torch.inference_mode`` on ``device`` (default: the GPU when there is one); ``amp`` runs
    the encoders in bfloat16 autocast on the GPU (the rows are renormalised in float32 afterwards).
    """

    kind = "torch"

    def __init__(
        self,
        model: Any,
        *,
        id: str,
        resolution: int,
        interpolation: str,
        mean: Sequence[float],
        std: Sequence[float],
        dim: int | None = None,
        logit_scale: float | None = None,
        tokenizer: Any = None,
        device: str | None = None,
        batch_size: int = 64,
        amp: bool = False,
        source: dict[str, Any] | None = None,
    ) -> None:
        import torch

        if interpolation not in RESAMPLE:
            raise TeacherError(f"unknown interpolation {interpolation!r}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.eval().to(self.device)
        if tokenizer is None:
            from core.tokenizers.clip_bpe import ClipBpeTokenizer, bundled_vocab_path

            tokenizer = ClipBpeTokenizer(bundled_vocab_path())
        self.tokenizer = tokenizer
        self.id = id
        self.resolution = resolution
        self.interpolation = interpolation
        self.mean = tuple(float(v) for v in mean)  # type: ignore[assignment]
        self.std = tuple(float(v) for v in std)  # type: ignore[assignment]
        if logit_scale is None:
            scale_fn = getattr(model, "logit_scale_exp", None)
            logit_scale = float(scale_fn().detach()) if scale_fn is not None else DEFAULT_LOGIT_SCALE
        self.logit_scale = float(logit_scale)
        self.batch_size = max(1, batch_size)
        self.amp = amp and self.device.type == "cuda"
        self._source = dict(source) if source is not None else {"weights_sha256": _weights_digest(self.model)}
        self.dim = dim if dim is not None else self.embed_texts(["a photo"]).shape[1]

    @classmethod
    def from_mobileclip(
        cls, model: Any, *, reparameterize: bool = True, inplace: bool = False, **kwargs: Any
    ) -> TorchClipTeacher:
        """A ``trainer.models.clip.MobileCLIP`` model, with preprocessing from its registry entry.

        ``reparameterize`` fuses the train-time branches first (same outputs, faster); on a copy unless ``inplace``.
        """
        info = model.info
        kwargs.setdefault("id", info.name)
        if reparameterize:
            from trainer.models.reparam import reparameterize_model

            model = reparameterize_model(model.eval(), inplace=inplace)
        return cls(
            model, resolution=info.resolution, interpolation=info.interpolation, mean=info.mean, std=info.std,
            dim=info.embed_dim, **kwargs,
        )  # fmt: skip

    @classmethod
    def from_checkpoint(cls, path: Path, *, name: str | None = None, **kwargs: Any) -> TorchClipTeacher:
        """An official MobileCLIP checkpoint file (either layout), loaded by ``trainer.checkpoints`` and fused."""
        from core.model_card import sha256_file
        from trainer.checkpoints import load_checkpoint

        loaded = load_checkpoint(Path(path), name)
        source = {"checkpoint": Path(path).name, "sha256": sha256_file(Path(path)), "notes": loaded.notes}
        return cls.from_mobileclip(loaded.model, inplace=True, source=source, **kwargs)

    def _run(self, fn: Any, *tensors: Any) -> np.ndarray:
        import torch

        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            out = fn(*(t.to(self.device, non_blocking=True) for t in tensors))
        return l2_normalize(out.float().cpu().numpy())

    def embed_views(self, views: Sequence[Image.Image]) -> np.ndarray:
        import torch

        pixels = self.normalize_views(views)
        parts = [
            self._run(
                lambda x: self.model.encode_image(x, normalize=True), torch.from_numpy(pixels[i : i + self.batch_size])
            )
            for i in range(0, len(pixels), self.batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        parts = []
        for i in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(list(texts[i : i + self.batch_size]))
            ids, eot = torch.from_numpy(tokens["input_ids"]), torch.from_numpy(tokens["eot_index"])
            parts.append(self._run(lambda a, b: self.model.encode_text(a, b, normalize=True), ids, eot))
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)

    def source(self) -> dict[str, Any]:
        return dict(self._source)


def _weights_digest(model: Any) -> str:
    """sha256 over a module's state dict (names and bytes): identifies in-memory weights for the resume check."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_ensemble(teachers: Sequence[Teacher]) -> None:
    """Refuse an empty ensemble or one that names a teacher twice."""
    if not teachers:
        raise TeacherError("no teachers: install a model package (python -m trainer build-starter) or name one")
    ids = [t.id for t in teachers]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise TeacherError(f"teacher(s) {', '.join(duplicates)} listed twice")


def ensemble_texts(teachers: Sequence[Teacher], texts: Sequence[str]) -> np.ndarray:
    """Captions embedded by every teacher, concatenated in ensemble order: float32 [N, sum dim]."""
    return np.concatenate([t.embed_texts(texts) for t in teachers], axis=1).astype(np.float32, copy=False)


def load_teachers(
    specs: Sequence[str] | None, library: Path, *, device: str | None = None, threads: int = 0
) -> list[Teacher]:
    """Teachers by model id (packages of the library's ModelStore) or checkpoint path; None: every installed package."""
    from core.model_store import ModelStore

    store = ModelStore(library)
    if not specs:
        teachers: list[Teacher] = [PackageTeacher(ModelPackage(m.dir, threads=threads)) for m in store.list()]
        check_ensemble(teachers)
        return teachers
    teachers = []
    for spec in specs:
        path = Path(spec)
        if path.suffix.lower() in CHECKPOINT_SUFFIXES:
            if not path.is_file():
                raise TeacherError(f"checkpoint {path} does not exist")
            teachers.append(TorchClipTeacher.from_checkpoint(path, device=device))
            continue
        try:
            teachers.append(PackageTeacher(ModelPackage(store.find(spec).dir, threads=threads)))
        except ModelPackageError as exc:
            raise TeacherError(str(exc)) from exc
    check_ensemble(teachers)
    return teachers
