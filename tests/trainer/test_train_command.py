"""`python -m trainer train CONFIG`: a MobileCLIP-S0 student on a reinforced dataset made by `trainer reinforce`."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from core.model_card import sha256_file
from core.model_store import ModelStore
from tests.photo_corpus import materialize
from tests.support.paths import REPO
from trainer.finetune.mobileclip_source import find_source_checkpoint
from trainer.models.clip import create_model
from trainer.train.metrics import read_metrics


def _run(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def test_train_command_on_a_reinforced_dataset(tmp_path: Path, library: Path) -> None:
    album = tmp_path / "album"
    materialize(album / "nonna", ["book_page", "coffee", "ancient_coins", "handwritten_math"], max_side=256)
    materialize(
        album / "kepler", ["moon_surface", "hubble_deep_field", "retina_fundus", "aerial_farmland"], max_side=256
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="2")
    data = tmp_path / "data"
    made = _run("reinforce", str(album), "--out", str(data), "--library", str(library), "--teachers", "starter",
                "--augmentations", "2", "--no-progress", env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]
    config = tmp_path / "run.json"
    config.write_text(json.dumps({
        "model": "mobileclip-s0", "data": str(data), "out_dir": str(tmp_path / "out"), "steps": 2, "batch_size": 4,
        "warmup": 1, "w_clip": 0.25, "w_kd": 0.75, "log_every": 1, "checkpoint_every": 0, "progress": False,
        "export": "s0-run", "library": str(library),
    }))  # fmt: skip
    refused = _run("train", str(config), "--export", "Not An Id", env=env)  # refused before any training
    assert refused.returncode == 2 and "lower-case" in refused.stderr and not (tmp_path / "out").exists()
    done = _run("train", str(config), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Installed 's0-run'" in done.stdout
    records = [r for r in read_metrics(tmp_path / "out" / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["kd"] > 0 and r["clip"] > 0 for r in records)
    assert (tmp_path / "out" / "curves.png").stat().st_size > 1000
    # The weights are the checkpoint layout of the model: they load strictly into a fresh MobileCLIP-S0.
    weights = load_file(str(tmp_path / "out" / "model.safetensors"))
    model = create_model("mobileclip-s0")
    model.load_state_dict(weights, strict=True)
    assert abs(float(weights["logit_scale"]) - math.log(1 / 0.07)) > 1e-4  # it trained (initial value: log 1/0.07)

    # The run ended in a package core loads, computing what the trained weights compute; the weights are kept in
    # the library (what a later album fine-tune rebuilds the model from) and the card records the run.
    package = ModelStore(library).load("s0-run")
    card = package.card
    assert card.provenance.built_by == "python -m trainer train" and card.provenance.steps == 2
    assert card.provenance.teachers == ("starter",)
    assert card.metrics["final_training"]["loss"] == pytest.approx(records[-1]["loss"])
    kept = library / card.provenance.checkpoint.kept
    assert kept.name == "s0-run.safetensors"
    assert sha256_file(kept) == sha256_file(tmp_path / "out" / "model.safetensors")
    assert find_source_checkpoint(package, library) == kept  # what `finetune --base s0-run` starts from
    photos = [Image.open(path).convert("RGB") for path in sorted((album / "nonna").iterdir())[:2]]
    pixels = torch.from_numpy(np.stack([package.preprocess(photo)[0] for photo in photos]))
    with torch.no_grad():
        expected = model.encode_image(pixels, normalize=True).numpy()
    assert np.abs(package.embed_images(photos) - expected).max() < 1e-4

    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nstepz = 3\n")
    refused = _run("train", str(bad), env=env)
    assert refused.returncode == 2 and "stepz" in refused.stderr


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(1)
