"""A tiny but complete model package, built from seeded numpy weights with `onnx.helper` (no torch).

The package passes every check core makes (card, sha256 hashes, ONNX inputs/outputs, WordPiece vocabulary), so
tests of the run time (indexing, search, tagging, the CLI) work on an install without the trainer's torch. Its
weights are random: different photos and texts get different embeddings, the same input the same one, and
nothing more; never assert ranking quality with it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from core.model_card import EncoderSpec, ModelCard, PreprocessSpec, TokenizerSpec, ViewSpec
from core.model_card_types import Architecture, Provenance
from core.package_writer import finalize_package

SEED = 20240612
EMBED_DIM = 16
IMAGE_SIZE = 32
POOL = 8  # 32x32 pixels -> 4x4 cells of mean colour: coarse layout, so different photos differ
CONTEXT_LENGTH = 16
# ir_version 8 / opset 17: read by every onnxruntime that core supports (>= 1.20).
IR_VERSION = 8
OPSET = 17
IMAGE_INPUT, IMAGE_OUTPUT = "pixel_values", "image_embeds"
TEXT_INPUTS, TEXT_OUTPUT = ("input_ids", "attention_mask"), "text_embeds"

_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_PUNCTUATION = tuple(".,!?'\"-:;()&/+#@")
# Whole words for queries and common tags; any other lower-case ASCII word still tokenises, letter by letter.
_WORDS = """
a an the of on in at with and or to from by for near under over this that my our is are photo photos picture
image close up cat cats kitten dog dogs puppy bird horse cow sheep fish animal animals pet person people man
woman child baby family friends portrait selfie face smiling beach sea ocean sand wave lake river water
mountain mountains hill forest tree trees flower flowers garden park grass field sky cloud clouds sun sunset
sunrise night day snow rain winter summer spring autumn city street road car bus train boat bike building
house room kitchen table chair cup coffee tea food cake pizza fruit apple red green blue yellow orange black
white grey brown pink purple dark light old new big small space moon stars rocket astronaut flag coins brick
wall book page text paper camera tripod motorcycle garage galaxy telescope eye stairs office desk mug ruins
arches tower night lit glass aerial farm wedding party birthday christmas travel holiday vacation museum
""".split()
_SUFFIXES = ("##s", "##es", "##ed", "##ing", "##er", "##ly", "##y")


def tiny_vocabulary() -> list[str]:
    """The WordPiece vocabulary, id = position: specials, punctuation, characters, word pieces and words."""
    chars = [*"abcdefghijklmnopqrstuvwxyz0123456789"]
    tokens = [*_SPECIALS, *_PUNCTUATION, *chars, *(f"##{c}" for c in chars), *_SUFFIXES, *_WORDS]
    return list(dict.fromkeys(tokens))  # first occurrence wins: a word that is also a letter keeps one id


def _save(model: onnx.ModelProto, path: Path) -> None:
    onnx.checker.check_model(model, full_check=True)
    path.write_bytes(model.SerializeToString())


def _image_encoder(rng: np.random.Generator) -> onnx.ModelProto:
    """pixels [N,3,S,S] -> 8x8 average pool -> flatten -> linear -> [N,D]."""
    cells = 3 * (IMAGE_SIZE // POOL) ** 2
    weight = (rng.standard_normal((cells, EMBED_DIM)) / np.sqrt(cells)).astype(np.float32)
    bias = (rng.standard_normal(EMBED_DIM) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", [IMAGE_INPUT], ["pooled"], kernel_shape=[POOL, POOL], strides=[POOL, POOL]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "weight"], ["projected"]),
        helper.make_node("Add", ["projected", "bias"], [IMAGE_OUTPUT]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_image_encoder",
        [helper.make_tensor_value_info(IMAGE_INPUT, TensorProto.FLOAT, ["batch", 3, IMAGE_SIZE, IMAGE_SIZE])],
        [helper.make_tensor_value_info(IMAGE_OUTPUT, TensorProto.FLOAT, ["batch", EMBED_DIM])],
        initializer=[numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(bias, "bias")],
    )
    return helper.make_model(graph, ir_version=IR_VERSION, opset_imports=[helper.make_opsetid("", OPSET)])


def _text_encoder(rng: np.random.Generator, vocab_size: int) -> onnx.ModelProto:
    """input_ids, attention_mask [N,L] -> embedding table lookup -> mean over unmasked tokens -> [N,D]."""
    table = rng.standard_normal((vocab_size, EMBED_DIM)).astype(np.float32)
    ids, mask = TEXT_INPUTS
    nodes = [
        helper.make_node("Gather", ["table", ids], ["tokens"], axis=0),
        helper.make_node("Cast", [mask], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axis2"], ["mask_3d"]),
        helper.make_node("Mul", ["tokens", "mask_3d"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask_f", "axis1"], ["count"], keepdims=1),
        helper.make_node("Max", ["count", "one"], ["safe_count"]),  # an all-padding row divides by 1, not 0
        helper.make_node("Div", ["summed", "safe_count"], [TEXT_OUTPUT]),
    ]
    initializers = [
        numpy_helper.from_array(table, "table"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_text_encoder",
        [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"]) for name in TEXT_INPUTS],
        [helper.make_tensor_value_info(TEXT_OUTPUT, TensorProto.FLOAT, ["batch", EMBED_DIM])],
        initializer=initializers,
    )
    return helper.make_model(graph, ir_version=IR_VERSION, opset_imports=[helper.make_opsetid("", OPSET)])


def _card(model_id: str) -> ModelCard:
    return ModelCard(
        id=model_id,
        name="PhotoSeek test model (tiny, random weights)",
        architecture=Architecture(
            family="tiny-test",
            image=f"{POOL}x{POOL} average pool + random linear",
            text="random token embeddings, masked mean",
        ),
        embedding_dim=EMBED_DIM,
        preprocess=PreprocessSpec(
            size=IMAGE_SIZE,
            interpolation="bilinear",
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            views=(ViewSpec("squash"),),
        ),
        tokenizer=TokenizerSpec(kind="wordpiece", files={"vocab": "vocab.txt"}, context_length=CONTEXT_LENGTH),
        image_encoder=EncoderSpec("image_encoder.onnx", (IMAGE_INPUT,), IMAGE_OUTPUT),
        text_encoder=EncoderSpec("text_encoder.onnx", TEXT_INPUTS, TEXT_OUTPUT),
        files={},
        license={"name": "MIT", "file": "LICENSE.txt"},
        # No timestamp: the same code builds byte-identical packages.
        provenance=Provenance(built_by="tests/support/tiny_model.py", extra={"seed": SEED}),
    )


def build_tiny_package(dest: Path, model_id: str = "tiny") -> Path:
    """Write a complete model package into the folder `dest` (created; must be empty) and return it."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise FileExistsError(f"{dest} is not empty: the card would hash whatever is there")
    rng = np.random.default_rng(SEED)
    vocab = tiny_vocabulary()
    (dest / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    _save(_image_encoder(rng), dest / "image_encoder.onnx")
    _save(_text_encoder(rng, len(vocab)), dest / "text_encoder.onnx")
    (dest / "LICENSE.txt").write_text(
        "Test model of PhotoSeek: random weights generated by tests/support/tiny_model.py. MIT licence.\n",
        encoding="utf-8",
    )
    finalize_package(dest, _card(model_id))
    return dest


@pytest.fixture(scope="session")
def tiny_package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of the tiny model package, built once per test session. Copy it before changing anything."""
    return build_tiny_package(tmp_path_factory.mktemp("tiny-model") / "tiny")
