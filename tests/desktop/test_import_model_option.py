"""`photoseek --import-model FILE`: what the Models window's "Import a checkpoint file…" and "Install a model
package…" do, without the window, in a process where torch cannot be imported (the packaged app's situation; the
frozen bundle runs the same option in tests/desktop/test_desktop_package.py)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from core.library import Library
from tests.acceptance.terminal import run_in_terminal
from tests.support.core_process import run_without_torch, without_torch_env
from tests.support.golden_checkpoints import features, golden, golden_arrays, save_safetensors
from tests.support.paths import REPO

BOUND = 1e-4  # max abs difference of normalised features, as for `python -m core models import`


@pytest.mark.slow
def test_import_model_installs_a_checkpoint_and_a_package_folder(tmp_path: Path) -> None:
    checkpoint = save_safetensors(golden_arrays("S0"), tmp_path / "mobileclip_s0.safetensors")
    library = tmp_path / "library"  # the default library: the command as README writes it, under a terminal
    command = [sys.executable, "-m", "desktop", "--import-model", str(checkpoint)]
    shown = run_in_terminal(command, env=without_torch_env(library, as_home=True), cwd=REPO)
    assert shown.returncode == 0, shown.describe()
    assert "Installed the model 'mobileclip-s0'" in shown.output and "File > Models" in shown.output
    ref = golden("S0")
    image, text = features(library / "models" / "mobileclip-s0", ref)
    assert np.abs(image - ref["reparam/image_features_normalized"]).max() <= BOUND
    assert np.abs(text - ref["reparam/text_features_normalized"]).max() <= BOUND
    checkpoint.unlink()

    package = shutil.move(library / "models" / "mobileclip-s0", tmp_path / "made-elsewhere")
    other = tmp_path / "other-library"
    done = run_without_torch("--import-model", str(package), library=other, module="desktop")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mobileclip-s0" in Library(other).installed_model_ids()


def test_import_model_refuses_a_damaged_file_and_installs_nothing(tmp_path: Path) -> None:
    damaged = tmp_path / "mobileclip_s0.pt"
    damaged.write_bytes(b"PK\x03\x04 not really a checkpoint")
    library = tmp_path / "library"
    done = run_without_torch("--import-model", str(damaged), library=library, module="desktop")
    assert done.returncode == 1
    assert done.stderr.startswith("photoseek: ") and "mobileclip_s0.pt" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (library / "models").exists() or not any((library / "models").iterdir())
