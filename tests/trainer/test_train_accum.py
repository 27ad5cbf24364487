"""Exact gradient accumulation: accum micro-batches give the gradient of one pass over their global batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import trainer.train.accumulate as accumulate
from tests.trainer.train_support import TEACHERS, TinyStudent, config, student, tiny_data
from trainer.train.accumulate import merge_batches
from trainer.train.data import Batch
from trainer.train.distributed import DistInfo
from trainer.train.loop import _Forward, _loss, backward_step, train
from trainer.train.loss import reinforced_loss

torch.set_num_threads(1)

ACCUM, MICRO = 4, 4


def micro_batches(seed: int = 3) -> list[Batch]:
    """The first ACCUM micro-batches of MICRO samples of the tiny data set (16 of its 24 samples)."""
    batches = tiny_data().batches(0, 0, MICRO, DistInfo(), seed)
    return [next(batches) for _ in range(ACCUM)]


def grads(model: nn.Module) -> dict[str, Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def accumulated(model: nn.Module, batches: list[Batch], seed: int = 11) -> tuple[dict[str, Tensor], dict]:
    """Gradients and loss parts of ``backward_step`` on ``batches`` from a fresh ``.grad`` and RNG ``seed``."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    parts = backward_step(_Forward(model), batches, config(Path("unused")), TEACHERS)
    return grads(model), parts


def assert_grads_close(got: dict[str, Tensor], want: dict[str, Tensor]) -> None:
    assert got.keys() == want.keys() and "logit_scale" in want
    scale = max(float(g.abs().max()) for g in want.values())
    for name, value in want.items():
        torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-6 * scale, msg=name)


def test_accumulated_gradient_equals_one_pass_over_the_global_batch() -> None:
    model, batches = student(dropout=0.0), micro_batches()
    cfg = config(Path("unused"))
    assert cfg.w_clip > 0 and cfg.w_kd > 0 and cfg.use_syn
    got, parts = accumulated(model, batches)

    # Reference: the existing single-pass path on the concatenated batch (16 samples, one contrastive set).
    model.zero_grad(set_to_none=True)
    want_parts = _loss(_Forward(model), merge_batches(batches), cfg, TEACHERS, DistInfo())
    want_parts["loss"].backward()
    want = grads(model)
    assert_grads_close(got, want)
    # The scale's gradient arrives once, not once per pass (which would make it ACCUM times the reference).
    assert float(want["logit_scale"].abs()) > 1e-3
    assert float(got["logit_scale"]) == pytest.approx(float(want["logit_scale"]), rel=1e-5, abs=1e-8)
    for key in ("loss", "clip", "kd", "clip_syn", "kd_syn", "acc", "scale"):
        assert float(parts[key]) == pytest.approx(float(want_parts[key].detach()), rel=1e-5, abs=1e-7), key


def test_per_micro_batch_losses_give_a_clearly_different_gradient() -> None:
    """What accumulation used to compute (mean of per-micro-batch contrastive losses) fails the test above."""
    model, batches = student(dropout=0.0), micro_batches()
    cfg = config(Path("unused"))
    full, _ = accumulated(model, batches)
    model.zero_grad(set_to_none=True)
    for batch in batches:
        (_loss(_Forward(model), batch, cfg, TEACHERS, DistInfo())["loss"] / ACCUM).backward()
    old = grads(model)
    flat_full = torch.cat([g.flatten() for g in full.values()])
    flat_old = torch.cat([old[n].flatten() for n in full])
    assert float((flat_full - flat_old).norm() / flat_full.norm()) > 0.05


def test_dropout_masks_repeat_in_the_gradient_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """With dropout on, the result is the full-batch gradient under the masks the micro-batches drew in order."""
    model, batches = student(dropout=0.3), micro_batches()
    cfg = config(Path("unused"))
    got, _ = accumulated(model, batches, seed=11)

    # Reference: each micro-batch encoded with gradient in order from the same RNG seed, one loss, one backward.
    model.zero_grad(set_to_none=True)
    torch.manual_seed(11)
    forward = _Forward(model)
    feats = [forward(b["image"], [b["text"], b["syn_text"]]) for b in batches]
    merged = merge_batches(batches)
    u = torch.cat([f[0] for f in feats])
    v, v_syn = (torch.cat([f[1][k] for f in feats]) for k in range(2))
    loss = reinforced_loss(
        u, v, v_syn, feats[0][2], real=cfg.real_weights, syn=cfg.syn_weights, image_emb=merged["image_emb"],
        text_emb=merged["text_emb"], syn_text_emb=merged["syn_text_emb"], teachers=TEACHERS,
        text_keys=merged["text_key"], syn_keys=merged["syn_key"],
    )["loss"]  # fmt: skip
    loss.backward()
    want = grads(model)
    assert_grads_close(got, want)

    # Without restoring the RNG state, the gradient passes draw new masks and the result is wrong.
    monkeypatch.setattr(accumulate, "set_device_rng_state", lambda state, device: None)
    wrong, _ = accumulated(model, batches, seed=11)
    assert not torch.allclose(wrong["image.0.weight"], want["image.0.weight"], rtol=1e-3, atol=1e-5)


class BatchNormStudent(TinyStudent):
    """The tiny student with a BatchNorm (running statistics as buffers) in its image tower."""

    def __init__(self) -> None:
        super().__init__(dropout=0.0)
        self.image[1] = nn.BatchNorm1d(16)


def test_buffers_update_once_per_micro_batch() -> None:
    torch.manual_seed(0)
    model, batches = BatchNormStudent(), micro_batches()
    accumulated(model, batches)
    torch.manual_seed(0)
    plain = BatchNormStudent()
    with torch.no_grad():
        for batch in batches:  # what the training forward of each micro-batch alone does to the statistics
            plain.encode_image(batch["image"])
    norm, want = model.image[1], plain.image[1]
    assert int(norm.num_batches_tracked) == ACCUM
    torch.testing.assert_close(norm.running_mean, want.running_mean)
    torch.testing.assert_close(norm.running_var, want.running_var)


def test_train_with_accumulation_follows_the_unaccumulated_run(tmp_path: Path) -> None:
    runs = {}
    for accum in (1, 2):
        cfg = config(tmp_path / f"accum{accum}", steps=5, batch_size=8, accum=accum, grad_clip=0.5)
        model = student(dropout=0.0)
        runs[accum] = (train(model, tiny_data(), cfg, teachers=TEACHERS).losses(), model.state_dict())
    (losses1, state1), (losses2, state2) = runs[1], runs[2]
    assert len(losses1) == 5 and losses1[-1] != pytest.approx(losses1[0], rel=1e-3)  # the weights moved
    assert losses2 == pytest.approx(losses1, rel=1e-5, abs=1e-6)
    for name, value in state1.items():
        torch.testing.assert_close(state2[name], value, rtol=1e-4, atol=1e-5, msg=name)
