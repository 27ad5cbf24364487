"""Time from launching PhotoSeek to its first window on screen, and to the library being open.

    python bench/startup.py [--runs 5] [--packaged dist/PhotoSeek/PhotoSeek] [--platform offscreen]

Each run starts a fresh process with an empty library and settings in a temporary folder (so the user's
own are never touched), waits for the app to report, and prints the median and best of the runs.
The source run is `python -m desktop`; the packaged run is the PyInstaller build when it exists.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 1.5


def _one_run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds from spawning the process to (first window shown, library open)."""
    with tempfile.TemporaryDirectory(prefix="photoseek-bench-") as tmp:
        run_env = {**env, "XDG_CONFIG_HOME": f"{tmp}/config", "XDG_DATA_HOME": f"{tmp}/data"}
        run_env.pop("PHOTOSEEK_HOME", None)
        spawned = time.time()
        done = subprocess.run(
            [*command, "--library", f"{tmp}/library", "--exit-when-shown"],
            cwd=REPO,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    values = dict(part.split("=", 1) for line in done.stdout.splitlines() for part in line.split() if "=" in part)
    if "first_window_shown_at" not in values:
        raise RuntimeError(f"{command[0]} did not report (exit {done.returncode}): {done.stderr[-800:]}")
    shown = float(values["first_window_shown_at"]) - spawned
    opened = float(values.get("library_open_at", "nan")) - spawned
    return shown, opened


def measure(name: str, command: list[str], runs: int, env: dict[str, str]) -> None:
    """Run `command` `runs` times and print the numbers."""
    _one_run(command, env)  # warm the OS file cache: we measure the app, not the disk
    shown, opened = zip(*(_one_run(command, env) for _ in range(runs)), strict=True)
    verdict = "meets" if statistics.median(shown) < GOAL_SECONDS else "misses"
    print(
        f"{name:<9} first window: median {statistics.median(shown):.2f} s, best {min(shown):.2f} s "
        f"({verdict} the {GOAL_SECONDS} s goal) | library open: median {statistics.median(opened):.2f} s "
        f"| {runs} runs"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--packaged", type=Path, default=REPO / "dist" / "PhotoSeek" / "PhotoSeek")
    parser.add_argument("--platform", default=os.environ.get("QT_QPA_PLATFORM") or "offscreen")
    args = parser.parse_args()
    env = {**os.environ, "QT_QPA_PLATFORM": args.platform}
    print(f"platform={args.platform} cpus={os.cpu_count()} python={sys.version.split()[0]}")
    measure("source", [sys.executable, "-m", "desktop"], args.runs, env)
    if args.packaged.is_file():
        measure("packaged", [str(args.packaged)], args.runs, env)
    else:
        print(f"packaged  not built ({args.packaged} missing): python -m PyInstaller build.spec")
    return 0


if __name__ == "__main__":
    sys.exit(main())
