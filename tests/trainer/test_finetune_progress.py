"""`finetune --progress-json`: the machine-readable progress the app reads (one JSON object per line on stdout), the
report as its last line, errors as an event, and a terminate that unwinds without installing anything."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.model_store import ModelStore
from tests.photo_corpus import materialize
from tests.support.paths import REPO
from trainer.cli import main
from trainer.finetune.cli import JsonProgress
from trainer.finetune.pipeline import PHASES

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def album(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("album") / "family"
    materialize(root / "nonna", ["handwritten_math", "book_page"], max_side=192)
    materialize(root / "kepler", ["hubble_deep_field", "moon_surface"], max_side=192)
    return root


def events(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line is JSON, or this fails


def test_progress_json_reports_each_phase_and_step_then_the_report(
    album: Path, library: Path, capsys: pytest.CaptureFixture
) -> None:
    small = ["--steps", "3", "--batch-size", "2", "--augmentations", "2", "--val-fraction", "0.5"]
    args = ["finetune", str(album), "--library", str(library), "--name", "fam", "--progress-json", *small]
    assert main(args) == 0
    out = capsys.readouterr()
    stream = events(out.out)
    progress = [e for e in stream if e["event"] == "progress"]
    phases = list(dict.fromkeys(e["phase"] for e in progress))
    assert phases == list(PHASES)
    train = [e for e in progress if e["phase"] == "train"]
    assert [e["step"] for e in train] == [0, 1, 2, 3] and {e["total"] for e in train} == {3}
    assert train[0]["eta_s"] is None and train[-1]["eta_s"] == 0 and train[1]["eta_s"] > 0
    reinforce = [e for e in progress if e["phase"] == "reinforce"]
    assert reinforce[0]["step"] == 0 and reinforce[-1]["step"] == reinforce[-1]["total"] == 2  # 2 training photos

    report = stream[-1]
    assert report["event"] == "report" and [e["event"] for e in stream].count("report") == 1
    assert report["model_id"] == "fam" and report["base_id"] == "starter" and report["steps"] == 3
    assert report["labels"] == ["kepler", "nonna"] and report["forgetting"] is None
    card = ModelStore(library).load("fam").card
    assert report["after"] == card.metrics["album_validation"]["after"]
    assert "Installed 'fam'" in out.err and "\r" not in out.err  # the summary on stderr, no tqdm bar


def test_progress_json_reports_an_unusable_album_as_an_event(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    materialize(tmp_path / "album" / "only", ["book_page", "coffee"], max_side=128)
    args = ["finetune", str(tmp_path / "album"), "--library", str(tmp_path / "lib"), "--progress-json"]
    assert main(args) == 1
    stream = events(capsys.readouterr().out)
    assert stream[-1]["event"] == "error" and "at least 2 labels" in stream[-1]["message"]


def test_eta_is_the_phase_rate_times_the_steps_left(capsys: pytest.CaptureFixture) -> None:
    now = [100.0]
    progress = JsonProgress(clock=lambda: now[0])
    progress("train", 0, 5)
    now[0] = 102.0
    progress("train", 1, 5)
    now[0] = 103.0
    progress("export", 0, 0)
    first, second, third = events(capsys.readouterr().out)
    assert first["eta_s"] is None and second["eta_s"] == pytest.approx(8.0) and second["elapsed_s"] == 2.0
    assert third["phase"] == "export" and third["elapsed_s"] == 0.0 and third["eta_s"] is None


def test_a_terminate_mid_training_installs_nothing(album: Path, library: Path) -> None:
    command = [sys.executable, "-m", "trainer", "finetune", str(album), "--library", str(library), "--name", "gone",
               "--progress-json", "--steps", "500", "--batch-size", "2", "--augmentations", "2"]  # fmt: skip
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        for line in child.stdout:
            event = json.loads(line)
            if event["event"] == "progress" and event["phase"] == "train" and event["step"] >= 1:
                child.send_signal(signal.SIGTERM)
                break
        rest = child.stdout.read()
        child.wait(timeout=120)
    assert child.returncode == 130, child.stderr.read() if child.stderr else ""
    assert '"report"' not in rest
    assert sorted(p.name for p in (library / "models").iterdir()) == ["starter"]
