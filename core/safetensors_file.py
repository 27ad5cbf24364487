"""Read a ``.safetensors`` file with numpy alone, checking every declared size against the file.

The format: an 8-byte little-endian header length, a JSON header mapping names to ``dtype``/``shape``/
``data_offsets`` (offsets relative to the end of the header; ``__metadata__`` holds strings), then raw
little-endian data. Nothing in the file is executed, but the offsets are untrusted: each entry must lie inside the
file, match its shape, and not overlap another, so a crafted header cannot make us read past the end or allocate
more than the file holds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from core.errors import CheckpointError

# The safetensors library refuses larger headers too; it bounds the JSON we parse.
MAX_HEADER_BYTES = 100_000_000
# Source dtype name -> (numpy dtype it is read as, dtype name reported). BF16 is read as raw uint16 bits.
_DTYPES: dict[str, tuple[np.dtype, str]] = {
    "F64": (np.dtype("<f8"), "float64"),
    "F32": (np.dtype("<f4"), "float32"),
    "F16": (np.dtype("<f2"), "float16"),
    "BF16": (np.dtype("<u2"), "bfloat16"),
    "I64": (np.dtype("<i8"), "int64"),
    "I32": (np.dtype("<i4"), "int32"),
    "I16": (np.dtype("<i2"), "int16"),
    "I8": (np.dtype("i1"), "int8"),
    "U8": (np.dtype("u1"), "uint8"),
    "BOOL": (np.dtype("?"), "bool"),
}


@dataclass(frozen=True)
class SafetensorsEntry:
    """One tensor as the header declares it; ``begin``/``end`` are absolute file offsets."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 values (as their uint16 bit patterns) widened exactly to float32: the bits are the high half."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _entry(path: Path, name: str, spec: object, data_start: int) -> SafetensorsEntry:
    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data_offsets"}:
        raise CheckpointError(f"{path}: malformed safetensors header entry {name!r}")
    dtype, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
    if dtype not in _DTYPES:
        raise CheckpointError(f"{path}: {name}: unsupported safetensors dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_is_index(d) for d in shape):
        raise CheckpointError(f"{path}: {name}: malformed shape {shape!r}")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_index(o) for o in offsets):
        raise CheckpointError(f"{path}: {name}: malformed data_offsets {offsets!r}")
    begin, end = offsets
    if end - begin != math.prod(shape) * _DTYPES[dtype][0].itemsize:
        raise CheckpointError(f"{path}: {name}: data_offsets {offsets} do not match shape {shape} of {dtype}")
    return SafetensorsEntry(name, dtype, tuple(shape), data_start + begin, data_start + end)


def read_header(path: Path, stream: BinaryIO, file_size: int) -> list[SafetensorsEntry]:
    """The header's entries, checked to lie inside the file without overlapping; raises CheckpointError."""
    prefix = stream.read(8)
    if len(prefix) < 8:
        raise CheckpointError(f"{path}: too short to be a safetensors file")
    length = int.from_bytes(prefix, "little")
    if length > MAX_HEADER_BYTES or 8 + length > file_size:
        raise CheckpointError(f"{path}: safetensors header length {length} exceeds the file (truncated?)")
    try:
        header = json.loads(stream.read(length))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path}: the safetensors header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    entries = sorted((_entry(path, k, v, 8 + length) for k, v in header.items()), key=lambda e: (e.begin, e.end))
    previous_end = 8 + length
    for entry in entries:
        if entry.begin < previous_end:
            raise CheckpointError(f"{path}: {entry.name}: its data overlaps another tensor's")
        if entry.end > file_size:
            raise CheckpointError(f"{path}: {entry.name}: its data lies beyond the end of the file (truncated?)")
        previous_end = max(previous_end, entry.end)
    return entries


def read_into(path: Path, stream: BinaryIO, dtype: np.dtype, count: int, what: str) -> np.ndarray:
    """``count`` items of ``dtype`` read from the stream's position into a new array (one allocation)."""
    array = np.empty(count, dtype=dtype)
    raw = array.view(np.uint8)
    done = 0
    while done < raw.size:
        got = stream.readinto(memoryview(raw[done:]))
        if not got:
            raise CheckpointError(f"{path}: {what}: the file ends before its data does (truncated?)")
        done += got
    return array


def read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """name -> array (bfloat16 widened to float32), and name -> the dtype stored in the file."""
    arrays: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    with path.open("rb") as stream:
        for entry in read_header(path, stream, path.stat().st_size):
            dtype, dtype_name = _DTYPES[entry.dtype]
            stream.seek(entry.begin)
            flat = read_into(path, stream, dtype, math.prod(entry.shape), entry.name)
            array = flat.reshape(entry.shape)
            arrays[entry.name] = bfloat16_to_float32(array) if dtype_name == "bfloat16" else array
            dtypes[entry.name] = dtype_name
    return arrays, dtypes
