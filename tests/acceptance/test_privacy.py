"""Nothing leaves the machine: real commands write nothing under HOME and never try the network.

Each command runs as a user runs it, in a sandbox (sandbox.py): HOME and the XDG folders in a fresh temporary
folder, the library in another one (``--library``), no network at all (``unshare -rn`` on Linux) and a socket guard
that records any attempt to reach a non-local address. onnxruntime, left alone, writes a device id and queues
telemetry events under ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/``; core.privacy switches that off before it
is imported (the control case below shows the check sees it when it is not).

The trainer's heavier commands (build-starter through the README's first command, train, finetune, import) run in
the same sandbox in test_readme_commands.py, which makes the same HOME and network checks.

What PhotoSeek itself writes under HOME, and nothing else: the library when none is given (the user data folder,
``~/.local/share/PhotoSeek``), and the desktop app's own window settings (``~/.config/PhotoSeek/PhotoSeek.conf``).
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from tests.acceptance.sandbox import (
    REPO,
    Sandbox,
    assert_home_holds_only,
    assert_offline,
    expect_ok,
    library_with_starter,
    network_namespace_prefix,
)
from tests.photo_corpus import materialize

TELEMETRY = Path(".cache") / "Microsoft" / "DeveloperTools" / ".onnxruntime"
ALBUM = {
    "nonna": ["book_page", "coffee", "handwritten_math"],
    "kepler": ["moon_surface", "retina_fundus", "hubble_deep_field"],
}


@pytest.mark.slow
def test_core_and_trainer_commands_write_nothing_under_home_and_stay_offline(
    sandbox: Sandbox, tmp_path: Path, starter_package_dir: Path
) -> None:
    library = library_with_starter(tmp_path / "library", starter_package_dir)
    photos = tmp_path / "photos"
    materialize(photos, ["chelsea_cat", "coffee", "astronaut", "rocket_launch_pad", "brick_wall"], max_side=256)
    for label, names in ALBUM.items():
        materialize(tmp_path / "album" / label, names, max_side=256)

    def core(*args: str | Path) -> str:
        return expect_ok(sandbox.python("-m", "core", *args, "--library", library))

    core("index", photos)
    assert "chelsea_cat.jpg" in core("search", "a cat").splitlines()[0]
    core("similar", photos / "coffee.jpg")
    core("tags", photos / "chelsea_cat.jpg")
    core("stats")
    reinforce = ("-m", "trainer", "reinforce", tmp_path / "album", "--out", tmp_path / "data", "--library", library)
    expect_ok(sandbox.python(*reinforce), "Wrote")

    assert sandbox.home_files() == []  # not even the folders: no cache, config or telemetry
    assert list(sandbox.tmp.iterdir()) == []  # nor left behind in TMPDIR (onnxruntime's telemetry keeps a .ses there)
    assert_offline(sandbox)


@pytest.mark.slow
def test_the_desktop_app_writes_only_its_own_settings(
    sandbox: Sandbox, tmp_path: Path, starter_package_dir: Path
) -> None:
    library = library_with_starter(tmp_path / "library", starter_package_dir)
    materialize(tmp_path / "photos", ["chelsea_cat", "coffee"], max_side=256)
    expect_ok(sandbox.python("-m", "core", "index", tmp_path / "photos", "--library", library))
    shown = sandbox.python("-m", "desktop", "--library", library, "--search", "a cat", "--exit-when-shown")
    expect_ok(shown, "first_window_shown_at=", "library_open_at=")
    assert_home_holds_only(sandbox, ".config/PhotoSeek/PhotoSeek.conf")  # Qt's QSettings: window and view state
    assert_offline(sandbox)


@pytest.fixture(scope="module")
def tiny_onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-node ONNX model: enough for onnxruntime to start a session (which is when it logs telemetry)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    model = helper.make_model(
        helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    onnx.save(model, path)
    return path


SESSION = """
import os, numpy as np, onnxruntime as ort
session = ort.InferenceSession({path!r}, providers=["CPUExecutionProvider"])
print("ran", session.run(None, {{"x": np.ones(1, np.float32)}})[0])
print("env", *[os.environ.get(name) for name in ("ORT_DISABLE_TELEMETRY", "HF_HUB_OFFLINE", "DO_NOT_TRACK")])
"""


@pytest.mark.parametrize(
    "first_import",
    [
        "core.cli",  # python -m core
        "trainer.onnx_graph",  # a trainer module that imports onnxruntime itself
        "desktop.__main__",  # python -m desktop / photoseek
        "runpy; runpy.run_path('tools/pyi_rth_privacy.py')",  # the frozen app's runtime hook (build.spec)
    ],
)
def test_onnxruntime_telemetry_is_off_whichever_entry_point_loads_it(
    sandbox: Sandbox, tiny_onnx_model: Path, first_import: str
) -> None:
    program = f"import {first_import}\n" + SESSION.format(path=str(tiny_onnx_model))
    # A user's environment saying otherwise does not switch it back on.
    run = sandbox.python("-c", program, cwd=REPO, ORT_DISABLE_TELEMETRY="0", HF_HUB_OFFLINE="0", DO_NOT_TRACK="0")
    expect_ok(run, "ran [1.]", "env 1 1 1")
    assert not (sandbox.home / TELEMETRY).exists() and sandbox.home_files() == [], sandbox.home_files()
    assert not (sandbox.tmp / ".ses").exists()


def test_the_telemetry_check_sees_onnxruntime_left_alone(sandbox: Sandbox, tiny_onnx_model: Path) -> None:
    """Control: onnxruntime imported without PhotoSeek writes its device id under HOME, so the checks above bite."""
    expect_ok(sandbox.python("-c", SESSION.format(path=str(tiny_onnx_model))), "ran [1.]")
    assert (sandbox.home / TELEMETRY / "deviceid").is_file(), sandbox.home_files()
    assert (sandbox.tmp / ".ses").exists()  # its session file


def test_the_guard_and_the_namespace_stop_a_program_that_phones_home(sandbox: Sandbox) -> None:
    """Control: a Python look-up is recorded and refused; a raw socket (under the guard) finds no network at all."""
    fetch = "import urllib.request\nurllib.request.urlopen('https://example.org/', timeout=10)"
    refused = sandbox.python("-c", fetch)
    assert refused.returncode != 0 and "network access refused by the PhotoSeek test guard" in refused.output
    attempts = sandbox.network_attempts()
    assert attempts and "example.org" in attempts[0]["target"], attempts

    if network_namespace_prefix():
        raw = "import _socket\ns = _socket.socket()\ns.settimeout(10)\ns.connect(('192.0.2.1', 80))"
        unreachable = sandbox.python("-c", raw)
        assert unreachable.returncode != 0 and "Network is unreachable" in unreachable.output, unreachable.describe()
