"""Golden-filled MobileCLIP checkpoints made without torch: arrays from the golden key lists, saved as safetensors.

The values are the golden fill (``core.golden_fill``) of each key in ``tests/data/golden/keys-<tag>.json``, so a
package imported from such a file must reproduce the golden features of that tag.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.encoders import ModelPackage, l2_normalize
from core.golden_fill import golden_value
from core.mobileclip_keys import HEAD_BIAS_KEYS, v1_to_openclip_key
from tests.support.golden import golden_file

_SAFETENSORS_DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int64"): "I64"}


def golden_arrays(tag: str) -> dict[str, np.ndarray]:
    """The golden-filled train-time state dict of ``tag`` (float32; int64 BatchNorm counters), in file order."""
    entries = json.loads(golden_file(f"keys-{tag}.json").read_text())["entries"]
    arrays = {}
    for entry in entries:
        is_int = entry["dtype"].startswith("int")
        value = golden_value(entry["name"], tuple(entry["shape"]), is_int)
        arrays[entry["name"]] = value if is_int else value.astype(np.float32)
    return arrays


def as_openclip(v1_arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A v1 state dict in the open_clip layout, as open_clip's converter writes the ``*-OpenCLIP`` files."""
    out = {}
    for key, value in v1_arrays.items():
        new_key, op = v1_to_openclip_key(key)
        if op == "transpose":
            out[new_key] = np.ascontiguousarray(value.T)
            out[HEAD_BIAS_KEYS[0] if new_key.endswith("fc.weight") else HEAD_BIAS_KEYS[1]] = np.zeros(
                value.shape[1], np.float32
            )
        elif op == "reshape":
            out[new_key] = value.reshape(value.shape[2:] if new_key.startswith("text.") else value.shape[1:])
        else:
            out[new_key] = value
    return out


def save_safetensors(arrays: dict[str, np.ndarray], path: Path) -> Path:
    """Write ``arrays`` as a safetensors file (little-endian, in the given order)."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for key, value in arrays.items():
        size = value.nbytes
        header[key] = {
            "dtype": _SAFETENSORS_DTYPES[value.dtype],
            "shape": list(value.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    with path.open("wb") as out:
        out.write(len(encoded).to_bytes(8, "little") + encoded)
        for value in arrays.values():
            np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<"), copy=False).tofile(out)
    return path


def golden(tag: str) -> dict[str, np.ndarray]:
    """The golden inputs and reference features of ``tag`` (tests/data/golden/golden-<tag>.npz)."""
    with np.load(golden_file(f"golden-{tag}.npz")) as data:
        return dict(data)


def features(package_dir: Path, ref: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Normalised image and text features of the golden inputs, fed to the package's ONNX encoders as they are."""
    package = ModelPackage(package_dir)
    image = package.embed_pixels(ref["images"][:, None])
    ids = ref["text_tokens"]
    text = package._text_session.run(None, {"input_ids": ids, "eot_index": ids.argmax(axis=1)})[0]
    return image, l2_normalize(text)
