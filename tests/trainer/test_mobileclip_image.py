"""MobileCLIP / MobileCLIP2 image encoders against the golden parity data (tests/data/golden, see its README.md).

For every tag with a golden npz the encoder is built, filled with the golden scheme and run on the golden
images once in the train-time form and once after ``reparameterize_model``. Checked: state-dict layout equals
the reference key lists (order, shapes, dtypes; train and fused), the fill reproduces every key's ``sum`` /
``first``, fused tensors reproduce the reference fused tensors, features and per-module debug summaries match.
Plus block-level fusion checks on random BN statistics and an ONNX export of the fused S0 encoder.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from tests.support.golden import golden_file
from trainer.models import (
    IMAGE_TAGS,
    build_image_encoder,
    image_key_prefix,
    image_resolution,
    reparameterize_model,
)
from trainer.models.attention2d import AttentionBlock
from trainer.models.blocks import TIMM_NAMES, V1_NAMES, MobileOneBlock, ReparamLargeKernelConv, RepCPE, RepMixerBlock
from trainer.models.golden_fill import build_filled, fill_rule

GOLDEN_TAGS = ["S0", "S1", "S2", "B", "MC2-S0", "MC2-S2", "MC2-B", "MC2-S3", "MC2-S4"]
BIG_TAGS = {"MC2-S3", "MC2-S4"}


def _image_entries(tag: str, suffix: str = "") -> list[dict]:
    prefix = image_key_prefix(tag)
    entries = json.loads(golden_file(f"keys-{tag}{suffix}.json").read_text())["entries"]
    return [dict(e, name=e["name"][len(prefix) :]) for e in entries if e["name"].startswith(prefix)]


def _layout(state: dict[str, torch.Tensor]) -> list[tuple[str, list[int], str]]:
    return [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()]


def _sum64(t: torch.Tensor) -> float:
    """Sum accumulated in float64 without a float64 copy of the tensor."""
    return float(t.sum(dtype=torch.float64)) if t.is_floating_point() else float(t.sum())


def _summary(out: torch.Tensor) -> dict[str, np.ndarray]:
    """Golden debug summaries of one module output (4-D maps: mean over H, W; token sequences: CLS and mean)."""
    out = out.detach()
    if out.dim() == 4:
        return {"mean_hw": out.mean((2, 3)).numpy()}
    return {"token0": out[:, 0].numpy(), "mean_tokens": out.mean(1).numpy()}


def _run(model: torch.nn.Module, prefix: str, images: torch.Tensor, golden_files: set[str], form: str):
    """Forward with hooks on every module that has a golden debug entry; returns (features, {key: summary})."""
    debug: dict[str, np.ndarray] = {}
    handles = []
    for name, module in model.named_modules():
        full = prefix + name
        if any(f.startswith(f"{form}/debug/{full}/") for f in golden_files):

            def hook(_m, _i, out, full=full):
                for kind, value in _summary(out).items():
                    debug[f"{form}/debug/{full}/{kind}"] = value

            handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        features = model(images).numpy()
    for h in handles:
        h.remove()
    return features, debug


# MC2-S4 (321M parameters) takes 13-33 s on a 2-core x86-64 CPU, depending on its load: marked slow.
CASE_PARAMS = [pytest.param(t, marks=pytest.mark.slow) if t == "MC2-S4" else t for t in GOLDEN_TAGS]


@pytest.fixture(scope="module", params=CASE_PARAMS)
def case(request: pytest.FixtureRequest) -> dict:
    """One tag, filled and run in both forms (module scope: tests are grouped per tag, one model alive)."""
    tag = request.param
    torch.set_num_threads(2 if tag in BIG_TAGS else 1)
    prefix = image_key_prefix(tag)
    golden = np.load(golden_file(f"golden-{tag}.npz"))
    files = set(golden.files)
    images = torch.from_numpy(golden["images"])
    assert images.shape[-1] == image_resolution(tag)
    model = build_filled(lambda: build_image_encoder(tag), prefix)
    big = tag in BIG_TAGS
    train_state = None if big else {k: v.clone() for k, v in model.state_dict().items()}
    train_feat, train_debug = _run(model, prefix, images, files, "train")
    train_layout = _layout(model.state_dict())
    train_sums = {k: (_sum64(v), v.reshape(-1)[0].item()) for k, v in model.state_dict().items()}
    fused = reparameterize_model(model, inplace=big)  # the big ones: no second copy of the weights
    if train_state is not None:  # the default (copying) form must leave its input untouched
        assert all(torch.equal(train_state[k], v) for k, v in model.state_dict().items())
    del model
    reparam_feat, reparam_debug = _run(fused, prefix, images, files, "reparam")
    fused_state = fused.state_dict()
    result = dict(
        tag=tag,
        prefix=prefix,
        golden=golden,
        train_layout=train_layout,
        train_sums=train_sums,
        train_feat=train_feat,
        reparam_feat=reparam_feat,
        debug={**train_debug, **reparam_debug},
        fused_layout=_layout(fused_state),
        fused_sums={k: (_sum64(v), _sum64(v.abs()), v.reshape(-1)[0].item()) for k, v in fused_state.items()},
        fused_state={k: v.numpy() for k, v in fused_state.items()},
    )
    yield result
    torch.set_num_threads(1)


def _ref_layout(tag: str, suffix: str = "") -> list[tuple[str, list[int], str]]:
    return [(e["name"], e["shape"], e["dtype"]) for e in _image_entries(tag, suffix)]


def test_train_layout_equals_reference(case: dict) -> None:
    assert case["train_layout"] == _ref_layout(case["tag"])


def test_reparam_layout_equals_reference(case: dict) -> None:
    assert case["fused_layout"] == _ref_layout(case["tag"], "-reparam")


def test_fill_reproduces_reference_sums(case: dict) -> None:
    for entry in _image_entries(case["tag"]):
        total, first = case["train_sums"][entry["name"]]
        rule = fill_rule(case["prefix"] + entry["name"], tuple(entry["shape"]), entry["dtype"] == "int64")
        assert rule == entry["fill_rule"], entry["name"]
        assert abs(total - entry["sum"]) <= 1e-6 * max(1.0, abs(entry["sum"])), entry["name"]
        assert first == pytest.approx(entry["first"], rel=1e-7, abs=1e-12), entry["name"]


def test_fused_tensors_match_reference_sums(case: dict) -> None:
    """Every fused-state tensor: float64 sum equal to the reference's up to float32 rounding of its elements."""
    worst = 0.0
    for entry in _image_entries(case["tag"], "-reparam"):
        total, abs_total, first = case["fused_sums"][entry["name"]]
        err = abs(total - entry["sum"])
        worst = max(worst, err / (1.0 + abs_total))
        assert err <= 1e-6 * (1.0 + abs_total), entry["name"]
        assert first == pytest.approx(entry["first"], rel=1e-5, abs=1e-6), entry["name"]
    print(f"{case['tag']}: worst fused-sum error / (1 + sum|x|) {worst:.1e}")


def test_fused_golden_tensors(case: dict) -> None:
    keys = [k for k in case["golden"].files if k.startswith("fused/" + case["prefix"])]
    assert keys or case["tag"] in ("B", "MC2-B")  # the ViTs have nothing to fuse
    worst = 0.0
    for key in keys:
        ref = case["golden"][key]
        diff = float(np.abs(case["fused_state"][key[len("fused/" + case["prefix"]) :]] - ref).max())
        worst = max(worst, diff)
        assert diff <= 1e-5 * max(1.0, float(np.abs(ref).max())), key
    print(f"{case['tag']}: max |fused - golden fused| {worst:.1e}")


@pytest.mark.parametrize("form", ["train", "reparam"])
def test_image_features(case: dict, form: str) -> None:
    ref = case["golden"][f"{form}/image_features"]
    ours = case[f"{form}_feat"]
    assert ours.shape == ref.shape
    diff = float(np.abs(ours - ref).max())
    print(f"{case['tag']}: {form} max |features - golden| {diff:.1e} (max |ref| {np.abs(ref).max():.2f})")
    assert diff <= 1e-4 * max(1.0, float(np.abs(ref).max()))
    # normalised features and cosine structure follow; check them too since the app uses them
    ours_n = ours / np.linalg.norm(ours, axis=1, keepdims=True)
    assert np.abs(ours_n - case["golden"][f"{form}/image_features_normalized"]).max() <= 1e-4


def test_debug_summaries(case: dict) -> None:
    """Every golden per-module summary of the image tower is produced by the same-named module and matches."""
    golden = case["golden"]
    keys = [k for k in golden.files if "/debug/" + case["prefix"] in k]
    assert keys
    for key in keys:
        ref = golden[key]
        assert key in case["debug"], key
        assert np.abs(case["debug"][key] - ref).max() <= 1e-3 * max(1.0, float(np.abs(ref).max())), key


def test_large_vit_l14_layout() -> None:
    """MobileCLIP2-L-14: key list and parameter count only (no golden features); built on the meta device."""
    with torch.device("meta"):
        model = build_image_encoder("MC2-L-14")
        out = model(torch.empty(2, 3, 224, 224))
    assert out.shape == (2, 768)
    assert _layout(model.state_dict()) == _ref_layout("MC2-L-14")
    assert _layout(reparameterize_model(model).state_dict()) == _ref_layout("MC2-L-14", "-reparam")
    assert sum(p.numel() for p in model.parameters()) == 303_966_976


def test_unknown_tag_raises() -> None:
    with pytest.raises(ValueError, match="unknown image encoder tag"):
        build_image_encoder("S9")
    assert set(GOLDEN_TAGS) < set(IMAGE_TAGS)


def _randomize_bn(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial BN statistics / affine and layer scales so that fusion errors cannot hide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict(keep_vars=True).items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif "layer_scale" in name or name.endswith("gamma"):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.1)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.3)


@pytest.mark.parametrize(
    ("make", "shape"),
    [
        (lambda: MobileOneBlock(8, 8, 3, 1, 8, names=TIMM_NAMES), (2, 8, 9, 9)),  # dw, all three branches
        (lambda: MobileOneBlock(8, 16, 3, 2, 1, se_ratio=0.25), (2, 8, 10, 10)),  # stride 2, SE, no identity
        (lambda: ReparamLargeKernelConv(8, 16, 7, 2, 8, use_se=True), (2, 8, 12, 12)),
        (lambda: RepCPE(8, 7, V1_NAMES), (2, 8, 9, 9)),
        (lambda: RepMixerBlock(8, (1, 11), 4.0, ffn_kernel_size=(1, 11), use_scale=False), (2, 8, 1, 77)),  # MCt
        (lambda: RepMixerBlock(8, 3, 3.0, names=TIMM_NAMES), (2, 8, 9, 9)),
    ],
)
def test_block_fusion_is_exact(make, shape: tuple[int, ...]) -> None:
    torch.set_num_threads(1)
    block = make().eval()
    _randomize_bn(block, 0)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = block(x)
        fused = reparameterize_model(block)
        out = fused(x)
        fused.apply(lambda m: m.reparameterize() if hasattr(m, "reparameterize") else None)  # idempotent
        again = fused(x)
    branch_words = ("bn", "rbr_", "conv_kxk", "conv_scale", "identity", "lkb_origin", "large_conv", "small_conv")
    unfused = [k for k in fused.state_dict() if k.split(".")[0] not in ("convffn", "mlp")]
    assert not any(word in k for k in unfused for word in branch_words), unfused
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5)
    assert torch.equal(out, again)


def _export(module: torch.nn.Module, example: torch.Tensor):
    """TorchScript-based ONNX export (opset 17, dynamic batch) into an onnxruntime session."""
    ort = pytest.importorskip("onnxruntime")
    buf = io.BytesIO()
    torch.onnx.export(
        module,
        (example,),
        buf,
        dynamo=False,
        opset_version=17,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter is deprecated, still needed
@pytest.mark.parametrize("norm", ["bn", "ln"])
def test_onnx_export_of_attention_block(norm: str) -> None:
    """The MCi3/4 channel-LayerNorm attention block (and the BN one) export with a dynamic batch."""
    torch.set_num_threads(1)
    block = AttentionBlock(64, 4.0, norm, names=TIMM_NAMES).eval()
    _randomize_bn(block, 2)
    session = _export(block, torch.randn(2, 64, 4, 4))
    x = torch.randn(3, 64, 4, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = block(x).numpy()
    assert np.abs(session.run(None, {"x": x.numpy()})[0] - ref).max() < 1e-4


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_export_of_fused_s0_matches_torch() -> None:
    """Fused S0 exports with the TorchScript exporter (opset 17, dynamic batch); onnxruntime agrees with torch."""
    torch.set_num_threads(1)
    fused = reparameterize_model(build_filled(lambda: build_image_encoder("S0"), image_key_prefix("S0")))
    session = _export(fused, torch.rand(2, 3, 256, 256))
    for batch in (1, 3):
        x = torch.rand(batch, 3, 256, 256, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            ref = fused(x).numpy()
        out = session.run(None, {"x": x.numpy()})[0]
        assert out.shape == (batch, 512)
        diff = float(np.abs(out - ref).max())
        print(f"S0 fused: onnxruntime vs torch, batch {batch}: {diff:.1e}")
        assert diff < 1e-4
