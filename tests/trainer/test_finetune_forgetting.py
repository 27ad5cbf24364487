"""The forgetting check of ``finetune``: generic caption-to-photo recall@5 on real photos outside the album, and
``--activate`` refused for a model that forgets more than the limit unless ``--force``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.encoders import ModelPackage
from core.model_card_types import EarlyStopRecord
from core.model_store import ModelStore
from tests.photo_corpus import all_photos, available_photos, materialize
from tests.trainer.test_finetune import ALBUM
from trainer.cli import main
from trainer.finetune.album import AlbumError
from trainer.finetune.forgetting import (
    GENERIC_KEY,
    ForgettingCheck,
    ForgettingStop,
    generic_recall,
    keep_within_limit,
    read_generic_bank,
)
from trainer.train.loop import TrainResult

torch.set_num_threads(1)

CAPTIONS = {p.name: p.caption for p in all_photos()}


def write_bank(dest: Path, names: list[str]) -> Path:
    for name, path in materialize(dest, names, max_side=384).items():
        path.with_suffix(".txt").write_text(CAPTIONS[name] + "\n", encoding="utf-8")
    return dest


# Three photos a label (one held out) leave enough of the 17 PyPI photos outside the album for a bank of 6 or more.
SMALL_ALBUM = {label: names[:3] for label, names in ALBUM.items()}


@pytest.fixture(scope="module")
def album(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("album") / "family"
    for label, names in SMALL_ALBUM.items():
        materialize(root / label, names, max_side=384)
    return root


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus photos that are not in the album, each with its caption."""
    in_album = {name for names in SMALL_ALBUM.values() for name in names}
    outside = [p.name for p in available_photos() if p.name not in in_album]
    assert len(outside) >= 6, "the PyPI photo corpus holds too few photos outside the test album"
    return write_bank(tmp_path_factory.mktemp("bank"), outside)


def test_generic_recall_finds_each_captions_photo(tmp_path: Path, starter_package_dir: Path) -> None:
    names = [p.name for p in available_photos()]
    loaded = read_generic_bank(write_bank(tmp_path, names))
    assert loaded.names == sorted(f"{n}.jpg" for n in names) and len(loaded.captions) == len(names)
    base = ModelPackage(starter_package_dir)
    images = base.embed_images(loaded.images)
    queries = lambda q: base.embed_texts(q, as_query=True)  # noqa: E731
    right = generic_recall(images, queries, loaded.captions)
    shifted = generic_recall(images, queries, loaded.captions[1:] + loaded.captions[:1])  # every caption wrong
    assert right >= 0.7 and shifted <= 0.5, (right, shifted)  # random: 5 / len(names)


def test_a_bank_without_captions_is_refused_clearly(tmp_path: Path) -> None:
    materialize(tmp_path / "bank", [p.name for p in available_photos()][:8], max_side=128)
    with pytest.raises(AlbumError, match=r"photo.txt\); found 0"):
        read_generic_bank(tmp_path / "bank")
    with pytest.raises(AlbumError, match="is not a folder"):
        read_generic_bank(tmp_path / "missing")


def test_the_limit_is_one_point_of_recall_inclusive() -> None:
    assert not ForgettingCheck(photos=10, before=0.75, after=0.74).forgets  # exactly the limit: accepted
    assert ForgettingCheck(photos=10, before=0.75, after=0.73).forgets
    assert not ForgettingCheck(photos=10, before=0.70, after=0.80).forgets
    assert ForgettingCheck(photos=10, before=0.70, after=0.70, limit=-0.05).forgets  # must improve by 5 points


def test_the_early_stop_needs_two_checks_over_the_limit_in_a_row_and_keeps_the_last_weights_within_it() -> None:
    """One photo flipping out of a small bank's top 5 and back is noise: training goes on. Two checks over the limit
    in a row stop it, and the weights of the last check within the limit come back; so do they after a dip at the
    very end."""
    student = torch.nn.Linear(2, 2)
    scores = iter([0.80, 0.80, 0.78, 0.80, 0.70, 0.70])  # the untrained student's, then one per check

    def set_weight(value: float) -> None:
        with torch.no_grad():
            student.weight.fill_(value)

    stop = ForgettingStop(student, lambda _s: {GENERIC_KEY: next(scores)}, limit=0.01)
    decisions = []
    for weight in [1.0, 2.0, 3.0, 4.0, 5.0]:
        set_weight(weight)  # what training did up to this check
        decisions.append(stop({GENERIC_KEY: next(scores)}))
        if decisions[-1]:
            break
    assert decisions == [False, False, False, False, True] and stop.stopped
    records = [{"step": step, GENERIC_KEY: 0.0} for step in (10, 20, 30, 40, 50)]
    kept = keep_within_limit(stop, TrainResult(step=50, records=records), log=lambda _m: None)
    assert kept == 30 and float(student.weight[0, 0]) == 3.0  # the third check was the last within the limit

    end_dip = ForgettingStop(student, lambda _s: {GENERIC_KEY: 0.8}, limit=0.01)
    set_weight(6.0)
    assert not end_dip({GENERIC_KEY: 0.8})
    set_weight(7.0)
    assert not end_dip({GENERIC_KEY: 0.7})  # over once, on the last check: training ends there, not stopped
    kept = keep_within_limit(end_dip, TrainResult(step=20, records=records[:2]), log=lambda _m: None)
    assert kept == 10 and float(student.weight[0, 0]) == 6.0 and not end_dip.stopped


def test_activate_is_refused_for_a_model_over_the_limit_unless_forced(
    album: Path, bank: Path, library: Path, capsys: pytest.CaptureFixture
) -> None:
    # A limit no model meets (it must gain a whole point of recall) takes the refusal path with a real run.
    args = ["finetune", str(album), "--library", str(library), "--steps", "3", "--val-fraction", "0.34",
            "--generic-bank", str(bank), "--max-forgetting", "-1", "--activate", "--no-progress"]  # fmt: skip
    assert main([*args, "--name", "refused"]) == 3
    out = capsys.readouterr()
    assert "not activated" in out.err and "forgetting check, generic R@5" in out.out
    store = ModelStore(library)
    assert store.active_id() == "starter" and "refused" in {m.id for m in store.list()}  # installed, not active
    recorded = store.load("refused").card.metrics["generic_retrieval"]
    assert recorded["photos"] == len(list(bank.glob("*.txt"))) and recorded["limit"] == -1.0
    assert recorded["before"] >= 0.5
    # The check is also the stop criterion: the evaluations of steps 1 and 2 are over this limit, two in a row, so
    # training stopped at step 2 and the weights went back to the last ones within it, the base's: nothing was
    # forgotten.
    provenance = store.load("refused").card.provenance
    assert provenance.early_stop == EarlyStopRecord(stopped=True, kept_step=0) and provenance.steps == 2
    assert recorded["after"] == pytest.approx(recorded["before"])

    assert main([*args, "--name", "forced", "--force"]) == 0
    assert ModelStore(library).active_id() == "forced"
    card = json.loads((ModelStore(library).find("forced").dir / "model_card.json").read_text())
    assert card["metrics"]["generic_retrieval"]["before"] == recorded["before"]  # the same bank, the same base
