"""Typed `architecture` and `provenance` of model cards (core.model_card_types).

tests/data/model_cards holds real cards that the builders wrote before these fields were typed, one per family and
builder (machine paths replaced by /example/...): each must load into its class and be written back byte for byte
(same keys, values and order). Cards of other builders keep their unknown keys; a malformed field is named.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from core.errors import ModelPackageError
from core.model_card import parse_card, read_card, write_card
from core.model_card_types import (
    Architecture,
    CoreImportProvenance,
    FinetuneProvenance,
    ImportProvenance,
    InitStep,
    LineageStep,
    MobileCLIPArchitecture,
    Provenance,
    StarterArchitecture,
    StarterProvenance,
    TrainProvenance,
    source_checkpoint,
)

CARDS = Path(__file__).resolve().parents[1] / "data" / "model_cards"
FAMILIES = {  # file -> (architecture class, provenance class)
    "starter.json": (StarterArchitecture, StarterProvenance),
    "starter-first-build.json": (StarterArchitecture, StarterProvenance),  # before text_precision and evidence
    "starter-finetune.json": (StarterArchitecture, FinetuneProvenance),
    "starter-finetune-of-finetune.json": (StarterArchitecture, FinetuneProvenance),
    "starter-text-only.json": (StarterArchitecture, FinetuneProvenance),
    "mobileclip-trainer-import.json": (MobileCLIPArchitecture, ImportProvenance),
    "mobileclip-core-import.json": (MobileCLIPArchitecture, CoreImportProvenance),
    "mobileclip-finetune.json": (MobileCLIPArchitecture, FinetuneProvenance),
    "mobileclip-text-only.json": (MobileCLIPArchitecture, FinetuneProvenance),
    "mobileclip-trained.json": (MobileCLIPArchitecture, TrainProvenance),
}


def _card(name: str) -> dict[str, Any]:
    return json.loads((CARDS / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_loads_typed_and_is_written_back_byte_for_byte(name: str, tmp_path: Path) -> None:
    text = (CARDS / name).read_text(encoding="utf-8")
    card = parse_card(json.loads(text), name)
    assert (type(card.architecture), type(card.provenance)) == FAMILIES[name]
    assert card.architecture.extra == {} and card.provenance.extra == {}  # every key of our builders is typed
    out = json.loads(json.dumps(card.to_json()))
    original = json.loads(text)
    for field in ("architecture", "provenance"):
        assert json.dumps(out[field], indent=2) == json.dumps(original[field], indent=2), field
    (tmp_path / "pkg").mkdir()
    write_card(tmp_path / "pkg", card)
    assert read_card(tmp_path / "pkg") == card  # load -> save -> load
    if name != "starter-first-build.json":  # (core writes that old card's absent top-level options as null)
        assert (tmp_path / "pkg" / "model_card.json").read_text(encoding="utf-8") == text  # the whole card, bytes


def test_typed_fields_read_what_the_json_says() -> None:
    tuned = parse_card(_card("mobileclip-finetune.json"))
    arch, prov = tuned.architecture, tuned.provenance
    assert isinstance(arch, MobileCLIPArchitecture) and isinstance(prov, FinetuneProvenance)
    assert arch.variant == "mobileclip-s0" and arch.finetune is not None and arch.finetune.base == "s0"
    assert arch.finetune.text_only is False and arch.finetune.trainable_parameters > 0
    assert prov.lineage == (
        LineageStep(id="s0", name="MobileCLIP-S0", built_by="python -m trainer import",
                    checkpoint_sha256=prov.lineage[0].checkpoint_sha256, album=None),
    )  # fmt: skip
    assert source_checkpoint(prov) is prov.checkpoint and prov.checkpoint.kept == "checkpoints/s0-family.safetensors"
    trained = parse_card(_card("mobileclip-trained.json")).provenance  # a run started from a checkpoint (--init)
    assert isinstance(trained, TrainProvenance) and trained.init is not None and trained.init.kept is None
    assert trained.lineage == (InitStep(id=None, checkpoint="s0.safetensors", checkpoint_sha256=trained.init.sha256),)
    assert trained.to_json()["init"]["kept"] is None and trained.to_json()["lineage"][0]["id"] is None  # null, kept
    twice = parse_card(_card("starter-finetune-of-finetune.json")).provenance
    assert isinstance(twice, FinetuneProvenance) and [s.id for s in twice.lineage] == ["starter", "family2"]
    assert twice.lineage[-1].album == "family" and source_checkpoint(twice) is None
    words = parse_card(_card("starter-text-only.json"))
    assert words.architecture.finetune.text_only is True and words.shares_image_of is not None


def test_an_old_starter_card_gains_no_keys() -> None:
    data = _card("starter-first-build.json")
    card = parse_card(data)
    assert card.architecture.evidence is None and card.architecture.text_precision is None
    assert list(card.to_json()["architecture"]) == list(data["architecture"])


def test_unknown_keys_and_builders_are_kept() -> None:
    data = _card("mobileclip-finetune.json")
    data["architecture"]["future"] = {"heads": 2}
    data["architecture"]["finetune"]["future_rate"] = 0.5
    data["provenance"]["checkpoint"]["future_note"] = "kept"
    card = parse_card(copy.deepcopy(data))
    assert card.architecture.extra == {"future": {"heads": 2}}
    assert card.architecture.finetune.extra == {"future_rate": 0.5}
    assert card.to_json()["architecture"] == data["architecture"]
    assert card.to_json()["provenance"] == data["provenance"]

    other = _card("starter.json")
    other["architecture"] = {"family": "someone-elses", "layers": 12}
    other["provenance"] = {"built_by": "another tool 2.0", "seed": 7}
    card = parse_card(copy.deepcopy(other))
    assert type(card.architecture) is Architecture and card.architecture.extra == {"layers": 12}
    assert type(card.provenance) is Provenance and card.provenance.extra == {"seed": 7}
    assert (card.to_json()["architecture"], card.to_json()["provenance"]) == (
        other["architecture"],
        other["provenance"],
    )
    del other["provenance"]
    assert parse_card(other).to_json()["provenance"] == {}  # cards may lack a provenance, as before


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        data = data[int(key)] if isinstance(data, list) else data[key]
    if value is KeyError:
        del data[last]
    else:
        data[last] = value


@pytest.mark.parametrize(
    ("name", "path", "value", "message"),
    [
        ("mobileclip-finetune.json", "architecture.finetune.labels", "kepler", "'architecture.finetune.labels'"),
        ("mobileclip-finetune.json", "architecture.logit_scale", "100", "'architecture.logit_scale'"),
        ("mobileclip-finetune.json", "architecture.variant", KeyError, "no 'architecture.variant'"),
        ("mobileclip-finetune.json", "provenance.checkpoint.sha256", 12, "'provenance.checkpoint.sha256'"),
        ("mobileclip-finetune.json", "provenance.early_stop.stopped", "yes", "'provenance.early_stop.stopped'"),
        ("mobileclip-finetune.json", "provenance.lineage.0.id", 5, "'provenance.lineage[0]'"),
        ("mobileclip-finetune.json", "provenance.steps", True, "'provenance.steps'"),
        ("starter.json", "architecture.top_k", 2.5, "'architecture.top_k'"),
        ("starter.json", "provenance.sources", ["torch"], "'provenance.sources'"),
        ("starter.json", "provenance", [], "'provenance'"),
        ("starter.json", "architecture.family", 3, "'architecture.family'"),
    ],
)
def test_malformed_fields_are_named(name: str, path: str, value: Any, message: str) -> None:
    data = _card(name)
    _set(data, path, value)
    with pytest.raises(ModelPackageError, match=r"^card\.json: .*" + re.escape(message)):
        parse_card(data, "card.json")
