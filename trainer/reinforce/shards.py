"""Reinforced samples in DataCompDR's webdataset layout: writing shards and parsing (untrusted) samples.

Members of one sample, all named ``<key>.<ext>`` (docs/mobileclip-spec.md §9.2):

* ``jpg`` / ``png`` / ``webp``: the image, stored upright (no EXIF rotation left to apply);
* ``txt``: the real caption; ``json``: ``{"uid", "sha256", "label", ...}``; ``url.txt`` in Apple's data;
* ``syn.json``: ``{"syn_text": [S captions]}``; ``paug.json``: ``{"param_aug": [K augmentation entries]}``;
* ``npz``: ``image_emb`` float32 [K, sum D] and ``text_emb`` float32 [1 + S, sum D], each teacher's columns
  L2-normalised. The MobileCLIP2 (v2) layout stores synthetic-caption embeddings as ``<syn key>_emb`` instead.

Shards are written deterministically (fixed tar headers, fixed zip timestamps), so the same inputs give the same
bytes on any host, and atomically (temporary file, then rename), so a finished shard is always whole.
"""

from __future__ import annotations

import io
import json
import math
import os
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.pixels import to_rgb  # also sets Pillow's decompression-bomb limit
from trainer.reinforce.augment import AugmentError, AugParams
from trainer.reinforce.safetar import DEFAULT_LIMITS, Limits, SampleError

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass
class Sample:
    """One parsed sample: image bytes, captions, stored augmentations and teacher embeddings."""

    key: str
    image: bytes
    caption: str
    syn_captions: list[str]
    params: list[AugParams]
    image_emb: np.ndarray  # [K, sum D]
    text_emb: np.ndarray  # [1 + S, sum D] (v1) or [1, sum D] with syn_emb set (v2)
    syn_emb: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Album label, or "" for data without labels."""
        label = self.meta.get("label", "")
        return label if isinstance(label, str) else ""

    def syn_embedding(self, index: int) -> np.ndarray:
        """Teacher embeddings of synthetic caption ``index``."""
        return self.syn_emb[index] if self.syn_emb is not None else self.text_emb[1 + index]


def load_json(data: bytes, what: str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Parse a JSON member with a size cap; raises SampleError."""
    if len(data) > limits.json_bytes:
        raise SampleError(f"{what} is {len(data):,} bytes, over the {limits.json_bytes:,}-byte limit")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SampleError(f"{what} is not valid JSON: {exc}") from exc


def load_npz(data: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, np.ndarray]:
    """Arrays of an npz member, refusing pickled (object) arrays and decompression bombs; raises SampleError."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            total = sum(info.file_size for info in infos)
            if total > limits.npz_bytes:
                raise SampleError(f"npz unpacks to {total:,} bytes, over the {limits.npz_bytes:,}-byte limit")
            arrays = {}
            for info in infos:
                if not info.filename.endswith(".npy") or "/" in info.filename:
                    raise SampleError(f"npz holds an unexpected member {info.filename[:80]!r}")
                with archive.open(info) as handle:
                    arrays[info.filename[:-4]] = np.lib.format.read_array(handle, allow_pickle=False)
            return arrays
    except SampleError:
        raise
    except ValueError as exc:  # numpy refuses object arrays without allow_pickle with a ValueError
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise SampleError("npz holds pickled (object) arrays, which are refused (allow_pickle=False)") from exc
        raise SampleError(f"npz is not readable: {exc}") from exc
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise SampleError(f"npz is not readable: {exc}") from exc


def encode_npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An npz (uncompressed, like ``np.savez``) with fixed timestamps, so equal arrays give equal bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def decode_image(data: bytes) -> Image.Image:
    """Stored image bytes as RGB, without EXIF rotation (stored images are upright, as in DataComp)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                return to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise SampleError(f"image too large: {exc}") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise SampleError(f"image is not readable: {exc}") from exc


def _float_matrix(arrays: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in arrays:
        raise SampleError(f"npz has no '{name}' (it has: {', '.join(sorted(arrays)) or 'nothing'})")
    array = arrays[name]
    if array.ndim != 2 or array.dtype.kind not in "fV" or array.dtype.itemsize not in (2, 4, 8):
        raise SampleError(f"npz '{name}' must be a 2-D float array, got {array.dtype} {array.shape}")
    if array.dtype.kind == "V":  # bfloat16 saved through a raw 2-byte view: widen to float32
        array = (array.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise SampleError(f"npz '{name}' holds NaN or infinite values")
    return array


def parse_sample(
    key: str, members: dict[str, bytes], *, syn_key: str = "syn_text", limits: Limits = DEFAULT_LIMITS
) -> Sample:
    """Validate one sample's members and return it parsed; raises SampleError saying what is wrong."""
    image_ext = next((ext for ext in IMAGE_EXTS if ext in members), None)
    if image_ext is None:
        hint = (
            " (DataCompDR tars hold no images: join them with the DataComp images first)"
            if "url.txt" in members
            else ""
        )
        raise SampleError(f"sample {key!r} has no image member{hint}")
    if "npz" not in members or "paug.json" not in members:
        raise SampleError(f"sample {key!r} lacks its npz or paug.json member: not a reinforced sample")
    caption_raw = members.get("txt")
    if caption_raw is None:
        raise SampleError(f"sample {key!r} has no real caption (txt member)")
    if len(caption_raw) > limits.json_bytes:
        raise SampleError(f"sample {key!r}: caption is over {limits.json_bytes:,} bytes")
    caption = caption_raw.decode("utf-8", errors="replace").strip()
    paug = load_json(members["paug.json"], f"sample {key!r} paug.json", limits)
    entries = paug.get("param_aug") if isinstance(paug, dict) else None
    if isinstance(entries, str):  # the HF parquet view stores the list as a JSON string
        entries = load_json(entries.encode(), f"sample {key!r} param_aug", limits)
    if not isinstance(entries, list) or not entries:
        raise SampleError(f"sample {key!r}: paug.json has no 'param_aug' list")
    try:
        params = [AugParams.from_json(entry) for entry in entries]
    except AugmentError as exc:
        raise SampleError(f"sample {key!r}: {exc}") from exc
    syn: list[str] = []
    if "syn.json" in members:
        syn_doc = load_json(members["syn.json"], f"sample {key!r} syn.json", limits)
        syn = syn_doc.get(syn_key, []) if isinstance(syn_doc, dict) else None
        if not isinstance(syn, list) or not all(isinstance(text, str) for text in syn):
            raise SampleError(f"sample {key!r}: syn.json '{syn_key}' is not a list of strings")
    meta = load_json(members["json"], f"sample {key!r} json", limits) if "json" in members else {}
    arrays = load_npz(members["npz"], limits)
    image_emb = _float_matrix(arrays, "image_emb")
    text_emb = _float_matrix(arrays, "text_emb")
    syn_emb = _float_matrix(arrays, f"{syn_key}_emb") if f"{syn_key}_emb" in arrays else None
    if image_emb.shape[0] != len(params):
        raise SampleError(f"sample {key!r}: {image_emb.shape[0]} image embeddings for {len(params)} augmentations")
    expected_text = 1 if syn_emb is not None else 1 + len(syn)
    if text_emb.shape[0] < expected_text or text_emb.shape[1] != image_emb.shape[1]:
        raise SampleError(
            f"sample {key!r}: text_emb {text_emb.shape} does not fit {len(syn)} synthetic captions and "
            f"image_emb {image_emb.shape}"
        )
    if syn_emb is not None and (syn_emb.shape[0] != len(syn) or syn_emb.shape[1] != image_emb.shape[1]):
        raise SampleError(f"sample {key!r}: {syn_key}_emb {syn_emb.shape} does not fit {len(syn)} captions")
    return Sample(
        key, members[image_ext], caption, list(syn), params, image_emb, text_emb, syn_emb,
        meta if isinstance(meta, dict) else {},
    )  # fmt: skip


class ShardWriter:
    """Write one shard: members go to ``<path>.tmp-<pid>``, renamed to ``path`` only by ``close()``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        self._handle = self._tmp.open("wb")
        self._tar = tarfile.open(fileobj=self._handle, mode="w", format=tarfile.PAX_FORMAT)
        self.samples = 0

    def add(self, key: str, members: Mapping[str, bytes]) -> None:
        """Append one sample's members (extension -> bytes) in the given order."""
        for ext, data in members.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
        self.samples += 1

    def close(self) -> Path:
        """Finish the archive, flush it to disk and move it into place; returns the final path."""
        self._tar.close()
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the unfinished shard."""
        try:
            self._tar.close()
            self._handle.close()
        finally:
            self._tmp.unlink(missing_ok=True)


def unit_columns(emb: np.ndarray, slices: list[slice]) -> np.ndarray:
    """Per-teacher L2 norms of each row: [rows, teachers] (1.0 everywhere for well-formed embeddings)."""
    return np.stack([np.linalg.norm(emb[:, s], axis=1) for s in slices], axis=1)


def aug_json(params: list[AugParams]) -> bytes:
    """The ``paug.json`` member for a sample's augmentations."""
    return json.dumps({"param_aug": [p.to_json() for p in params]}, separators=(",", ":")).encode()


def is_finite_float(value: Any) -> bool:
    """A real number that is neither NaN nor infinite (for validating card fields)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
