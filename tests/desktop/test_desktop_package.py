"""Build the PyInstaller package from build.spec and run its self-test headless (slow: a minute on 2 x86-64 cores),
also on a real library of HEIC, PNG and JPEG photos (HEIC through the stub that stands in for the x265 encoder), and
its torch-free MobileCLIP import (`--import-model`) on a golden-filled checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pillow_heif
import pytest

from core.library import Library
from tests.photo_corpus import load_photo
from tests.support.golden_checkpoints import features, golden, golden_arrays, save_safetensors
from tests.support.paths import REPO


@pytest.mark.slow
def test_pyinstaller_package_builds_and_passes_its_self_test(
    tmp_path: Path, starter_package_dir: Path, library: Path
) -> None:
    pytest.importorskip("PyInstaller", reason="needs the build extra: pip install -e '.[build]'")
    env = {**os.environ, "PHOTOSEEK_STARTER_DIR": str(starter_package_dir)}
    build = subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN", "build.spec",
         "--distpath", str(tmp_path / "dist"), "--workpath", str(tmp_path / "work")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    app_dir = tmp_path / "dist" / "PhotoSeek"
    exe = app_dir / ("PhotoSeek.exe" if sys.platform == "win32" else "PhotoSeek")
    assert exe.is_file()
    internal = app_dir / "_internal"
    assert (internal / "assets" / "models" / "starter" / "model_card.json").is_file()
    assert len(list((internal / "assets" / "selftest").iterdir())) == 3
    assert not [p.name for p in internal.iterdir() if p.name.split(".")[0] in ("torch", "trainer", "tests", "yaml")]
    assert not list(internal.rglob("libqgtk3*")) and not list(internal.rglob("libgdk_pixbuf*"))  # GTK3 left out
    if sys.platform.startswith("linux"):  # HEIC is only decoded: the 20 MB x265 encoder is a stub of a few kB
        assert [p.stat().st_size < 100_000 for p in internal.rglob("libx265*") if not p.is_symlink()] == [True]

    run_env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_DATA_HOME": str(tmp_path / "xdg")}
    run_env.pop("PHOTOSEEK_HOME", None)
    done = subprocess.run(
        [str(exe), "--self-test", "--library", str(tmp_path / "empty-library")],
        env=run_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SELF-TEST OK model=starter" in done.stdout and "top=chelsea" in done.stdout
    assert "thumbnails=3" in done.stdout and "tag_edit=ok" in done.stdout and "library=none-yet" in done.stdout
    # TLS for the Models window's downloads loads the system's OpenSSL 3, which the bundle leaves out.
    assert "https=yes" in done.stdout and not [
        p for p in internal.iterdir() if p.name.startswith(("libssl.", "libcrypto."))
    ]

    # "Get MobileCLIP" / "Import a checkpoint file…" work in the bundle: its torch-free import, headless.
    checkpoint = save_safetensors(golden_arrays("S0"), tmp_path / "mobileclip_s0.safetensors")
    imported = subprocess.run(
        [str(exe), "--import-model", str(checkpoint), "--library", str(tmp_path / "mobileclip-library")],
        env=run_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stdout + imported.stderr
    ref = golden("S0")
    image, text = features(tmp_path / "mobileclip-library" / "models" / "mobileclip-s0", ref)
    assert np.abs(image - ref["reparam/image_features_normalized"]).max() <= 1e-4
    assert np.abs(text - ref["reparam/text_features_normalized"]).max() <= 1e-4
    checkpoint.unlink()

    photos = tmp_path / "phone"
    photos.mkdir()
    pillow_heif.from_pillow(load_photo("chelsea_cat")).save(photos / "IMG_0001.HEIC", quality=90)
    load_photo("coffee").save(photos / "coffee.png")
    load_photo("astronaut").save(photos / "astronaut.jpg", quality=90)
    assert Library(library).index([photos]).indexed == 3
    done = subprocess.run(
        [str(exe), "--self-test", "--library", str(library)], env=run_env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "library_photos=3/3" in done.stdout  # found by the bundle's scan, one photo of each type decoded

    if sys.platform.startswith("linux"):  # the packaged app puts itself in the application menu
        home = tmp_path / "home"
        entry = subprocess.run(
            [str(exe), "--install-desktop-entry"], env={**run_env, "HOME": str(home), "XDG_DATA_HOME": ""},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert entry.returncode == 0, entry.stdout + entry.stderr
        text = (home / ".local" / "share" / "applications" / "photoseek.desktop").read_text()
        assert f"Exec={exe} %F" in text and "Icon=photoseek" in text
        assert (home / ".local" / "share" / "icons" / "hicolor" / "256x256" / "apps" / "photoseek.png").is_file()
