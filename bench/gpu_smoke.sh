#!/usr/bin/env bash
# Smoke test of the training loop's CUDA paths (device choice, fp32 vs bf16, exact accumulation, CUDA RNG replay,
# a 2-process nccl DDP step when 2 GPUs exist) in well under five minutes. Without a GPU the same checks run on
# the CPU and the first line says "no GPU: CUDA paths not exercised". Run from anywhere:
#     bench/gpu_smoke.sh            (PYTHON=/path/to/python to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout 300 "${PYTHON:-python}" bench/gpu_smoke.py
