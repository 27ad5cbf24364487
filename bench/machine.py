"""The machine behind a bench's figures, in one line: CPU model name and number, cores, and whether it has AVX-512
VNNI (int8 speed and results depend on it)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")]
    models = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model\t")]
    vnni = "yes" if "avx512_vnni" in info else "no"
    return f"{names[0] if names else '?'}, model {models[0] if models else '?'}, {os.cpu_count()} cores, avx512_vnni: {vnni}"
