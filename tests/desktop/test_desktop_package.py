"""Build the PyInstaller package from build.spec and run its self-test headless (slow: a minute on 2 x86-64 cores)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO


@pytest.mark.slow
def test_pyinstaller_package_builds_and_passes_its_self_test(tmp_path: Path, starter_package_dir: Path) -> None:
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

    run_env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_DATA_HOME": str(tmp_path / "xdg")}
    run_env.pop("PHOTOSEEK_HOME", None)
    done = subprocess.run(
        [str(exe), "--self-test", "--library", str(tmp_path / "empty-library")],
        env=run_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SELF-TEST OK model=starter" in done.stdout and "top=chelsea" in done.stdout
    assert "thumbnails=3" in done.stdout and "tag_edit=ok" in done.stdout and "library=none-yet" in done.stdout

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
