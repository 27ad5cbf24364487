"""The graph templates in assets/mobileclip are what `python -m trainer export-templates` writes today.

A fresh export of MobileCLIP-S0 (it checks itself: core's numpy fill of the templates must reproduce PyTorch) must
give the committed graphs byte for byte and the same descriptor apart from the measured check figures.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from core.graph_template import load_descriptors, template_dir
from trainer.cli import main
from trainer.graph_template import TAGS

torch.set_num_threads(1)


def test_every_variant_has_a_committed_template() -> None:
    assert sorted(d.architecture.tag for d in load_descriptors()) == sorted(TAGS)


def test_fresh_s0_export_equals_the_committed_templates(tmp_path: Path, capsys) -> None:
    # Through the command the README gives, into a folder of its own.
    assert main(["export-templates", "S0", "--out", str(tmp_path)]) == 0
    assert "S0: filled template vs PyTorch" in capsys.readouterr().out
    (fresh,) = load_descriptors(tmp_path)
    (committed,) = [d for d in load_descriptors() if d.architecture.tag == "S0"]
    assert dataclasses.replace(fresh, check=committed.check) == committed
    assert max(fresh.check.image_max_abs_diff, fresh.check.text_max_abs_diff) <= 1e-4
    for graph in (fresh.image, fresh.text):
        assert (tmp_path / graph.template).read_bytes() == (template_dir() / graph.template).read_bytes()
