"""`python -m core models import` / `remove`: official MobileCLIP checkpoints become model packages without torch.

Golden-filled checkpoints (tests/data/golden key lists, the golden fill) are imported by the CLI in a child process
where torch and the train extra cannot be imported; the installed package's encoders must give the golden
(reparameterized reference) features of every variant within 1e-4. Plus the numpy fusion against the golden fused
tensors, the open_clip form of a v1 model, `--name`, bad files, and removing packages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.graph_template import load_descriptors
from core.template_fill import fused_tensors
from tests.support.core_process import run_without_torch
from tests.support.golden_checkpoints import as_openclip, features, golden, golden_arrays, save_safetensors
from tests.support.scratch import scratch_folder

VARIANTS = {  # golden tag -> the model name its file is detected as
    "S0": "mobileclip-s0",
    "S1": "mobileclip-s1",
    "S2": "mobileclip-s2",
    "B": "mobileclip-b",
    "MC2-S0": "mobileclip2-s0",
    "MC2-S2": "mobileclip2-s2",
    "MC2-B": "mobileclip2-b",
    "MC2-S3": "mobileclip2-s3",
    "MC2-S4": "mobileclip2-s4",
}
BOUND = 1e-4  # max abs difference of normalised features (the goal)


def import_cli(checkpoint: Path, library: Path, *extra: str) -> dict[str, object]:
    done = run_without_torch("models", "import", str(checkpoint), "--json", *extra, library=library)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("tag", list(VARIANTS))
def test_import_without_torch_reproduces_the_golden_features(tag: str, tmp_path: Path) -> None:
    checkpoint = save_safetensors(golden_arrays(tag), tmp_path / f"{tag.lower()}.safetensors")
    library = tmp_path / "library"
    result = import_cli(checkpoint, library, "--activate")
    assert (result["id"], result["active"]) == (VARIANTS[tag], True)
    ref = golden(tag)
    image, text = features(library / "models" / VARIANTS[tag], ref)
    assert np.abs(image - ref["reparam/image_features_normalized"]).max() <= BOUND
    assert np.abs(text - ref["reparam/text_features_normalized"]).max() <= BOUND
    card = json.loads((library / "models" / VARIANTS[tag] / "model_card.json").read_text())
    assert card["provenance"]["built_by"] == "python -m core models import"
    assert card["architecture"]["golden_tag"] == tag
    assert card["provenance"]["checkpoint"]["kept"] == f"checkpoints/{checkpoint.name}"


@pytest.mark.parametrize("tag", ["S0", "MC2-S0", "MC2-S3"])
def test_numpy_fusion_gives_the_golden_fused_tensors(tag: str) -> None:
    (descriptor,) = [d for d in load_descriptors() if d.architecture.tag == tag]
    ref = golden(tag)
    wanted = [k.removeprefix("fused/") for k in ref if k.startswith("fused/")]
    assert wanted
    for key, value in fused_tensors(golden_arrays(tag), descriptor.fusions, wanted):
        expected = ref[f"fused/{key}"]
        assert np.abs(value - expected).max() <= 1e-5 * max(1.0, float(np.abs(expected).max())), key


@pytest.mark.slow
def test_open_clip_form_of_a_v1_model_imports_as_that_model(tmp_path: Path) -> None:
    """MobileCLIP-S2 as open_clip's converter writes it has the keys of MobileCLIP2-S2; its zero head bias tells."""
    checkpoint = save_safetensors(as_openclip(golden_arrays("S2")), tmp_path / "open_clip_model.safetensors")
    result = import_cli(checkpoint, tmp_path / "library")
    assert result["id"] == "mobileclip-s2"
    assert "zero head bias" in result["detected_by"]
    ref = golden("S2")
    image, text = features(tmp_path / "library" / "models" / "mobileclip-s2", ref)
    assert np.abs(image - ref["reparam/image_features_normalized"]).max() <= BOUND
    assert np.abs(text - ref["reparam/text_features_normalized"]).max() <= BOUND


def test_name_that_does_not_fit_is_refused_and_nothing_installed(tmp_path: Path) -> None:
    checkpoint = save_safetensors(golden_arrays("MC2-S0"), tmp_path / "mobileclip2_s0.safetensors")
    library = tmp_path / "library"
    done = run_without_torch("models", "import", str(checkpoint), "--name", "mobileclip2-s2", library=library)
    assert done.returncode == 1
    assert "holds MobileCLIP2-S0, not MobileCLIP2-S2" in done.stderr
    assert not (library / "models").exists() or not any((library / "models").iterdir())


def test_unknown_and_damaged_files_give_clear_errors(tmp_path: Path) -> None:
    arrays = golden_arrays("S0")
    arrays.pop(next(k for k in arrays if k.endswith("rbr_skip.running_var")))
    checkpoint = save_safetensors(arrays, tmp_path / "mobileclip_s0.safetensors")
    library = tmp_path / "library"
    done = run_without_torch("models", "import", str(checkpoint), library=library)
    assert done.returncode == 1
    assert "not a MobileCLIP checkpoint this version knows" in done.stderr and "1 missing" in done.stderr
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    done = run_without_torch("models", "import", str(truncated), library=library)
    assert done.returncode == 1 and "error:" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A library with MobileCLIP-S0 (active) and the same file imported again as 'spare'."""
    with scratch_folder(tmp_path_factory, "remove") as root:
        checkpoint = save_safetensors(golden_arrays("S0"), root / "mobileclip_s0.safetensors")
        library = root / "library"
        import_cli(checkpoint, library, "--activate")
        import_cli(checkpoint, library, "--id", "spare")
        yield library


def test_remove_refuses_the_active_model_and_removes_another(two_models: Path) -> None:
    done = run_without_torch("models", "remove", "mobileclip-s0", library=two_models)
    assert done.returncode == 1 and "the active model" in done.stderr
    assert (two_models / "models" / "mobileclip-s0" / "model_card.json").is_file()
    done = run_without_torch("models", "remove", "spare", "--json", library=two_models)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["removed"] == "spare"
    assert sorted(p.name for p in (two_models / "models").iterdir()) == ["mobileclip-s0"]
    done = run_without_torch("models", "remove", "spare", library=two_models)
    assert done.returncode == 1 and "no model package 'spare'" in done.stderr
