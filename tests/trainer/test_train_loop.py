"""The training loop on a tiny student: a step lowers the loss, resume is exact, EMA, metrics and config files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from tests.trainer.train_support import TEACHERS, config, student, tiny_data
from trainer.train.config import TrainConfig, load_config
from trainer.train.distributed import DistInfo
from trainer.train.loop import _Forward, _loss, train
from trainer.train.metrics import read_metrics
from trainer.train.optim import make_optimizer, param_groups, warmup_cosine

torch.set_num_threads(1)


def test_one_optimisation_step_lowers_the_loss(tmp_path: Path) -> None:
    model, data = student(dropout=0.0), tiny_data()
    cfg = config(tmp_path, steps=1, warmup=0, lr=1e-2)
    batch = next(iter(data.batches(0, 0, 8, __import__("trainer.train.distributed").train.distributed.DistInfo(), 3)))

    def batch_loss() -> float:

        with torch.no_grad():
            return float(_loss(_Forward(model), batch, cfg, TEACHERS, DistInfo())["loss"])

    before = batch_loss()
    result = train(model, data, cfg, teachers=TEACHERS)
    assert result.losses()[0] == pytest.approx(before, rel=1e-5)  # the loop saw exactly this batch
    assert batch_loss() < before


def test_resume_reproduces_the_uninterrupted_run(tmp_path: Path) -> None:
    cfg_args = dict(steps=9, accum=2, ema_decay=0.9, batch_size=8)
    full = train(student(), tiny_data(), config(tmp_path / "full", **cfg_args), teachers=TEACHERS)
    first = train(student(), tiny_data(), config(tmp_path / "cut", **cfg_args), teachers=TEACHERS, stop_after=4)
    assert first.step == 4 and first.checkpoint is not None and first.checkpoint.is_file()
    # A new process would rebuild the student from its base (here: the same seed) and find last.pt.
    rest = train(student(), tiny_data(), config(tmp_path / "cut", **cfg_args), teachers=TEACHERS)
    assert full.losses()[:4] == first.losses()
    assert full.losses()[4:] == rest.losses()  # exact: same data position, RNG (dropout), optimiser and schedule
    steps = [r["step"] for r in read_metrics(tmp_path / "cut" / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 10))


def test_training_learns_and_writes_metrics_and_curves(tmp_path: Path) -> None:
    calls = []

    def evaluate(model: nn.Module) -> dict[str, float]:
        calls.append(model.training)
        return {"val_accuracy": 0.5}

    result = train(
        student(), tiny_data(), config(tmp_path, steps=40, eval_every=20), teachers=TEACHERS, evaluate=evaluate
    )
    losses = result.losses()
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    assert calls == [False, False]  # evaluated in eval mode at steps 20 and 40
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert {"loss", "clip", "kd", "clip_syn", "kd_syn", "acc", "lr"} <= set(records[0])
    assert [r["step"] for r in records if "val_accuracy" in r] == [20, 40]
    with Image.open(result.plot) as png:
        assert png.size == (900, 620) and len(png.getcolors(1 << 16) or []) > 3


def test_stop_when_ends_the_run_at_that_evaluation(tmp_path: Path) -> None:
    seen: list[float] = []

    def evaluate(model: nn.Module) -> dict[str, float]:
        return {"score": float(len(seen))}

    def stop_when(scores: dict[str, float]) -> bool:
        seen.append(scores["score"])
        return scores["score"] >= 1.0  # the second evaluation

    cfg = config(tmp_path, steps=40, eval_every=5)
    result = train(student(), tiny_data(), cfg, teachers=TEACHERS, evaluate=evaluate, stop_when=stop_when)
    assert result.step == 10 and seen == [0.0, 1.0] and len(result.losses()) == 10
    with pytest.raises(ValueError, match="one process"):
        train(student(), tiny_data(), cfg, teachers=TEACHERS, info=DistInfo(world_size=2), stop_when=stop_when)


def test_a_regulariser_joins_every_step_and_pulls_the_student_its_way(tmp_path: Path) -> None:
    """The extra term's gradient adds to the loss's: a strong pull of every trainable weight towards zero shrinks
    them against the same run without it, and its value is in each step's loss and record."""

    def shrink(model: nn.Module) -> torch.Tensor:
        return 10.0 * sum((p**2).sum() for p in model.parameters() if p.requires_grad)

    def weight_norm(model: nn.Module) -> float:
        return float(sum((p.detach() ** 2).sum() for p in model.parameters() if p.requires_grad))

    free, pulled = student(dropout=0.0), student(dropout=0.0)
    plain = train(free, tiny_data(), config(tmp_path / "plain", steps=10, lr=3e-2), teachers=TEACHERS)
    regular = train(pulled, tiny_data(), config(tmp_path / "pulled", steps=10, lr=3e-2), teachers=TEACHERS,
                    regularise=shrink)  # fmt: skip
    assert weight_norm(pulled) < 0.9 * weight_norm(free)
    first = regular.records[0]
    assert first["regulariser"] > 0  # the same first batch and weights: the step's loss is the plain one plus the term
    assert first["loss"] == pytest.approx(plain.records[0]["loss"] + first["regulariser"], rel=1e-5)
    assert all("regulariser" not in r for r in plain.records)
    with pytest.raises(ValueError, match="one process"):
        train(student(), tiny_data(), config(tmp_path / "ddp", steps=1), teachers=TEACHERS,
              info=DistInfo(world_size=2), regularise=shrink)  # fmt: skip


def test_plain_clip_needs_no_teachers_and_distillation_does(tmp_path: Path) -> None:
    result = train(student(), tiny_data(), config(tmp_path / "plain", steps=2, w_clip=1.0, w_kd=0.0))
    assert all("kd" not in r for r in result.records)
    with pytest.raises(ValueError, match="teacher"):
        train(student(), tiny_data(), config(tmp_path / "kd", steps=2))


def test_no_weight_decay_on_norms_biases_and_scales() -> None:
    model = student()
    model.layer_scale = nn.Parameter(torch.ones(16, 1, 1))
    decay, no_decay = param_groups(model, 0.2)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in decay["params"]} == {
        "image.0.weight",
        "image_proj.weight",
        "token.weight",
        "text_proj.weight",
    }
    assert "logit_scale" in {names[id(p)] for p in no_decay["params"]}
    assert "layer_scale" in {names[id(p)] for p in no_decay["params"]}
    assert make_optimizer(model).param_groups[1]["weight_decay"] == 0.0


def test_schedule_warms_up_then_decays_to_the_floor() -> None:
    lrs = [warmup_cosine(s, 4, 20) for s in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:], strict=False)) and lrs[-1] < 0.01
    assert warmup_cosine(20, 4, 20, min_ratio=0.1) == pytest.approx(0.1)


def test_config_files(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("[train]\nsteps = 5\nbatch_size = 4\nw_clip = 0.25\nw_kd = 0.75\n")
    cfg = load_config(tmp_path / "a.toml")
    assert (cfg.steps, cfg.batch_size, cfg.real_weights.clip, cfg.syn_weights.kd) == (5, 4, 0.25, 0.75)
    (tmp_path / "b.json").write_text(json.dumps({"steps": 5, "stepz": 3}))
    with pytest.raises(ValueError, match="stepz"):
        load_config(tmp_path / "b.json")
    with pytest.raises(ValueError, match="divisible"):
        TrainConfig(batch_size=6, accum=4)
