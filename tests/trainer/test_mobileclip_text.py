"""MobileCLIP / MobileCLIP2 text encoders against the golden parity data (tests/data/golden, see its README.md).

For every tag with a golden npz: the state-dict layout equals the reference key lists (train-time and
fused), the golden fill reproduces each key's ``sum`` / ``first``, and features plus per-layer debug
summaries match the reference outputs of the train-time and reparameterized models. Small random-weight
encoders check masking and pooling behaviour; the fused S0 encoder is exported to ONNX and run in
onnxruntime.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.golden import golden_file
from trainer.models.golden_fill import fill_rule, fill_state_dict
from trainer.models.reparam import reparameterize_model
from trainer.models.text_factory import TEXT_CONFIGS, build_text_encoder, text_config
from trainer.models.text_openclip import OpenClipTextTransformer
from trainer.models.text_v1 import TextTransformerV1

torch.set_num_threads(1)

GOLDEN_TAGS = ["S0", "S1", "S2", "B", "MC2-S0", "MC2-S2", "MC2-B", "MC2-S3", "MC2-S4"]
# Tags whose text tower has the same architecture and key names as another tag's, hence the same golden
# fill and outputs (checked in test_twin_tags_share_text_golden); their twin's encoder is run instead.
TWINS = {"S2": "S1", "MC2-S2": "MC2-S0", "MC2-S4": "MC2-S3"}
RUN_TAGS = [t for t in GOLDEN_TAGS if t not in TWINS]


@cache
def text_entries(tag: str, reparam: bool = False) -> tuple[dict, ...]:
    """Golden key-list entries of the text tower of ``tag``, with the checkpoint prefix removed."""
    prefix = text_config(tag).checkpoint_prefix
    path = golden_file(f"keys-{tag}{'-reparam' if reparam else ''}.json")
    entries = json.loads(path.read_text())["entries"]
    return tuple({**e, "name": e["name"][len(prefix) :]} for e in entries if e["name"].startswith(prefix))


def layout(model: torch.nn.Module) -> list[tuple[str, list[int], str]]:
    """(name, shape, dtype) of every state-dict entry, in order."""
    return [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()]


def golden_layout(tag: str, reparam: bool = False) -> list[tuple[str, list[int], str]]:
    return [(e["name"], e["shape"], e["dtype"]) for e in text_entries(tag, reparam)]


def tol(ref: np.ndarray, rel: float) -> float:
    """The README's tolerance rule ``rel * max(1, max|ref|)``."""
    return rel * max(1.0, float(np.abs(ref).max()))


def run_with_debug(model: torch.nn.Module, tag: str, ids: torch.Tensor) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Features and per-module debug summaries (``eot`` and ``mean_tokens``) named as in the npz."""
    prefix = text_config(tag).checkpoint_prefix
    eot = ids.argmax(dim=-1)
    summaries: dict[str, np.ndarray] = {}
    if text_config(tag).layout == "v1":
        paths = [f"transformer.{i}" for i in range(len(model.transformer))] + ["final_layer_norm"]
    else:
        paths = [f"transformer.resblocks.{i}" for i in range(len(model.transformer.resblocks))] + ["ln_final"]

    def hook_for(path: str):
        def hook(_module, _inputs, out: torch.Tensor) -> None:
            name = prefix.rstrip(".") + "." + path
            summaries[f"debug/{name}/eot"] = out[torch.arange(out.shape[0]), eot].numpy()
            summaries[f"debug/{name}/mean_tokens"] = out.mean(dim=1).numpy()

        return hook

    handles = [model.get_submodule(p).register_forward_hook(hook_for(p)) for p in paths]
    try:
        with torch.no_grad():
            features = model(ids).numpy()
    finally:
        for h in handles:
            h.remove()
    return features, summaries


def assert_matches(npz, tag: str, form: str, features: np.ndarray, debug: dict[str, np.ndarray]) -> None:
    """Compare features (1e-4 rule) and every text debug summary (1e-3 rule) of ``form`` (train / reparam)."""
    ref = npz[f"{form}/text_features"]
    assert np.abs(features - ref).max() <= tol(ref, 1e-4)
    start = f"{form}/debug/{text_config(tag).checkpoint_prefix}"
    expected = sorted(k.removeprefix(f"{form}/") for k in npz.files if k.startswith(start))
    assert sorted(debug) == expected
    for key, value in debug.items():
        ref = npz[f"{form}/{key}"]
        assert np.abs(value - ref).max() <= tol(ref, 1e-3), key


def text_arrays(tag: str) -> dict[str, np.ndarray]:
    """Every text-related array of ``golden-<tag>.npz``."""
    with np.load(golden_file(f"golden-{tag}.npz")) as npz:
        return {k: npz[k] for k in npz.files if "text" in k}


@pytest.mark.parametrize("tag", sorted(TWINS))
def test_twin_tags_share_text_golden(tag: str) -> None:
    twin = TWINS[tag]
    assert text_config(tag) == text_config(twin)
    for reparam in (False, True):
        assert text_entries(tag, reparam) == text_entries(twin, reparam)
    mine, theirs = text_arrays(tag), text_arrays(twin)
    assert sorted(mine) == sorted(theirs)
    for key, value in mine.items():
        np.testing.assert_array_equal(value, theirs[key], err_msg=key)


def build_filled(tag: str) -> torch.nn.Module:
    """Train-time encoder of ``tag`` with the golden fill (built without a wasted random init)."""
    with torch.device("meta"):
        model = build_text_encoder(tag)
    model = model.to_empty(device="cpu")
    fill_state_dict(model, prefix=text_config(tag).checkpoint_prefix)
    return model


@pytest.fixture(scope="module", params=RUN_TAGS)
def golden_case(request: pytest.FixtureRequest):
    """(tag, golden-filled train-time encoder, npz); built once per tag."""
    tag = request.param
    model = build_filled(tag)
    with np.load(golden_file(f"golden-{tag}.npz")) as npz:
        yield tag, model, npz


def test_train_layout_matches_checkpoint_keys(golden_case) -> None:
    tag, model, _ = golden_case
    assert layout(model) == golden_layout(tag)


def test_fill_reproduces_golden_sums(golden_case) -> None:
    tag, model, _ = golden_case
    state = model.state_dict()
    prefix = text_config(tag).checkpoint_prefix
    for entry in text_entries(tag):
        value = state[entry["name"]]
        assert (
            fill_rule(prefix + entry["name"], tuple(value.shape), not value.is_floating_point()) == entry["fill_rule"]
        )
        total = value.double().sum().item()
        assert total == pytest.approx(entry["sum"], rel=1e-6, abs=1e-6), entry["name"]
        assert value.reshape(-1)[0].item() == pytest.approx(entry["first"], rel=1e-6, abs=1e-9), entry["name"]


def test_train_features_match_golden(golden_case) -> None:
    tag, model, npz = golden_case
    features, debug = run_with_debug(model, tag, torch.from_numpy(npz["text_tokens"]))
    assert_matches(npz, tag, "train", features, debug)


def test_reparameterized_encoder_matches_golden(golden_case) -> None:
    tag, model, npz = golden_case
    fused = reparameterize_model(model)
    assert layout(fused) == golden_layout(tag, reparam=True)
    # Fused tensors must equal the reference fusion key by key (sum / first), and in full where given.
    state = fused.state_dict()
    for entry in text_entries(tag, reparam=True):
        value = state[entry["name"]].double()
        assert value.sum().item() == pytest.approx(entry["sum"], rel=1e-5, abs=1e-5), entry["name"]
        assert value.reshape(-1)[0].item() == pytest.approx(entry["first"], rel=1e-5, abs=1e-7), entry["name"]
    prefix = text_config(tag).checkpoint_prefix
    for key in (k for k in npz.files if k.startswith(f"fused/{prefix}")):
        ref = npz[key]
        got = state[key.removeprefix(f"fused/{prefix}")].numpy()
        assert np.abs(got - ref).max() <= tol(ref, 1e-5), key
    features, debug = run_with_debug(fused, tag, torch.from_numpy(npz["text_tokens"]))
    assert_matches(npz, tag, "reparam", features, debug)


def test_only_mct_changes_on_fusion() -> None:
    for tag in GOLDEN_TAGS:
        changed = golden_layout(tag) != golden_layout(tag, reparam=True)
        assert changed == (tag == "S0"), tag


def test_l14_layout_matches_checkpoint_keys() -> None:
    assert "MC2-L-14" in TEXT_CONFIGS
    with torch.device("meta"):  # layout only: no memory, no init
        model = build_text_encoder("MC2-L-14")
    assert layout(model) == golden_layout("MC2-L-14")


def test_unknown_tag_is_rejected() -> None:
    with pytest.raises(KeyError, match="unknown MobileCLIP tag"):
        build_text_encoder("S9")


def _tiny(kind: str, causal: bool) -> torch.nn.Module:
    """A small random encoder of either layout (64 wide, 2 layers, vocab 100, length 77)."""
    torch.manual_seed(0)
    if kind == "v1":
        return TextTransformerV1("base", num_layers=2, causal=causal, width=64, num_heads=4, vocab_size=100).eval()
    if kind == "mct":
        return TextTransformerV1("mct", num_layers=1, causal=causal, width=64, num_heads=4, vocab_size=100).eval()
    return OpenClipTextTransformer(64, 4, 32, causal=causal, num_layers=2, vocab_size=100).eval()


def _ids(eot_at: tuple[int, ...], pad: int = 0) -> torch.Tensor:
    """Rows of ``[98, 5, 6, ..., 99 (end), pad, pad, ...]`` with the end token (largest id) at ``eot_at``."""
    ids = torch.full((len(eot_at), 77), pad, dtype=torch.long)
    for row, pos in enumerate(eot_at):
        ids[row, 0] = 98
        ids[row, 1:pos] = torch.arange(5, 4 + pos)
        ids[row, pos] = 99
    return ids


@pytest.mark.parametrize("kind", ["v1", "openclip"])
def test_causal_mask_hides_later_tokens_only_when_causal(kind: str) -> None:
    a, b = _ids((6, 9)), _ids((6, 9), pad=1)
    for causal in (True, False):
        model = _tiny(kind, causal)
        with torch.no_grad():
            same = torch.allclose(model(a), model(b), atol=1e-6)
        # Causal: the end token never sees the padding after it. Non-causal: padding changes the result.
        assert same == causal


@pytest.mark.parametrize("kind", ["v1", "mct", "openclip"])
def test_eot_index_overrides_argmax_pooling(kind: str) -> None:
    model = _tiny(kind, causal=False)
    ids = _ids((4, 10, 30))
    proj = model.projection_layer if kind != "openclip" else model.text_projection
    with torch.no_grad():
        tokens = model.forward_tokens(ids)
        default = model(ids)
        explicit = model(ids, eot_index=torch.tensor([4, 10, 30]))
        other = model(ids, eot_index=torch.tensor([0, 2, 76]))
    torch.testing.assert_close(default, explicit, rtol=0, atol=0)
    torch.testing.assert_close(default, tokens[torch.arange(3), torch.tensor([4, 10, 30])] @ proj)
    torch.testing.assert_close(other, tokens[torch.arange(3), torch.tensor([0, 2, 76])] @ proj)
    assert not torch.allclose(default, other)


@pytest.mark.parametrize("length", [76, 78])
def test_rejects_other_context_lengths(length: int) -> None:
    with pytest.raises(ValueError, match=r"\[N, 77\]"):
        _tiny("v1", causal=False)(torch.zeros(2, length, dtype=torch.long))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the brief asks for the TorchScript exporter
def test_s0_fused_text_encoder_exports_to_onnx(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    fused = reparameterize_model(build_filled("S0"))
    with np.load(golden_file("golden-S0.npz")) as npz:
        ids = torch.from_numpy(npz["text_tokens"])
        ref = npz["reparam/text_features"]
    eot = ids.argmax(dim=-1)
    path = tmp_path / "mct.onnx"
    with torch.no_grad():
        torch.onnx.export(
            fused,
            (ids, eot),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input_ids", "eot_index"],
            output_names=["text_features"],
            dynamic_axes={"input_ids": {0: "batch"}, "eot_index": {0: "batch"}, "text_features": {0: "batch"}},
        )
        expected = fused(ids, eot).numpy()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input_ids": ids.numpy(), "eot_index": eot.numpy()})
    assert np.abs(got - expected).max() < 1e-4
    assert np.abs(got - ref).max() <= tol(ref, 1e-4)
    # Dynamic batch: a single row gives the same features as in the batch of three.
    (one,) = session.run(None, {"input_ids": ids[1:2].numpy(), "eot_index": eot[1:2].numpy()})
    assert np.abs(one - expected[1:2]).max() < 1e-4
