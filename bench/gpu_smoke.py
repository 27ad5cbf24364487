"""The training loop's CUDA paths in a few seconds each: run by bench/gpu_smoke.sh (see there).

Checks, on the device ``pick_device('auto')`` chooses (the CPU when there is no GPU, said in the first line):
device choice; a few steps in fp32 and in bf16 autocast (finite, bf16 within 10% of fp32's last loss); exact
gradient accumulation on the device (accum 4 = one pass over the global batch); the accumulation's RNG replay
(dropout masks drawn again after restoring the saved CPU + CUDA RNG state are the same); and, with 2 GPUs, one
2-process DDP run (nccl) against one process. Prints one line per check and exits 1 when one fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.trainer.train_support import TEACHERS, config, student, tiny_data  # noqa: E402
from trainer.train.accumulate import device_rng_state, set_device_rng_state  # noqa: E402
from trainer.train.distributed import DistInfo, init_distributed, pick_device, shutdown  # noqa: E402
from trainer.train.loop import train  # noqa: E402

STEPS = 6
failures: list[str] = []


def check(name: str, ok: bool, detail: str) -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
    if not ok:
        failures.append(name)


def run(out: Path, device: torch.device, **overrides) -> list[float]:
    cfg = config(out, steps=STEPS, device=device.type, **overrides)
    return train(student(dropout=0.0), tiny_data(), cfg, teachers=TEACHERS, info=DistInfo(device=device)).losses()


def precision_and_accumulation(device: torch.device, tmp: Path) -> None:
    fp32 = run(tmp / "fp32", device, precision="fp32")
    bf16 = run(tmp / "bf16", device, precision="bf16")
    finite = all(map(torch.isfinite, torch.tensor(fp32 + bf16)))
    gap = abs(bf16[-1] - fp32[-1]) / abs(fp32[-1])
    check("fp32 vs bf16", finite and gap < 0.1, f"last loss {fp32[-1]:.4f} vs {bf16[-1]:.4f} (gap {gap:.1%})")
    accum = run(tmp / "accum", device, precision="fp32", batch_size=8, accum=4)
    single = run(tmp / "single", device, precision="fp32", batch_size=8)
    diff = max(abs(a - b) for a, b in zip(accum, single, strict=True))
    check("exact accumulation", diff < 1e-4, f"accum 4 vs 1, max loss difference over {STEPS} steps {diff:.1e}")


def rng_replay(device: torch.device) -> None:
    x = torch.ones(4096, device=device)
    state = device_rng_state(device)
    first = torch.nn.functional.dropout(x, 0.5)
    set_device_rng_state(state, device)
    again = torch.nn.functional.dropout(x, 0.5)
    kind = "CUDA" if device.type == "cuda" else "CPU"
    check("RNG replay", torch.equal(first, again), f"{kind} dropout mask redrawn after restoring the saved state")


def ddp(tmp: Path) -> None:
    if torch.cuda.device_count() < 2:
        print(f"skip DDP: {torch.cuda.device_count()} GPU(s), the 2-process nccl step needs 2", flush=True)
        return
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", __file__,
               "--ddp-worker", str(tmp / "ddp")]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    if done.returncode != 0:
        check("DDP nccl", False, done.stderr[-1500:])
        return
    losses = torch.load(tmp / "ddp" / "losses.pt", weights_only=True)
    single = run(tmp / "ddp_single", torch.device("cuda", 0), precision="fp32", batch_size=8, accum=2)
    diff = max(abs(a - b) for a, b in zip(losses, single, strict=True))
    check("DDP nccl", diff < 1e-4, f"2 processes vs 1, max loss difference {diff:.1e}")


def ddp_worker(out: Path) -> None:
    info = init_distributed("auto")
    cfg = config(out, steps=STEPS, batch_size=8, accum=2, device="cuda", precision="fp32")
    losses = train(student(dropout=0.0), tiny_data(), cfg, teachers=TEACHERS, info=info).losses()
    if info.is_main:
        torch.save(losses, out / "losses.pt")
    shutdown(info)


def main() -> int:
    device = pick_device("auto")
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)} x{torch.cuda.device_count()}, torch {torch.__version__}, "
              f"bf16 supported: {torch.cuda.is_bf16_supported()}", flush=True)  # fmt: skip
    else:
        print("no GPU: CUDA paths not exercised (the same checks run on the CPU)", flush=True)
    check("device choice", device.type == ("cuda" if torch.cuda.is_available() else "cpu"), f"auto -> {device}")
    with tempfile.TemporaryDirectory(prefix="gpu-smoke-") as tmp:
        precision_and_accumulation(device, Path(tmp))
        rng_replay(device)
        ddp(Path(tmp))
    print("FAILED: " + ", ".join(failures) if failures else "all checks passed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--ddp-worker":
        ddp_worker(Path(sys.argv[2]))
    else:
        sys.exit(main())
