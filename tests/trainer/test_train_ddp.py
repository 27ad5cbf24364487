"""`torchrun --nproc_per_node 2` on the CPU (gloo) trains like one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.support.paths import REPO
from tests.trainer.train_support import DDP_STEPS, ddp_run

torch.set_num_threads(1)


def test_two_processes_match_one(tmp_path: Path) -> None:
    worker = tmp_path / "worker.py"
    worker.write_text(
        f"import sys\nfrom pathlib import Path\nfrom tests.trainer.train_support import ddp_run\nddp_run(Path({str(tmp_path / 'ddp')!r}))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = torch.load(tmp_path / "ddp" / "result.pt", weights_only=True)

    single_losses, single_state = ddp_run(tmp_path / "single")
    assert len(ddp["losses"]) == DDP_STEPS
    assert ddp["losses"] == pytest.approx(single_losses, rel=1e-5, abs=1e-6)
    assert ddp["losses"][-1] != pytest.approx(ddp["losses"][0], rel=1e-3)  # the weights did move
    for name, value in single_state.items():
        torch.testing.assert_close(ddp["state"][name], value, rtol=1e-4, atol=1e-5, msg=name)
