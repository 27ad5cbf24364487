"""core.checkpoint_reader: torch-free reading of PyTorch zip checkpoints and safetensors files.

torch only writes the fixtures here (and is the reference via ``torch.load(weights_only=True)``); one test reads a
checkpoint in a child interpreter where torch cannot be imported. Crafted files check what is refused: pickles that
name any global outside the allow-list (the code never runs), legacy pickles, damaged or lying sizes and offsets.
"""

from __future__ import annotations

import builtins
import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from core.checkpoint_reader import read_checkpoint, read_state_dict
from core.errors import CheckpointError
from tests.support.paths import REPO
from trainer.models.clip import create_model
from trainer.models.golden_fill import build_filled


def _assert_same(arrays: dict[str, np.ndarray], reference: dict[str, torch.Tensor]) -> None:
    """Every array equals its tensor exactly; bfloat16 compares as float32 (exact widening)."""
    assert list(arrays) == list(reference)
    for key, tensor in reference.items():
        expected = tensor.float() if tensor.dtype == torch.bfloat16 else tensor
        expected_np = expected.detach().numpy()
        assert arrays[key].dtype == expected_np.dtype, key
        assert arrays[key].shape == expected_np.shape, key
        assert np.array_equal(arrays[key], expected_np), key


@pytest.fixture(scope="module")
def s0_state() -> dict[str, torch.Tensor]:
    return dict(build_filled(lambda: create_model("mobileclip-s0")).state_dict())


@pytest.mark.parametrize(
    ("layout", "container", "prefixed"),
    [("plain", "plain", False), ("wrapped", "state_dict", False), ("module", "state_dict", True)],
)
def test_mobileclip_s0_reads_as_torch_loads_it(
    tmp_path: Path, s0_state: dict[str, torch.Tensor], layout: str, container: str, prefixed: bool
) -> None:
    path = tmp_path / "mobileclip_s0.pt"
    if layout == "plain":
        torch.save(s0_state, path)
    else:
        keys = {f"module.{k}" if prefixed else k: v for k, v in s0_state.items()}
        torch.save({"state_dict": keys, "epoch": 32, "optimizer": {"lr": 0.1}}, path)
    checkpoint = read_checkpoint(path)
    assert (checkpoint.file_format, checkpoint.container, checkpoint.module_prefix) == (
        "torch-zip",
        container,
        prefixed,
    )
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    reference = loaded if layout == "plain" else {k.removeprefix("module."): v for k, v in loaded["state_dict"].items()}
    _assert_same(checkpoint.arrays, reference)
    assert set(checkpoint.source_dtypes.values()) == {"float32", "int64"}


def _mixed_state() -> OrderedDict[str, torch.Tensor]:
    """Every storage dtype, views with offsets and strides, tensors sharing one storage, a Parameter, a scalar."""
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7
    return OrderedDict(
        f32=base,
        transposed=base.t(),
        row=base[2],
        column=base[:, 3],
        every_other=base[1:, ::2],
        f64=torch.linspace(-1, 1, 5, dtype=torch.float64),
        f16=(base * 3).half(),
        bf16=(base - 1).bfloat16(),
        bf16_view=(base - 1).bfloat16().t()[1:],
        i64=torch.arange(-3, 3, dtype=torch.int64) * 2**40,
        i32=torch.tensor([-(2**31), 2**31 - 1], dtype=torch.int32),
        i16=torch.tensor([-7, 7], dtype=torch.int16),
        i8=torch.tensor([-128, 127], dtype=torch.int8),
        u8=torch.tensor([0, 255], dtype=torch.uint8),
        flags=torch.tensor([True, False, True]),
        param=torch.nn.Parameter(torch.full((2, 2), 0.5)),
        scalar=torch.tensor(3.25),
        empty=torch.zeros(0, 3),
    )


def test_dtypes_views_and_shared_storages_equal_torch_load(tmp_path: Path) -> None:
    path = tmp_path / "mixed.pt"
    torch.save(_mixed_state(), path)
    checkpoint = read_checkpoint(path)
    _assert_same(checkpoint.arrays, torch.load(path, weights_only=True))
    assert checkpoint.source_dtypes["bf16"] == "bfloat16" and checkpoint.source_dtypes["f16"] == "float16"
    shared = [checkpoint.arrays[k] for k in ("f32", "transposed", "row", "column", "every_other")]
    for i, first in enumerate(shared):
        for second in shared[i + 1 :]:
            assert not np.shares_memory(first, second)  # views of one storage come back as independent arrays


def test_reads_without_torch_importable(tmp_path: Path) -> None:
    path = tmp_path / "mixed.pt"
    torch.save(_mixed_state(), path)
    out = tmp_path / "arrays.npz"
    child = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # any import of torch now raises ImportError
        import numpy as np
        from core.checkpoint_reader import read_state_dict
        np.savez({str(out)!r}, **read_state_dict({str(path)!r}))
        print(sorted(name for name in sys.modules if name.startswith("torch")))
        """
    )
    done = subprocess.run([sys.executable, "-c", child], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['torch']"  # only the blocking None entry
    with np.load(out) as arrays:
        _assert_same(dict(arrays), torch.load(path, weights_only=True))


def test_safetensors_read_as_the_safetensors_package_wrote_them(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().clone(memory_format=torch.contiguous_format) for k, v in _mixed_state().items()}
    path = tmp_path / "model.safetensors"
    save_file(state, str(path), metadata={"format": "pt"})
    checkpoint = read_checkpoint(path)
    assert (checkpoint.file_format, checkpoint.container, checkpoint.module_prefix) == ("safetensors", "plain", False)
    assert checkpoint.source_dtypes["bf16"] == "bfloat16"
    assert checkpoint.arrays.keys() == state.keys()
    _assert_same({k: checkpoint.arrays[k] for k in state}, state)


def _safetensors_bytes(header: dict[str, object], data: bytes) -> bytes:
    encoded = json.dumps(header).encode()
    return len(encoded).to_bytes(8, "little") + encoded + data


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, "beyond the end"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}, "do not match"),
        ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}, "malformed data_offsets"),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
            },
            "overlaps",
        ),
        ({"a": {"dtype": "U64", "shape": [1], "data_offsets": [0, 8]}}, "unsupported"),
    ],
)
def test_safetensors_with_lying_offsets_are_refused(tmp_path: Path, header: dict[str, object], message: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(_safetensors_bytes(header, bytes(8)))
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)


def test_truncated_files_are_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = {f"layer{i}.weight": torch.randn(64, 64) for i in range(4)}
    save_file(state, str(tmp_path / "full.safetensors"))
    torch.save(state, tmp_path / "full.pt")
    for name in ("full.safetensors", "full.pt"):
        data = (tmp_path / name).read_bytes()
        cut = tmp_path / f"cut-{name}"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(CheckpointError, match="truncated"):
            read_checkpoint(cut)


def _rezip(source: Path, target: Path, replace: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> None:
    """Copy a torch zip, replacing the members named by their suffix (``data.pkl``, ``data/0``, ``byteorder``)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", compression) as new:
        for info in old.infolist():
            suffix = info.filename.split("/", 1)[1]
            new.writestr(info.filename, replace.get(suffix, old.read(info)))


def test_storage_sizes_that_disagree_with_the_archive_are_refused(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(1000)}, tmp_path / "ok.pt")
    _rezip(tmp_path / "ok.pt", tmp_path / "short.pt", {"data/0": bytes(40)})
    with pytest.raises(CheckpointError, match="declares 1000 x 4 bytes but holds 40"):
        read_checkpoint(tmp_path / "short.pt")
    _rezip(tmp_path / "ok.pt", tmp_path / "big-endian.pt", {"byteorder": b"big"})
    with pytest.raises(CheckpointError, match="big-endian"):
        read_checkpoint(tmp_path / "big-endian.pt")


def test_compressed_members_are_read_and_damaged_ones_refused(tmp_path: Path) -> None:
    state = {"w": torch.linspace(0, 1, 1000), "t": torch.arange(12.0).reshape(3, 4).t()}
    torch.save(state, tmp_path / "ok.pt")
    _rezip(tmp_path / "ok.pt", tmp_path / "deflated.pt", {}, zipfile.ZIP_DEFLATED)
    _assert_same(read_state_dict(tmp_path / "deflated.pt"), state)
    data = bytearray((tmp_path / "ok.pt").read_bytes())
    at = data.index(state["w"][500:502].numpy().tobytes())
    data[at] ^= 0xFF
    (tmp_path / "flipped.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="fails its checksum"):
        read_state_dict(tmp_path / "flipped.pt")


def test_expanded_views_and_non_tensor_entries_are_refused(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(3).expand(100_000, 3)}, tmp_path / "expanded.pt")
    with pytest.raises(CheckpointError, match="more elements than its storage"):
        read_checkpoint(tmp_path / "expanded.pt")
    torch.save({"w": torch.ones(3), "step": 5}, tmp_path / "mixed.pt")
    with pytest.raises(CheckpointError, match="not tensors: step"):
        read_checkpoint(tmp_path / "mixed.pt")


class _Calls:
    """Pickles as a call of ``function(argument)``: what a malicious checkpoint does."""

    def __init__(self, function: object, argument: str) -> None:
        self.function, self.argument = function, argument

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return self.function, (self.argument,)


def _torch_like_zip(path: Path, payload: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")


@pytest.mark.parametrize("protocol", [2, 5])
@pytest.mark.parametrize("container", ["zip", "legacy-pickle"])
@pytest.mark.parametrize("function", [os.system, builtins.eval, subprocess.Popen])
def test_pickles_that_would_run_code_are_refused(
    tmp_path: Path, function: object, container: str, protocol: int
) -> None:
    marker = tmp_path / "code-ran"
    command = f"touch {marker}" if function is os.system else ["touch", str(marker)]
    argument = f"open({str(marker)!r}, 'w')" if function is builtins.eval else command
    payload = pickle.dumps({"weight": _Calls(function, argument)}, protocol=protocol)
    path = tmp_path / "mobileclip_s0.pt"
    if container == "zip":
        _torch_like_zip(path, payload)
        match = r"refused: the file references [\w.]+\.(system|eval|Popen),.*could run code"
    else:
        path.write_bytes(payload)
        match = r"Re-save it with torch >= 1\.6"
    with pytest.raises(CheckpointError, match=match):
        read_checkpoint(path)
    assert not marker.exists()


def test_legacy_torch_files_are_refused_with_a_re_save_hint(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match=r"legacy.*Re-save it with torch >= 1\.6"):
        read_state_dict(path)
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="neither a PyTorch zip checkpoint nor a safetensors file"):
        read_state_dict(tmp_path / "notes.txt")
