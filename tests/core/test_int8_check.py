"""The starter's int8 image encoder holds on the CPU that runs it, or core runs the float32 graph it ships beside.

The emulated-CPU test runs the real package under user-mode QEMU as an AVX2 CPU without AVX-512 or VNNI, where
onnxruntime's int8 kernels saturate: there too, what core embeds must stay within 0.98 cosine of float32.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from core.encoders import ModelPackage
from core.errors import ModelPackageError
from core.image_check import cosines
from tests.photo_corpus import available_photos, load_photo

MIN_COSINE = 0.98  # what every photo must keep, on every CPU
EMULATED_CPU = "Haswell"  # AVX2 + FMA, no AVX-512, no VNNI


def _views(package: ModelPackage, count: int) -> np.ndarray:
    """Both views of `count` corpus photos that are not calibration photos, as [N * views, 1, 3, S, S]."""
    calibration = {"astronaut", "chelsea_cat", "coffee", "rocket_launch_pad", "motorcycle", "hubble_deep_field"}
    photos = [p for p in available_photos() if p.name not in calibration][:count]
    return np.concatenate([package.preprocess(load_photo(p.name)) for p in photos])[:, None]


def _float32(package: ModelPackage, pixels: np.ndarray) -> np.ndarray:
    check = package.card.image_check
    assert check is not None
    session = ort.InferenceSession(str(package.dir / check.fallback.file), providers=["CPUExecutionProvider"])
    return session.run(None, {check.fallback.inputs[0]: pixels[:, 0]})[0]


def test_card_records_the_check_and_the_cpu_it_ran_on(starter_package_dir: Path) -> None:
    card = ModelPackage(starter_package_dir).card
    assert card.image_check is not None and card.image_check.min_cosine >= MIN_COSINE
    record = card.parity["image_int8_check"]
    assert record["views"] >= 8 and record["cpu"] and record["onnxruntime"] == ort.__version__
    assert record["fast_encoder_kept"] == (record["cosine_min"] >= card.image_check.min_cosine)


def test_what_core_embeds_stays_within_bound_of_float32_here(starter_package_dir: Path) -> None:
    package = ModelPackage(starter_package_dir)
    pixels = _views(package, 8)
    found = cosines(package.embed_pixels(pixels), _float32(package, pixels))
    result = package.check_image_encoder()
    assert result is not None and result.cpu
    assert found.min() >= MIN_COSINE, f"{result.describe()}; corpus views: min {found.min():.4f}"


def test_a_failed_check_runs_the_float32_graph(starter_package_dir: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(starter_package_dir, tmp_path / "starter", symlinks=False)
    card_file = copy / "model_card.json"
    card = json.loads(card_file.read_text())
    card["image_check"]["min_cosine"] = 1.0  # int8 never matches float32 to the last bit: the check fails
    card_file.write_text(json.dumps(card))
    package = ModelPackage(copy)
    result = package.check_image_encoder()
    assert result is not None and not result.passed
    assert result.encoder_file == card["image_check"]["fallback"]["file"]
    pixels = _views(package, 2)
    expected = _float32(package, pixels)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.abs(package.embed_pixels(pixels) - expected).max() < 1e-5


def test_a_damaged_check_file_is_refused(starter_package_dir: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(starter_package_dir, tmp_path / "starter")
    check = copy / "image_check.npz"
    data = bytearray(check.read_bytes())
    data[len(data) // 2] ^= 0xFF
    check.write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match="sha256"):
        ModelPackage(copy)


_EMULATED_CHILD = """
import sys
import numpy as np
from core.encoders import ModelPackage
package = ModelPackage(sys.argv[1])
result = package.check_image_encoder()
print(result.describe(), flush=True)
np.save(sys.argv[3], package.embed_pixels(np.load(sys.argv[2])))
"""


@pytest.mark.slow
def test_an_avx2_cpu_without_vnni_gets_a_faithful_encoder(starter_package_dir: Path, tmp_path: Path) -> None:
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("emulates an x86-64 CPU")
    qemu = shutil.which("qemu-x86_64")
    assert qemu, "user-mode QEMU is needed to emulate a CPU without VNNI: apt-get install qemu-user"
    package = ModelPackage(starter_package_dir)
    pixels = _views(package, 1)  # the float32 graph is slow under emulation: one photo's two views
    np.save(tmp_path / "pixels.npy", pixels)
    command = [qemu, "-cpu", EMULATED_CPU, sys.executable, "-c", _EMULATED_CHILD, str(starter_package_dir)]
    command += [str(tmp_path / "pixels.npy"), str(tmp_path / "out.npy")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    found = cosines(np.load(tmp_path / "out.npy"), _float32(package, pixels))
    assert found.min() >= MIN_COSINE, f"{done.stdout.strip()}; corpus views: min {found.min():.4f}"
