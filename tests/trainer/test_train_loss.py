"""The reinforced loss (docs/mobileclip-spec.md §9.3) against examples worked out by hand, and its structural
properties."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.train.loss import (
    LossWeights,
    Teacher,
    caption_loss,
    clip_loss,
    distill_loss,
    match_targets,
    reinforced_loss,
    teacher_targets,
)

torch.set_num_threads(1)

# Student: u1 = (1, 0), u2 = (0, 1); v1 = (1, 0), v2 = (0.6, 0.8); scale s = 2.
# Logits s * u v^T = [[2, 1.2], [0, 1.6]].
U = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
V = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
S = torch.tensor(2.0)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_clip_loss_matches_hand_computation() -> None:
    # Each row is a two-way softmax, so CE = log(1 + exp(other - own)).
    i2t = (softplus(1.2 - 2.0) + softplus(0.0 - 1.6)) / 2  # rows of [[2, 1.2], [0, 1.6]]
    t2i = (softplus(0.0 - 2.0) + softplus(1.2 - 1.6)) / 2  # rows of the transpose [[2, 0], [1.2, 1.6]]
    expected = (i2t + t2i) / 2
    assert float(clip_loss(U, V, S)) == pytest.approx(expected, rel=1e-6)


def test_teachers_are_averaged_after_the_softmax() -> None:
    # Teacher A (columns 0-1): identity features, scale ln 3 -> rows [3/4, 1/4] and [1/4, 3/4].
    # Teacher B (columns 2-3): same features, scale 0 -> uniform rows [1/2, 1/2].
    emb = torch.cat([torch.eye(2), torch.eye(2)], dim=1)
    teachers = [Teacher("a", slice(0, 2), math.log(3.0)), Teacher("b", slice(2, 4), 0.0)]
    p_i2t, p_t2i = teacher_targets(emb, emb, teachers)
    expected = torch.tensor([[5 / 8, 3 / 8], [3 / 8, 5 / 8]])
    torch.testing.assert_close(p_i2t, expected)
    torch.testing.assert_close(p_t2i, expected)
    # Averaging logits before one softmax would give sqrt(3) / (sqrt(3) + 1) = 0.634 instead of 0.625.
    assert float(p_i2t[0, 0]) != pytest.approx(math.sqrt(3) / (math.sqrt(3) + 1), abs=1e-3)


def test_distill_loss_matches_hand_computation() -> None:
    p = torch.tensor([[5 / 8, 3 / 8], [3 / 8, 5 / 8]])
    # Student row log-probabilities: log sigmoid(own - other).
    logsig = lambda x: -softplus(-x)  # noqa: E731
    i2t = (-(5 / 8 * logsig(0.8) + 3 / 8 * logsig(-0.8)) - (3 / 8 * logsig(-1.6) + 5 / 8 * logsig(1.6))) / 2
    t2i = (-(5 / 8 * logsig(2.0) + 3 / 8 * logsig(-2.0)) - (3 / 8 * logsig(-0.4) + 5 / 8 * logsig(0.4))) / 2
    assert float(distill_loss(U, V, S, p, p)) == pytest.approx((i2t + t2i) / 2, rel=1e-6)


def test_weighted_sum_over_real_and_synthetic_captions() -> None:
    torch.manual_seed(0)
    u, v, w = (torch.nn.functional.normalize(torch.randn(4, 3), dim=-1) for _ in range(3))
    emb_i, emb_t, emb_s = torch.randn(4, 5), torch.randn(4, 5), torch.randn(4, 5)
    teachers = [Teacher("a", slice(0, 2), 100.0), Teacher("b", slice(2, 5), 70.0)]
    weights = LossWeights(0.25, 0.75)
    out = reinforced_loss(
        u, v, w, torch.tensor(50.0), real=weights, syn=weights,
        image_emb=emb_i, text_emb=emb_t, syn_text_emb=emb_s, teachers=teachers,
    )  # fmt: skip
    real = 0.25 * clip_loss(u, v, 50.0) + 0.75 * distill_loss(u, v, 50.0, *teacher_targets(emb_i, emb_t, teachers))
    syn = 0.25 * clip_loss(u, w, 50.0) + 0.75 * distill_loss(u, w, 50.0, *teacher_targets(emb_i, emb_s, teachers))
    torch.testing.assert_close(out["loss"], real + syn)
    assert set(out) == {"loss", "clip", "kd", "clip_syn", "kd_syn"}


def test_distillation_equals_kl_plus_teacher_entropy() -> None:
    torch.manual_seed(1)
    u, v = (torch.nn.functional.normalize(torch.randn(5, 4), dim=-1) for _ in range(2))
    p = torch.softmax(torch.randn(5, 5), dim=1)
    log_q = torch.log_softmax(10.0 * u @ v.T, dim=1)
    kl = (p * (p.log() - log_q)).sum(1).mean()
    entropy = -(p * p.log()).sum(1).mean()
    ce_i2t = 2 * distill_loss(u, v, 10.0, p, torch.zeros(5, 5))  # the t2i half contributes nothing with zero targets
    torch.testing.assert_close(ce_i2t, kl + entropy)


def test_duplicate_captions_share_the_target() -> None:
    keys = torch.tensor([3, 7, 3])
    targets = match_targets(keys)
    torch.testing.assert_close(targets, torch.tensor([[0.5, 0, 0.5], [0, 1.0, 0], [0.5, 0, 0.5]]))
    # With distinct captions the targets are the identity and the loss is CLIP's arange loss.
    torch.manual_seed(2)
    u, v = (torch.nn.functional.normalize(torch.randn(4, 3), dim=-1) for _ in range(2))
    torch.testing.assert_close(clip_loss(u, v, 7.0, match_targets(torch.arange(4))), clip_loss(u, v, 7.0))


def test_plain_clip_needs_no_teacher_and_distillation_does() -> None:
    out = caption_loss(U, V, S, LossWeights(1.0, 0.0))
    assert set(out) == {"clip", "total"}
    with pytest.raises(ValueError, match="teacher"):
        caption_loss(U, V, S, LossWeights(0.0, 1.0))
    with pytest.raises(ValueError):
        LossWeights.from_lambda(1.5)
    assert LossWeights.from_lambda(0.75) == LossWeights(0.25, 0.75)
