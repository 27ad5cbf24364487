"""Read PyTorch and safetensors checkpoints into numpy arrays without torch, refusing anything that could run code.

A PyTorch checkpoint (``torch.save``'s zip format, torch >= 1.6) is a zip holding ``<archive>/data.pkl`` and one
raw little-endian member ``<archive>/data/<key>`` per storage. Unpickling an untrusted pickle runs whatever
callables it names, so ``data.pkl`` is read by an unpickler that resolves only the few globals a state dict needs
(``collections.OrderedDict``, the tensor/parameter rebuild functions, the ``torch.*Storage`` types), each to our
own numpy code; any other global is refused before anything is called. Storages are read with their size checked
against the zip member, tensors are copied out of them through their offset and strides.
"""

from __future__ import annotations

import collections
import math
import pickle
import struct
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.lib.stride_tricks import as_strided

from core.errors import CheckpointError
from core.safetensors_file import bfloat16_to_float32, read_into, read_safetensors

# Output bytes allowed per byte of checkpoint: bfloat16 widens x2 and tied weights share storages; a crafted pickle
# that views one storage thousands of times would otherwise ask for terabytes.
_MAX_EXPANSION = 8
_STORAGES: dict[str, tuple[str, str]] = {
    "FloatStorage": ("<f4", "float32"),
    "DoubleStorage": ("<f8", "float64"),
    "HalfStorage": ("<f2", "float16"),
    "BFloat16Storage": ("<u2", "bfloat16"),
    "LongStorage": ("<i8", "int64"),
    "IntStorage": ("<i4", "int32"),
    "ShortStorage": ("<i2", "int16"),
    "CharStorage": ("i1", "int8"),
    "ByteStorage": ("u1", "uint8"),
    "BoolStorage": ("?", "bool"),
}


@dataclass(frozen=True)
class Checkpoint:
    """The arrays of a checkpoint file and how they were stored.

    ``container`` is ``plain`` (the file is the state dict) or ``state_dict`` (nested in that entry; other entries
    such as ``epoch`` are dropped); ``module_prefix`` tells that every key started with ``module.`` (removed).
    ``source_dtypes`` maps each key to the dtype in the file (``bfloat16`` entries are returned as float32).
    """

    arrays: dict[str, np.ndarray]
    file_format: str  # "torch-zip" or "safetensors"
    container: str
    module_prefix: bool
    source_dtypes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _StorageType:
    """What a ``torch.<Name>Storage`` global resolves to: not callable, so a pickle cannot REDUCE on it."""

    dtype: np.dtype
    name: str


@dataclass(slots=True)
class _Storage:
    data: np.ndarray  # flat, as stored
    name: str
    handed_out: bool = False  # whether one tensor already owns `data` itself


@dataclass(frozen=True, slots=True)
class _Tensor:
    """A rebuilt tensor. Frozen with slots so that a pickle BUILD cannot set state on it."""

    array: np.ndarray
    source_dtype: str


def _check_indices(values: object, what: str) -> tuple[int, ...]:
    if not isinstance(values, tuple) or not all(type(v) is int and v >= 0 for v in values):
        raise CheckpointError(f"malformed tensor {what}: {values!r}")
    return values


def _strided(storage: _Storage, offset: object, size: object, stride: object) -> np.ndarray:
    """The tensor's elements copied out of its storage (a fresh array unless it is the whole storage, once)."""
    (offset,) = _check_indices((offset,), "storage offset")
    shape, strides = _check_indices(size, "size"), _check_indices(stride, "stride")
    if len(shape) != len(strides):
        raise CheckpointError(f"tensor size {shape} and stride {strides} differ in length")
    data = storage.data
    if math.prod(shape) == 0:
        return np.empty(shape, dtype=data.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(shape, strides, strict=True))
    if last >= data.size:
        raise CheckpointError(f"a tensor reaches element {last} of a storage of {data.size}")
    if math.prod(shape) > data.size:
        raise CheckpointError("a tensor has more elements than its storage (expanded views are not supported)")
    contiguous = strides == tuple(math.prod(shape[i + 1 :]) for i in range(len(shape)))
    if offset == 0 and contiguous and math.prod(shape) == data.size and not storage.handed_out:
        storage.handed_out = True
        return data.reshape(shape)
    view = as_strided(data[offset:], shape, tuple(s * data.itemsize for s in strides), writeable=False)
    return np.array(view, copy=True)


def _read_stored(path: Path, raw: BinaryIO, info: zipfile.ZipInfo, dtype: np.dtype, numel: int) -> np.ndarray:
    """An uncompressed member read straight into its array: zipfile's reader would copy it through bytes."""
    raw.seek(info.header_offset)
    header = raw.read(30)
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise CheckpointError(f"{path}: damaged zip entry {info.filename}")
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    raw.seek(info.header_offset + 30 + name_length + extra_length)
    array = read_into(path, raw, dtype, numel, info.filename)
    if zlib.crc32(array.view(np.uint8)) != info.CRC:
        raise CheckpointError(f"{path}: {info.filename} fails its checksum (damaged download?)")
    return array


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles a torch ``data.pkl``: only allow-listed globals, storages read from the zip."""

    def __init__(self, path: Path, archive: zipfile.ZipFile, raw: BinaryIO, prefix: str, budget: int) -> None:
        super().__init__(archive.open(f"{prefix}data.pkl"))
        self._path, self._archive, self._raw, self._prefix, self._budget = path, archive, raw, prefix, budget
        self._storages: dict[str, _Storage] = {}
        self._allowed: dict[tuple[str, str], object] = {
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_tensor"): self._rebuild_tensor,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): self._rebuild_parameter,
        }
        for name, (dtype, dtype_name) in _STORAGES.items():
            self._allowed["torch", name] = _StorageType(np.dtype(dtype), dtype_name)

    def find_class(self, module: str, name: str) -> object:
        found = self._allowed.get((module, name))
        if found is None:
            raise CheckpointError(
                f"{self._path}: refused: the file references {module}.{name}, which a state dict never needs, and "
                "loading it could run code. Official MobileCLIP checkpoints are plain tensor dictionaries; this "
                "file may be malicious."
            )
        return found

    def persistent_load(self, pid: object) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"{self._path}: unexpected persistent record {str(pid)[:80]}")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, _StorageType) or not isinstance(key, str) or type(numel) is not int or numel < 0:
            raise CheckpointError(f"{self._path}: malformed storage record {str(pid)[:80]}")
        if key in self._storages:
            if self._storages[key].data.dtype != kind.dtype:
                raise CheckpointError(f"{self._path}: storage {key} is used with two dtypes")
            return self._storages[key]
        self._storages[key] = _Storage(self._read_storage(key, kind.dtype, numel), kind.name)
        return self._storages[key]

    def _read_storage(self, key: str, dtype: np.dtype, numel: int) -> np.ndarray:
        try:
            info = self._archive.getinfo(f"{self._prefix}data/{key}")
        except KeyError:
            raise CheckpointError(f"{self._path}: storage {key} is missing from the archive") from None
        if info.file_size != numel * dtype.itemsize:
            raise CheckpointError(
                f"{self._path}: storage {key} declares {numel} x {dtype.itemsize} bytes but holds {info.file_size}"
            )
        if info.compress_type != zipfile.ZIP_STORED:  # torch never compresses; another zip tool might have
            with self._archive.open(info) as member:
                return read_into(self._path, member, dtype, numel, f"storage {key}")
        return _read_stored(self._path, self._raw, info, dtype, numel)

    def _rebuild_tensor(self, storage: object, offset: object, size: object, stride: object, *_: object) -> _Tensor:
        if not isinstance(storage, _Storage):
            raise CheckpointError(f"{self._path}: a tensor is built on something that is not a storage")
        array = _strided(storage, offset, size, stride)
        if storage.name == "bfloat16":
            array = bfloat16_to_float32(array)
        self._budget -= array.nbytes
        if self._budget < 0:
            raise CheckpointError(f"{self._path}: its tensors would take far more memory than the file's size")
        return _Tensor(array, storage.name)

    def _rebuild_parameter(self, data: object, *_: object) -> _Tensor:
        if not isinstance(data, _Tensor):
            raise CheckpointError(f"{self._path}: a parameter wraps something that is not a tensor")
        return data


def _archive_prefix(path: Path, archive: zipfile.ZipFile) -> str:
    """The ``<archive>/`` folder holding ``data.pkl`` (torch names it after the file it first saved to)."""
    found = [name for name in archive.namelist() if name.endswith("data.pkl") and name.count("/") == 1]
    if len(found) != 1:
        raise CheckpointError(f"{path}: a zip file, but not a PyTorch checkpoint (no single <archive>/data.pkl)")
    prefix = found[0].removesuffix("data.pkl")
    byteorder = f"{prefix}byteorder"
    if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
        raise CheckpointError(f"{path}: big-endian checkpoints are not supported")
    return prefix


def _unpickle_torch_zip(path: Path) -> object:
    try:
        with zipfile.ZipFile(path) as archive, path.open("rb") as raw:
            unpickler = _SafeUnpickler(path, archive, raw, _archive_prefix(path, archive), _budget(path))
            return unpickler.load()
    except CheckpointError:
        raise
    except Exception as exc:  # whatever a damaged or crafted pickle raises means "unreadable"
        raise CheckpointError(
            f"{path}: cannot read it as a PyTorch checkpoint (truncated or damaged download, or another kind of "
            f"file): {type(exc).__name__}: {str(exc)[:200]}"
        ) from None


def _budget(path: Path) -> int:
    return _MAX_EXPANSION * path.stat().st_size + (64 << 20)


def _unwrap(path: Path, data: object, file_format: str, dtypes: Mapping[str, str] | None = None) -> Checkpoint:
    """A Checkpoint from the loaded object: nested ``state_dict`` taken out, ``module.`` removed, tensors only."""
    container = "plain"
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data, container = data["state_dict"], "state_dict"
    if not isinstance(data, Mapping) or not data:
        raise CheckpointError(f"{path}: not a state dict (found {type(data).__name__})")
    bad = [str(k)[:60] for k, v in data.items() if not isinstance(k, str) or not isinstance(v, _Tensor | np.ndarray)]
    if bad:
        raise CheckpointError(f"{path}: entries that are not tensors: {', '.join(bad[:5])}")
    arrays = {k: v.array if isinstance(v, _Tensor) else v for k, v in data.items()}
    sources = {k: v.source_dtype for k, v in data.items() if isinstance(v, _Tensor)} | dict(dtypes or {})
    prefixed = all(k.startswith("module.") for k in arrays)
    if prefixed:
        arrays = {k.removeprefix("module."): v for k, v in arrays.items()}
        sources = {k.removeprefix("module."): v for k, v in sources.items()}
    return Checkpoint(arrays, file_format, container, prefixed, sources)


def _kind(path: Path) -> str:
    with path.open("rb") as stream:
        head = stream.read(9)
    if head.startswith(b"PK\x03\x04"):
        return "torch-zip"
    if path.suffix == ".safetensors" or head[8:9] == b"{":
        return "safetensors"
    if head.startswith(b"\x80"):
        raise CheckpointError(
            f"{path}: a legacy (pre-1.6) PyTorch pickle or a bare pickle; it is refused because reading it could run "
            "code. Re-save it with torch >= 1.6 (torch.save's default zip format) or as safetensors."
        )
    raise CheckpointError(f"{path}: neither a PyTorch zip checkpoint nor a safetensors file")


def read_checkpoint(path: Path) -> Checkpoint:
    """Read a PyTorch zip checkpoint or a safetensors file; raises CheckpointError if unreadable or unsafe."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if _kind(path) == "safetensors":
        arrays, dtypes = read_safetensors(path)
        return _unwrap(path, arrays, "safetensors", dtypes)
    return _unwrap(path, _unpickle_torch_zip(path), "torch-zip")


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """name -> array of a checkpoint file (see read_checkpoint)."""
    return read_checkpoint(path).arrays
