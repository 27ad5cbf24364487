"""The packaged app's stand-in for the x265 encoder: HEIC photos decode exactly as with the real library, encoding
fails with an error instead of crashing (tools/heif_encoder_stub.py, used by build.spec)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from tests.photo_corpus import load_photo
from tools.heif_encoder_stub import StubUnavailable, build_x265_stub, undefined_symbols

# Runs in a child process whose pillow_heif is the copy beside the stub.
CHILD = """
import io, json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np, pillow_heif
from PIL import Image
pillow_heif.register_heif_opener()
pixels = np.asarray(Image.open(sys.argv[2]).convert("RGB"))
np.save(sys.argv[3], pixels)
try:
    pillow_heif.from_pillow(Image.fromarray(pixels)).save(io.BytesIO(), quality=90)
    encoded = "yes"
except Exception as exc:
    encoded = f"{type(exc).__name__}: {exc}"
maps = open("/proc/self/maps").read()
print(json.dumps({"module": pillow_heif.__file__, "encoded": encoded,
                  "x265": sorted({line.split()[-1] for line in maps.splitlines() if "libx265" in line})}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the stub is made for the Linux bundle")
def test_stub_decodes_heic_like_the_real_encoder_library_and_refuses_to_encode(tmp_path: Path) -> None:
    site = Path(pillow_heif.__file__).resolve().parents[1]
    libs = site / "pillow_heif.libs"
    libheif, x265 = next(libs.glob("libheif*.so*")), next(libs.glob("libx265*.so*"))
    copy = tmp_path / "site"
    shutil.copytree(site / "pillow_heif", copy / "pillow_heif")
    shutil.copytree(libs, copy / "pillow_heif.libs", ignore=shutil.ignore_patterns("libx265*"))
    for module in site.glob("_pillow_heif*.so"):
        shutil.copy2(module, copy / module.name)
    stub = build_x265_stub(libheif, x265, copy / "pillow_heif.libs")
    assert stub.name == x265.name and stub.stat().st_size < 100_000 < x265.stat().st_size
    assert {name for name in undefined_symbols(stub) if name.startswith("x265")} == set()

    photo = tmp_path / "IMG_0001.HEIC"
    pillow_heif.from_pillow(load_photo("chelsea_cat")).save(photo, quality=90)  # the real encoder, in this process
    pillow_heif.register_heif_opener()
    real_pixels = np.asarray(Image.open(photo).convert("RGB"))

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(copy), str(photo), str(tmp_path / "stub_pixels.npy")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(report["module"]).is_relative_to(copy)
    assert report["x265"] == [str(stub)]  # the child loaded the stub, not the real encoder
    assert np.array_equal(np.load(tmp_path / "stub_pixels.npy"), real_pixels)
    assert report["encoded"] != "yes" and "bit depth" in report["encoded"].lower(), report["encoded"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the stub is made for the Linux bundle")
def test_no_stub_for_a_library_that_needs_more_of_x265(tmp_path: Path) -> None:
    libs = Path(pillow_heif.__file__).resolve().parents[1] / "pillow_heif.libs"
    x265 = next(libs.glob("libx265*.so*"))
    numpy_core = next(Path(np.__file__).parent.glob("_core/_multiarray_umath*.so"))  # imports no x265 at all
    with pytest.raises(StubUnavailable, match="not just x265_api_get_N and x265_cleanup"):
        build_x265_stub(numpy_core, x265, tmp_path)
    assert not list(tmp_path.iterdir())
