"""`torchrun --nproc_per_node 2` on the CPU (gloo) trains like one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.test_train_loop import TEACHERS, config, student, tiny_data
from trainer.train.distributed import init_distributed, shutdown
from trainer.train.loop import train
from trainer.train.state import trainable_state

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parent.parent
STEPS = 4


def run(out: Path) -> tuple[list[float], dict[str, torch.Tensor]]:
    """The run both ways: global batch 8, features gathered across ranks, clipping and accumulation on."""
    info = init_distributed("cpu")
    model = student(dropout=0.0)  # no dropout: ranks draw different dropout masks than one process would
    cfg = config(out, steps=STEPS, batch_size=8, accum=2, grad_clip=0.5, w_clip=0.5, w_kd=0.5)
    result = train(model, tiny_data(), cfg, teachers=TEACHERS, info=info)
    if info.is_main:
        torch.save({"losses": result.losses(), "state": trainable_state(model)}, out / "result.pt")
    shutdown(info)
    return result.losses(), trainable_state(model)


def test_two_processes_match_one(tmp_path: Path) -> None:
    worker = tmp_path / "worker.py"
    worker.write_text(
        f"import sys\nfrom pathlib import Path\nfrom tests.test_train_ddp import run\nrun(Path({str(tmp_path / 'ddp')!r}))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = torch.load(tmp_path / "ddp" / "result.pt", weights_only=True)

    single_losses, single_state = run(tmp_path / "single")
    assert len(ddp["losses"]) == STEPS
    assert ddp["losses"] == pytest.approx(single_losses, rel=1e-5, abs=1e-6)
    assert ddp["losses"][-1] != pytest.approx(ddp["losses"][0], rel=1e-3)  # the weights did move
    for name, value in single_state.items():
        torch.testing.assert_close(ddp["state"][name], value, rtol=1e-4, atol=1e-5, msg=name)
