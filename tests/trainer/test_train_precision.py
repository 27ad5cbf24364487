"""bf16 autocast in the training loop, exercised on the CPU (the GPU path uses the same code with device cuda)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.trainer.train_support import TEACHERS, config, student, tiny_data
from trainer.train.distributed import DistInfo
from trainer.train.loop import _Forward, backward_step, train, use_bf16

torch.set_num_threads(1)


def test_auto_precision_is_bf16_only_on_a_gpu_that_supports_it(tmp_path: Path) -> None:
    cpu = torch.device("cpu")
    assert not use_bf16(config(tmp_path, precision="auto"), cpu)  # CPU bf16 is often slower than fp32
    assert not use_bf16(config(tmp_path, precision="fp32"), cpu)
    assert use_bf16(config(tmp_path, precision="bf16"), cpu)  # asked for explicitly


def test_bf16_autocast_runs_the_towers_in_bf16_and_keeps_the_loss_close(tmp_path: Path) -> None:
    cfg = config(tmp_path, steps=1, batch_size=8)
    batch = next(iter(tiny_data().batches(0, 0, 8, DistInfo(), cfg.seed)))

    def loss_and_grad(autocast) -> tuple[float, torch.Tensor]:
        model = student(dropout=0.0)
        forward = _Forward(model)
        parts = backward_step(forward, [batch], cfg, TEACHERS, DistInfo(), autocast)
        return float(parts["loss"]), model.image_proj.weight.grad.clone()

    seen: list[torch.dtype] = []
    model = student(dropout=0.0)
    model.image_proj.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.encode_image(batch["image"])
    assert seen == [torch.bfloat16]

    fp32_loss, fp32_grad = loss_and_grad(None)
    bf16_loss, bf16_grad = loss_and_grad(torch.autocast("cpu", dtype=torch.bfloat16))
    assert math.isfinite(bf16_loss) and bf16_loss != fp32_loss  # autocast really changed the arithmetic
    assert bf16_loss == pytest.approx(fp32_loss, rel=2e-2)  # the loss itself is computed in float32
    assert bf16_grad.dtype == torch.float32  # parameters and their gradients stay float32
    cosine = torch.nn.functional.cosine_similarity(bf16_grad.flatten(), fp32_grad.flatten(), dim=0)
    assert cosine > 0.99


def test_training_in_bf16_learns_like_fp32(tmp_path: Path) -> None:
    runs = {
        precision: train(student(), tiny_data(), config(tmp_path / precision, steps=40, precision=precision),
                         teachers=TEACHERS).losses()
        for precision in ("fp32", "bf16")
    }  # fmt: skip
    bf16, fp32 = runs["bf16"], runs["fp32"]
    assert all(math.isfinite(x) for x in bf16)
    assert bf16[0] != fp32[0] and bf16[0] == pytest.approx(fp32[0], rel=2e-2)  # the loop applied autocast
    assert sum(bf16[-5:]) / 5 < 0.8 * sum(bf16[:5]) / 5
