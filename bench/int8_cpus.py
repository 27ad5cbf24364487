"""How faithful a package's int8 image encoder is on different CPUs, and what core then runs on each.

    python bench/int8_cpus.py PACKAGE_DIR [--emulate Haswell Nehalem] [--threads 1]

For every real corpus photo (both views), the float32 graph's embedding is the reference, computed natively. Then,
natively and under each emulated CPU (user-mode QEMU, `apt-get install qemu-user`: `Haswell` is AVX2 without
AVX-512 or VNNI, `Nehalem` SSE4.2 only), a child process loads the package as core does, runs its image check, and
embeds every view with the int8 graph and with the encoder core chose. Emulation computes exactly what that CPU
would (the kernels onnxruntime picks follow CPUID), but its timings mean nothing: ms/view is printed for the
native run only. More photos: see tests/photo_corpus.py (PHOTOSEEK_CORPUS_ROOTS for unpacked Debian packages).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.encoders import ModelPackage  # noqa: E402
from core.image_check import cosines, cpu_description  # noqa: E402


def _child(package_dir: Path, pixels_file: Path, out_file: Path, threads: int) -> None:
    """Run in the measured CPU: the image check, then every view through the int8 graph and core's choice."""
    import onnxruntime as ort

    # Not verified here (the bench measures; `python -m core models verify` checks files), so a copy of the
    # package that carries only the image files can be measured on another machine.
    package = ModelPackage(package_dir, verify=False, threads=threads)
    result = package.check_image_encoder()
    pixels = np.load(pixels_file)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    int8 = ort.InferenceSession(str(package_dir / package.card.image_encoder.file), options)
    started = time.perf_counter()
    raw = np.concatenate([int8.run(None, {"pixel_values": pixels[i : i + 1]})[0] for i in range(len(pixels))])
    ms_per_view = (time.perf_counter() - started) * 1000 / len(pixels)
    # The float32 graph is slow under emulation, and exact anywhere: when core chose it, a few views confirm that.
    chosen = raw if result.passed else package.embed_pixels(pixels[:4, None])
    np.savez(out_file, int8=raw, chosen=chosen)
    summary = {"cpu": cpu_description(), "ms_per_view": ms_per_view, "check": result and result.__dict__}
    out_file.with_suffix(".json").write_text(json.dumps(summary))


def _corpus_pixels(package: ModelPackage) -> np.ndarray:
    from tests.photo_corpus import available_photos, load_photo

    return np.concatenate([package.preprocess(load_photo(photo.name)) for photo in available_photos()])


def _measure(cpu: str | None, package_dir: Path, pixels_file: Path, work: Path, threads: int) -> tuple[dict, dict]:
    out = work / f"{cpu or 'native'}.npz"
    command = [sys.executable, __file__, str(package_dir), "--child", str(pixels_file), str(out)]
    command += ["--threads", str(threads)]
    if cpu:
        command = ["qemu-x86_64", "-cpu", cpu, *command]
    subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
    with np.load(out) as data:
        arrays = {key: data[key] for key in data.files}
    return arrays, json.loads(out.with_suffix(".json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", type=Path, help="a model package folder with an image check (e.g. the starter)")
    parser.add_argument("--emulate", nargs="*", default=["Haswell"], help="QEMU CPU models to emulate")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.package, *args.child, args.threads)
        return
    package = ModelPackage(args.package, verify=False)
    if package.card.image_check is None:
        sys.exit(f"{args.package}: this package has no image check (no int8 encoder to compare)")
    pixels = _corpus_pixels(package)
    exact_file = args.package / package.card.image_check.fallback.file
    reference = _run_exact(exact_file, pixels, args.threads)
    cpus = [None] + [cpu for cpu in args.emulate if shutil.which("qemu-x86_64") or sys.exit("qemu-x86_64 not found")]
    print(f"{len(pixels)} views of {len(pixels) // len(package.card.preprocess.views)} photos; reference: float32")
    print("| CPU | check min | int8 kept | int8 vs float32: min / mean | core's choice: min / mean | ms/view |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        np.save(work / "pixels.npy", pixels)
        for cpu in cpus:
            arrays, summary = _measure(cpu, args.package, work / "pixels.npy", work, args.threads)
            int8 = cosines(arrays["int8"], reference)
            chosen = cosines(arrays["chosen"], reference[: len(arrays["chosen"])])
            check = summary["check"]
            speed = f"{summary['ms_per_view']:.1f}" if cpu is None else "(emulated)"
            # Under user-mode QEMU, /proc/cpuinfo still describes the host: name the emulated model instead.
            label = summary["cpu"] if cpu is None else f"QEMU -cpu {cpu} (emulated on this host)"
            print(
                f"| {label} | {check['cosine_min']:.4f} | {check['passed']} | {int8.min():.4f} / {int8.mean():.4f} "
                f"| {chosen.min():.4f} / {chosen.mean():.4f} | {speed} |"
            )


def _run_exact(path: Path, pixels: np.ndarray, threads: int) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options)
    started = time.perf_counter()
    out = np.concatenate([session.run(None, {"pixel_values": pixels[i : i + 1]})[0] for i in range(len(pixels))])
    print(f"float32 graph, native: {(time.perf_counter() - started) * 1000 / len(pixels):.1f} ms/view")
    return out


if __name__ == "__main__":
    main()
