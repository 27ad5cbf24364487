"""Torch-free MobileCLIP import: time and peak memory of `python -m core models import`, and how to load the weights.

    python bench/checkpoint_import.py [--tag S2] [--threads 2]

Makes a golden-filled checkpoint of the variant (safetensors, same size as Apple's file), imports it with the CLI in
a child process where torch cannot be imported, and prints wall time and the child's peak RSS against the issue's
goals (60 s, 2 GB for S2). Then compares three ways to give onnxruntime the image encoder's weights, by session
load time (median of 3) and bytes on disk: the package as written (graph + ONNX external data file), one ONNX file
with the weights inline (needs the onnx package to write), and a weight-less graph whose initializers are injected
from a numpy file with ``SessionOptions.add_initializer``. Figures depend on the CPU and the disk cache.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.machine import cpu_name  # noqa: E402
from tests.support.golden_checkpoints import golden_arrays, save_safetensors  # noqa: E402

NO_TORCH = REPO / "tests" / "support" / "no_torch"


def import_in_child(checkpoint: Path, library: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of the CLI import in a child process without torch."""
    env = {**os.environ, "PYTHONPATH": str(NO_TORCH)}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "core", "models", "import", str(checkpoint), "--library", str(library)],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - started
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return options


def _median_load(make: callable) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        make()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def compare_loading(package: Path, tmp: Path, threads: int) -> None:
    import onnx  # dev dependency: only this comparison writes ONNX files
    from onnx import numpy_helper

    graph_file, data_file = package / "image_encoder.onnx", package / "image_encoder.onnx.data"
    external = _median_load(lambda: ort.InferenceSession(str(graph_file), _options(threads)))
    model = onnx.load(str(graph_file))  # loads the external data into the graph
    inline_file = tmp / "inline.onnx"
    onnx.save(model, str(inline_file))
    inline = _median_load(lambda: ort.InferenceSession(str(inline_file), _options(threads)))

    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    np.savez(tmp / "weights.npz", **weights)
    # Same graph without its initializers: each becomes a graph input of its type and shape, to be injected.
    for tensor in model.graph.initializer:
        model.graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims))
    del model.graph.initializer[:]
    bare_file = tmp / "bare.onnx"
    onnx.save(model, str(bare_file))

    def injected() -> None:
        options = _options(threads)
        with np.load(tmp / "weights.npz") as stored:
            values = [ort.OrtValue.ortvalue_from_numpy(stored[name]) for name in stored.files]
            for name, value in zip(stored.files, values, strict=True):
                options.add_initializer(name, value)
            ort.InferenceSession(str(bare_file), options)

    try:
        inject = _median_load(injected)
    except Exception as exc:  # report what onnxruntime says rather than stop the bench
        inject, inject_note = float("nan"), f" ({type(exc).__name__}: {str(exc)[:80]})"
    else:
        inject_note = ""
    mb = 1e6
    print("image encoder session load (median of 3), and bytes on disk:")
    print(
        f"  external data file (package)  {external:6.2f} s  {(graph_file.stat().st_size + data_file.stat().st_size) / mb:7.1f} MB"
    )
    print(
        f"  inline single ONNX file       {inline:6.2f} s  {inline_file.stat().st_size / mb:7.1f} MB  ({inline / external:.2f}x)"
    )
    size = bare_file.stat().st_size + (tmp / "weights.npz").stat().st_size
    print(
        f"  add_initializer injection     {inject:6.2f} s  {size / mb:7.1f} MB  ({inject / external:.2f}x){inject_note}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="S2", help="golden variant tag (default S2, about 100M parameters)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical cores), onnxruntime {ort.__version__}")
    with tempfile.TemporaryDirectory(prefix="photoseek-bench-") as name:
        tmp = Path(name)
        checkpoint = save_safetensors(golden_arrays(args.tag), tmp / f"{args.tag.lower()}.safetensors")
        print(f"{args.tag}: checkpoint {checkpoint.stat().st_size / 1e6:.0f} MB")
        seconds, peak = import_in_child(checkpoint, tmp / "library")
        print(f"import without torch: {seconds:.1f} s (goal 60 s), peak RSS {peak:.0f} MB (goal 2048 MB)")
        package = next((tmp / "library" / "models").iterdir())
        compare_loading(package, tmp, args.threads)


if __name__ == "__main__":
    main()
