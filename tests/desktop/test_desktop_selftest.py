"""`python -m desktop --self-test` from source, and the rule that the app never loads torch or the trainer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.desktop.support import corpus_size
from tests.support.paths import REPO


def run_app(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("PHOTOSEEK_HOME", None)
    env.pop("QT_QPA_PLATFORM", None)  # the self-test picks offscreen by itself when there is no display
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return subprocess.run(
        [sys.executable, "-m", "desktop", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def test_self_test_indexes_searches_and_never_imports_torch(library: Path, tmp_path: Path) -> None:
    done = run_app("--self-test", "--library", str(library), tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("SELF-TEST OK"))
    assert "model=starter" in line and "top=chelsea" in line and "platform=offscreen" in line
    assert "thumbnails=3" in line and "tag_edit=ok" in line and "library=none-yet" in line
    assert 0 < int(re.search(r"matches=(\d+) ", line).group(1)) < 3  # the search stopped before every photo
    assert re.search(r"auto_tags=[^ ]+", line)  # the cat photo has tags of its own
    # The self-test's own check: neither torch nor the trainer was imported by the GUI, its workers or core.
    assert "imported" not in done.stderr
    assert not (library / "index.sqlite3").exists()  # it used a throw-away library, not the user's


def test_self_test_finds_the_real_librarys_photos_without_changing_the_library(
    indexed_library: Path, tmp_path: Path
) -> None:
    files = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in indexed_library.iterdir() if p.is_file()}
    done = run_app("--self-test", "--library", str(indexed_library), tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"library_photos={corpus_size()}/{corpus_size()}" in done.stdout
    assert {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in indexed_library.iterdir() if p.is_file()} == files


def test_self_test_fails_clearly_without_a_model(tmp_path: Path) -> None:
    done = run_app("--self-test", "--library", str(tmp_path / "empty"), tmp_path=tmp_path)
    assert done.returncode == 1
    assert "SELF-TEST FAILED: no model package is installed" in done.stderr and "build-starter" in done.stderr


def test_gui_modules_do_not_import_torch_or_the_trainer() -> None:
    code = (
        "import sys, desktop.__main__, desktop.app, desktop.main_window, desktop.library_service, desktop.self_test\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'trainer', 'onnx', 'torchvision'))\n"
        "print(','.join(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_without_a_display_the_app_says_so_instead_of_aborting(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        return
    done = run_app("--library", str(tmp_path / "lib"), tmp_path=tmp_path)
    assert done.returncode == 2 and "no display found" in done.stderr
