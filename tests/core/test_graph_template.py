"""The bundled graph templates (assets/mobileclip): descriptors parse, round-trip, and bad ones are refused."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from core.errors import ModelPackageError
from core.graph_template import RepMixerFusion, load_descriptors, parse_descriptor, template_dir

TAGS = {"S0", "S1", "S2", "B", "MC2-S0", "MC2-S2", "MC2-B", "MC2-S3", "MC2-S4"}


def test_every_variant_ships_small_templates_without_weights() -> None:
    descriptors = load_descriptors()
    assert {d.architecture.tag for d in descriptors} == TAGS
    total = sum(p.stat().st_size for p in template_dir().iterdir())
    assert total < 1_000_000  # the frozen app's budget is 5 MB for all of this issue
    for descriptor in descriptors:
        for graph in (descriptor.image, descriptor.text):
            raw = gzip.decompress((template_dir() / graph.template).read_bytes())
            assert len(raw) < graph.data_size / 50  # the weights are not in the graph
            assert len({s.key for s in graph.slots}) == len(graph.slots)


def test_descriptors_round_trip_through_json() -> None:
    for descriptor in load_descriptors():
        assert parse_descriptor(json.loads(json.dumps(descriptor.to_json())), "x") == descriptor
    s0 = next(d for d in load_descriptors() if d.architecture.tag == "S0")
    assert any(isinstance(f, RepMixerFusion) for f in s0.fusions)  # MCt text and MCi image RepMixers
    assert {m.name for m in s0.models} == {"mobileclip-s0"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(version=99), "version 1"),
        (lambda d: d["architecture"].pop("tag"), "malformed"),
        (lambda d: d["fusions"][0].update(kind="unknown"), "malformed"),
    ],
)
def test_bad_descriptors_are_refused(tmp_path: Path, change, message: str) -> None:
    data = next(d for d in load_descriptors() if d.architecture.tag == "S0").to_json()
    change(data)
    with pytest.raises(ModelPackageError, match=message):
        parse_descriptor(data, "bad.json.gz")
    (tmp_path / "bad.json.gz").write_bytes(b"not gzip")
    with pytest.raises(ModelPackageError, match="cannot read"):
        load_descriptors(tmp_path)
