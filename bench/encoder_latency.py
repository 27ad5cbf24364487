"""Latency of the MobileCLIP image and text encoders: PyTorch train-time, PyTorch reparameterized, ONNX Runtime.

    python bench/encoder_latency.py [--models mobileclip-s0,mobileclip-b] [--threads 1] [--rounds 7] [--quick]

Random weights (latency does not depend on their values). All cases run in one process and are interleaved: every
round runs each (encoder, form, batch) once, so background load hits them alike; figures are medians over rounds,
and ratios are medians of per-round ratios. The comparison point for image encoders is MobileCLIP-B's ViT-B/16
(added when missing). ``--quick`` measures batch 1 only, with fewer rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.privacy import keep_private  # noqa: E402

keep_private()  # before onnxruntime is imported: it reads its telemetry switch only then

import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

from core.tokenizers.clip_bpe import ClipBpeTokenizer, bundled_vocab_path  # noqa: E402
from trainer.models.clip import MobileCLIP, create_model, model_info  # noqa: E402
from trainer.models.reparam import reparameterize_model  # noqa: E402
from trainer.onnx_export import export_onnx  # noqa: E402

FORMS = ("train", "fused", "onnx")
REFERENCE = "mobileclip-b"  # its image tower is the ViT-B/16 comparison point
CAPTIONS = ["a dog on a beach at sunset", "receipts", "grandma's garden in spring, with roses", "a red bicycle"]


@dataclass
class Case:
    """One encoder of one model: a callable per form, fed the same inputs."""

    label: str
    kind: str  # "image" or "text"
    model: str
    runners: dict[str, Callable[[int], object]]


class _Graph(torch.nn.Module):
    """One encoder of a model as an exportable module (the model is a submodule, so its weights are parameters)."""

    def __init__(self, model: MobileCLIP, kind: str) -> None:
        super().__init__()
        self.model, self.kind = model, kind

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(*inputs) if self.kind == "image" else self.model.encode_text(*inputs)


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _image_case(name: str, train: MobileCLIP, fused: MobileCLIP, tmp: Path, threads: int, batches: list[int]) -> Case:
    info = model_info(name)
    res = info.resolution
    pixels = {b: torch.rand(b, 3, res, res, generator=torch.Generator().manual_seed(b)) for b in batches}

    path = export_onnx(
        _Graph(fused, "image"),
        (pixels[batches[0]],),
        tmp / f"{name}-image.onnx",
        ["pixel_values"],
        "image_embeds",
        {"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
    )
    session = _session(path, threads)
    feeds = {b: {"pixel_values": p.numpy()} for b, p in pixels.items()}
    tower = type(train.image_tower).__name__
    return Case(
        f"{info.display} image {res}px ({tower})",
        "image",
        name,
        {
            "train": lambda b: train.encode_image(pixels[b]),
            "fused": lambda b: fused.encode_image(pixels[b]),
            "onnx": lambda b: session.run(None, feeds[b]),
        },
    )


def _text_case(name: str, train: MobileCLIP, fused: MobileCLIP, tmp: Path, threads: int, batches: list[int]) -> Case:
    info = model_info(name)
    tokenizer = ClipBpeTokenizer(bundled_vocab_path())
    tokens = {b: tokenizer([CAPTIONS[i % len(CAPTIONS)] for i in range(b)]) for b in batches}
    ids = {b: torch.from_numpy(t["input_ids"]) for b, t in tokens.items()}
    eot = {b: torch.from_numpy(t["eot_index"]) for b, t in tokens.items()}

    first = batches[0]
    path = export_onnx(
        _Graph(fused, "text"),
        (ids[first], eot[first]),
        tmp / f"{name}-text.onnx",
        ["input_ids", "eot_index"],
        "text_embeds",
        {"input_ids": {0: "batch"}, "eot_index": {0: "batch"}, "text_embeds": {0: "batch"}},
    )
    session = _session(path, threads)
    return Case(
        f"{info.display} text ({type(train.text_tower).__name__})",
        "text",
        name,
        {
            "train": lambda b: train.encode_text(ids[b], eot[b]),
            "fused": lambda b: fused.encode_text(ids[b], eot[b]),
            "onnx": lambda b: session.run(
                None, {"input_ids": tokens[b]["input_ids"], "eot_index": tokens[b]["eot_index"]}
            ),
        },
    )


def _measure(
    cases: list[Case], batches: list[int], rounds: int, warmup: int
) -> dict[tuple[str, str, int], list[float]]:
    """Seconds per call for every (case, form, batch), one list entry per round; rounds interleave all cases."""
    keys = [(c.label, form, b) for c in cases for form in FORMS for b in batches]
    run = {(c.label, form, b): (c.runners[form], b) for c in cases for form in FORMS for b in batches}
    times: dict[tuple[str, str, int], list[float]] = {k: [] for k in keys}
    with torch.inference_mode():
        for key in keys:
            fn, b = run[key]
            for _ in range(warmup):
                fn(b)
        for r in range(rounds):
            order = keys[r % len(keys) :] + keys[: r % len(keys)]  # rotate so no case always runs first
            for key in order:
                fn, b = run[key]
                start = time.perf_counter()
                fn(b)
                times[key].append(time.perf_counter() - start)
    return times


def _ratio(times: dict, a: tuple, b: tuple) -> float:
    return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))


def _report(cases: list[Case], batches: list[int], times: dict, threads: int, rounds: int) -> None:
    print(
        f"\nmedian ms per call over {rounds} interleaved rounds, {threads} thread(s), torch {torch.__version__}, "
        f"onnxruntime {ort.__version__}"
    )
    vit = next(c for c in cases if c.kind == "image" and c.model == REFERENCE)
    header = (
        f"{'encoder':<48} {'batch':>5} {'train':>9} {'fused':>9} {'onnx':>9} {'fused/train':>11} {'train/onnx':>10}"
    )
    print(header + f" {'vs ViT-B/16 (fused, onnx)':>26}")
    for case in cases:
        for b in batches:
            ms = {f: 1000 * statistics.median(times[(case.label, f, b)]) for f in FORMS}
            fused_ratio = _ratio(times, (case.label, "fused", b), (case.label, "train", b))
            speedup = _ratio(times, (case.label, "train", b), (case.label, "onnx", b))
            vs = ""
            if case.kind == "image":
                vs = "{:.2f}x, {:.2f}x".format(
                    _ratio(times, (case.label, "fused", b), (vit.label, "fused", b)),
                    _ratio(times, (case.label, "onnx", b), (vit.label, "onnx", b)),
                )
            print(
                f"{case.label:<48} {b:>5} {ms['train']:>9.1f} {ms['fused']:>9.1f} {ms['onnx']:>9.1f} "
                f"{fused_ratio:>10.2f}x {speedup:>9.2f}x {vs:>26}"
            )
    print(
        "\nfused/train < 1: reparameterization speeds PyTorch up; train/onnx: how much faster the ONNX path is "
        "than PyTorch eager train-time (goal >= 2x); vs ViT-B/16: image latency relative to MobileCLIP-B's ViT-B/16 "
        "image encoder in the same form (goal for MCi0 <= 0.25x)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mobileclip-s0,mobileclip-b", help="comma-separated model names")
    parser.add_argument("--threads", type=int, default=1, help="threads for PyTorch and onnxruntime alike")
    parser.add_argument("--rounds", type=int, default=None, help="measured rounds (default 7, quick 3)")
    parser.add_argument("--quick", action="store_true", help="batch 1 only and fewer rounds")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    batches = [1] if args.quick else [1, 32]
    rounds = args.rounds or (3 if args.quick else 7)
    names = [model_info(n).name for n in args.models.split(",") if n.strip()]
    if REFERENCE not in names:
        names.append(REFERENCE)
    cases: list[Case] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            start = time.perf_counter()
            train = create_model(name)
            fused = reparameterize_model(train).eval()
            cases.append(_image_case(name, train, fused, Path(tmp), args.threads, batches))
            cases.append(_text_case(name, train, fused, Path(tmp), args.threads, batches))
            print(f"built and exported {name} in {time.perf_counter() - start:.1f} s", flush=True)
        times = _measure(cases, batches, rounds, warmup=1 if args.quick else 2)
    _report(cases, batches, times, args.threads, rounds)


if __name__ == "__main__":
    main()
