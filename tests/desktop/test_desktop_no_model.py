"""When building the starter model fails, the window says why in plain words and what the user can do (reinstall,
or install a model package), never a command to run. The failing build is a real child process: a `trainer`
package that stops the way a real build does when the disk is full."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import StarterBuildError
from core.model_store import build_starter
from tests.desktop.support import WAIT_MS

FAILING_TRAINER = """
import sys
print("building the starter model: exporting the encoders to ONNX", file=sys.stderr)
print("Traceback (most recent call last):", file=sys.stderr)
print('  File "trainer/starter/build.py", line 1, in build_starter', file=sys.stderr)
print("OSError: [Errno 28] No space left on device", file=sys.stderr)
print("", file=sys.stderr)
sys.exit(1)
"""
REASON = "OSError: [Errno 28] No space left on device"


@pytest.fixture()
def failing_trainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from a folder whose `trainer` package fails as above (`python -m trainer` finds it first)."""
    package = tmp_path / "cwd" / "trainer"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(FAILING_TRAINER)
    monkeypatch.chdir(package.parent)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return package


def test_core_gives_the_reason_a_starter_build_failed(failing_trainer: Path, tmp_path: Path) -> None:
    with pytest.raises(StarterBuildError) as raised:
        build_starter(tmp_path / "library")
    assert raised.value.reason == REASON


def test_a_failed_build_says_why_and_what_to_do_instead(
    qtbot, make_window, failing_trainer: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("desktop.library_service.trainer_available", lambda: True)
    window = make_window(tmp_path / "bare-library")
    assert window.empty.build_button.isVisibleTo(window)
    with qtbot.waitSignal(window.controller.index_finished, timeout=WAIT_MS) as finished:
        window.empty.build_button.click()
    assert finished.args[0].kind == "starter" and finished.args[0].error
    message = window.message_bar.text.text()
    assert message.startswith(f"PhotoSeek could not build its starter model: {REASON}")
    assert "reinstall PhotoSeek" in message and str(tmp_path / "bare-library" / "models") in message
    assert "python" not in message and "by hand" not in message
    assert window.empty.build_button.isVisibleTo(window)  # it can be tried again
