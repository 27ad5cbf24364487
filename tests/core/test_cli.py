"""The headless main job end to end: `python -m core index` then `search`, on real photos."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core import cli
from tests.photo_corpus import materialize
from tests.support.paths import REPO


def run_core(*args: str, library: Path, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PHOTOSEEK_HOME"}
    env.update({"XDG_DATA_HOME": str(library.parent / "xdg"), **(env_extra or {})})
    return subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    materialize(folder / "mixed")
    return folder / "mixed"


def test_index_then_search_finds_the_cat_first(library: Path, photo_dir: Path) -> None:
    indexed = run_core("index", str(photo_dir), "--library", str(library), "--json", library=library)
    assert indexed.returncode == 0, indexed.stderr
    report = json.loads(indexed.stdout)
    photos = sorted(photo_dir.iterdir())
    assert report["indexed"] == len(photos) and report["failed"] == 0 and report["model"] == "starter"

    found = run_core("search", "a cat", "--top", "3", "--json", "--library", str(library), library=library)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert len(hits) == 3 and hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    assert Path(hits[0]["path"]).name.startswith("chelsea")

    again = run_core("index", str(photo_dir), "--library", str(library), "--json", library=library)
    assert json.loads(again.stdout)["indexed"] == 0  # incremental: nothing re-encoded
    assert json.loads(again.stdout)["unchanged"] == len(photos)


def test_photoseek_home_selects_the_library(library: Path, photo_dir: Path) -> None:
    env = {"PHOTOSEEK_HOME": str(library)}
    assert run_core("index", str(photo_dir), library=library, env_extra=env).returncode == 0
    assert (library / "index.sqlite3").is_file()
    listed = run_core("models", "list", "--json", library=library, env_extra=env)
    assert [m["id"] for m in json.loads(listed.stdout)] == ["starter"]


def test_empty_folder_indexes_nothing_and_search_is_empty(library: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["index", str(empty), "--library", str(library)]) == 0
    assert cli.main(["search", "anything", "--library", str(library), "--json"]) == 0


def test_missing_folder_is_a_clear_error(library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["index", str(tmp_path / "nope"), "--library", str(library)]) == cli.EXIT_ERROR
    assert "no such file or folder" in capsys.readouterr().err


def test_no_model_without_trainer_says_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(cli, "trainer_available", lambda: False)
    assert cli.main(["search", "a cat", "--library", str(tmp_path / "lib")]) == cli.EXIT_NO_MODEL
    assert "python -m trainer build-starter" in capsys.readouterr().err


def test_no_model_with_trainer_builds_the_starter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, starter_package_dir: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    built: list[Path] = []

    def fake_build(library: Path) -> None:  # the real build is exercised by the session fixture
        (library / "models").mkdir(parents=True)
        (library / "models" / "starter").symlink_to(starter_package_dir)
        built.append(library)

    monkeypatch.setattr(cli, "build_starter", fake_build)
    monkeypatch.setattr(cli, "trainer_available", lambda: True)
    assert cli.main(["search", "a cat", "--library", str(tmp_path / "lib"), "--json"]) == 0
    assert built == [tmp_path / "lib"]


def test_models_verify_and_use(library: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models", "verify", "starter", "--library", str(library), "--json"]) == 0
    verified = json.loads(capsys.readouterr().out)
    assert verified["ok"] is True
    check = verified["image_check"]  # the starter's int8 encoder, checked on this CPU
    assert check["cpu"] and check["encoder_file"] == (
        "image_encoder.onnx" if check["passed"] else "image_encoder.float32.onnx"
    )
    assert cli.main(["models", "use", "missing", "--library", str(library)]) == cli.EXIT_ERROR
    assert cli.main(["models", "use", "starter", "--library", str(library)]) == 0


def test_ctrl_c_ends_the_watch_wait_whichever_thread_the_os_hands_it_to() -> None:
    """`core watch` waits in the main thread while the watcher's and onnxruntime's threads run. A SIGINT the OS
    delivers to one of those must still end the wait (an untimed wait never returned: a watch outlived Ctrl+C)."""
    # As at an interactive shell: a run started in a script's background (`cmd &`) inherits SIGINT ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    other = threading.Thread(target=time.sleep, args=(10,), daemon=True)
    other.start()
    to_other = threading.Timer(0.2, signal.pthread_kill, (other.ident, signal.SIGINT))
    rescue = threading.Timer(6.0, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))  # no hang
    started = time.monotonic()
    to_other.start()
    rescue.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            cli.wait_until_interrupted(poll_s=0.5)
    finally:
        rescue.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 3.0  # within a slice of the signal, not the rescue's
