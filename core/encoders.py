"""Run a model package's ONNX image and text encoders with onnxruntime (no torch at run time)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from core.errors import ModelPackageError
from core.image_check import ImageCheckResult, judge, load_check_views
from core.model_card import EncoderSpec, ModelCard, read_card, verify_files
from core.preprocess import preprocess
from core.tokenizers import Tokenizer, load_tokenizer


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32, copy=False)


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    # Idle onnxruntime threads sleep instead of spinning: while the index embeds one batch, decode threads need
    # those cores to prepare the next one.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
        raise ModelPackageError(f"{path}: onnxruntime cannot load this encoder: {exc}") from exc


class ModelPackage:
    """A verified model package, ready to embed images and texts.

    Sessions and the tokenizer are created on first use, so listing or verifying packages stays cheap.
    """

    def __init__(self, package_dir: Path, *, verify: bool = True, threads: int = 0) -> None:
        self.dir = Path(package_dir)
        self.card: ModelCard = read_card(self.dir)
        if verify:
            verify_files(self.dir, self.card)
        self._threads = threads
        # One run at a time per encoder keeps memory predictable; separate locks let a text query run while
        # the image encoder is busy indexing.
        self._image_lock = threading.Lock()
        self._text_lock = threading.Lock()
        self.image_check_result: ImageCheckResult | None = None

    @property
    def id(self) -> str:
        return self.card.id

    @property
    def dim(self) -> int:
        return self.card.embedding_dim

    @cached_property
    def _image_session(self) -> ort.InferenceSession:
        session = self._checked_session(self.card.image_encoder)
        check = self.card.image_check
        if check is None:
            return session
        # A fast (int8) graph is trusted only once it has matched the exact graph on this CPU (core.image_check).
        views = load_check_views(self.dir / check.views, self.card.preprocess, self.dim)
        raw = session.run([self.card.image_encoder.output], {self.card.image_encoder.inputs[0]: views.pixels})[0]
        self.image_check_result = judge(raw, views, check, self.card.image_encoder.file)
        if self.image_check_result.passed:
            return session
        return self._checked_session(check.fallback)

    def check_image_encoder(self) -> ImageCheckResult | None:
        """Run the card's image check on this CPU (once per process); None when the card has no check."""
        with self._image_lock:
            _ = self._image_session
        return self.image_check_result

    @cached_property
    def _text_session(self) -> ort.InferenceSession:
        return self._checked_session(self.card.text_encoder)

    @cached_property
    def tokenizer(self) -> Tokenizer:
        return load_tokenizer(self.card.tokenizer, self.dir)

    def _checked_session(self, spec: EncoderSpec) -> ort.InferenceSession:
        session = _session(self.dir / spec.file, self._threads)
        inputs = {i.name for i in session.get_inputs()}
        outputs = {o.name for o in session.get_outputs()}
        if inputs != set(spec.inputs) or spec.output not in outputs:
            raise ModelPackageError(
                f"{self.dir / spec.file}: graph inputs {sorted(inputs)} / outputs {sorted(outputs)} do not match the "
                f"card ({list(spec.inputs)} -> {spec.output})"
            )
        return session

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """One RGB image as the image encoder's input views, float32 [views, 3, S, S]."""
        return preprocess(image, self.card.preprocess)

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Embed preprocessed images [N, views, 3, S, S] -> float32 [N, D], L2-normalised."""
        n, views = pixels.shape[:2]
        flat = np.ascontiguousarray(pixels.reshape(n * views, *pixels.shape[2:]), dtype=np.float32)
        spec = self.card.image_encoder
        with self._image_lock:
            raw = self._image_session.run([spec.output], {spec.inputs[0]: flat})[0]
        # Views are averaged before normalising, so each view weighs by its evidence (e.g. ConSE mass).
        return l2_normalize(raw.reshape(n, views, -1).mean(axis=1))

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed RGB PIL images -> float32 [N, D], L2-normalised."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_pixels(np.stack([self.preprocess(image) for image in images]))

    def embed_texts(self, texts: Sequence[str], *, as_query: bool = False) -> np.ndarray:
        """Embed strings -> float32 [M, D], L2-normalised. `as_query` applies the card's query template."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if as_query:
            texts = [self.card.query_template.format(t) for t in texts]
        tokens = self.tokenizer(list(texts))
        spec = self.card.text_encoder
        missing = [name for name in spec.inputs if name not in tokens]
        if missing:
            raise ModelPackageError(f"{self.dir}: the tokenizer gives no {missing} that the text encoder needs")
        with self._text_lock:
            raw = self._text_session.run([spec.output], {name: tokens[name] for name in spec.inputs})[0]
        return l2_normalize(raw)
