"""`python -m trainer finetune` on a MobileCLIP base imported with `python -m trainer import`.

The base is MobileCLIP-S0 filled with the golden parity data's deterministic weights (random-ish, so its accuracy on
any album is meaningless): the tests check the pipeline, not accuracy. Import keeps the source checkpoint in the
library; fine-tuning rebuilds the train-time model from it, trains the top of both towers on the album's
reinforced dataset (teachers: the base and the starter), exports a package core loads, records before/after
metrics and lineage, keeps the new weights so the result can be fine-tuned again, and leaves the base installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from skimage import data as skimage_data

from core.encoders import ModelPackage
from core.kept_checkpoints import keep_checkpoint
from core.model_card import SharedImageSpec, image_key, image_side_files, sha256_file
from core.model_card_types import EarlyStopRecord, LineageStep
from core.model_store import ModelStore
from core.preprocess import preprocess
from core.tagging import TAG_TEMPLATES
from core.tokenizers.clip_bpe import ClipBpeTokenizer, bundled_vocab_path
from tests.photo_corpus import available_photos, materialize
from tests.support.scratch import scratch_folder
from tests.trainer.test_finetune_forgetting import write_bank
from trainer.checkpoints import load_checkpoint
from trainer.cli import main
from trainer.finetune.album import read_album, split_album
from trainer.finetune.anchor import anchor_captions
from trainer.finetune.mobileclip_student import MobileCLIPAlbumStudent
from trainer.finetune.options import FinetuneOptions
from trainer.finetune.pipeline import finetune
from trainer.finetune.tuner import FinetuneError
from trainer.mobileclip_export import preprocess_spec
from trainer.models.clip import create_model
from trainer.models.golden_fill import build_filled

torch.set_num_threads(1)

ALBUM = {
    "nonna": ["handwritten_math", "book_page", "ancient_coins"],
    "kepler": ["hubble_deep_field", "moon_surface", "retina_fundus"],
}
VAL_FRACTION = 0.34  # one photo per label held out
# What trains by default: the last two image trunk blocks (MCi0's last stage: two attention blocks), the final conv,
# the head, the top two text layers, the final norm, the projection and the logit scale.
TRAINED = {
    "mobileclip-s0": ("logit_scale", "image_encoder.model.network.7.", "image_encoder.model.conv_exp.",
                      "image_encoder.model.head.", "text_encoder.transformer.4.", "text_encoder.transformer.5.",
                      "text_encoder.final_layer_norm.", "text_encoder.projection_layer"),
    "mobileclip2-s0": ("logit_scale", "visual.trunk.stages.3.blocks.", "visual.trunk.final_conv.", "visual.trunk.head.",
                       "text.transformer.resblocks.10.", "text.transformer.resblocks.11.", "text.ln_final.",
                       "text.text_projection"),
}  # fmt: skip
SMALL = ["--steps", "2", "--batch-size", "4", "--augmentations", "2", "--val-fraction", str(VAL_FRACTION)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, starter_package_dir: Path):
    """(library with the starter and MobileCLIP-S0 imported as 's0', album, sha256 of the imported checkpoint).

    The checkpoint file is deleted after the import, as a user may do: the library's kept copy is what remains.
    """
    with scratch_folder(tmp_path_factory, "mobileclip-finetune") as root, pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_DATA_HOME", str(root / "xdg"))  # no user-wide packages
        patch.delenv("PHOTOSEEK_HOME", raising=False)
        library = root / "library"
        (library / "models").mkdir(parents=True)
        (library / "models" / "starter").symlink_to(starter_package_dir, target_is_directory=True)
        source = root / "downloads" / "mobileclip_s0.pt"
        source.parent.mkdir()
        torch.save(build_filled(lambda: create_model("mobileclip-s0")).state_dict(), source)
        sha = sha256_file(source)
        assert main(["import", str(source), "--library", str(library), "--id", "s0"]) == 0
        source.unlink()
        album = root / "family"
        for label, names in ALBUM.items():
            materialize(album / label, names, max_side=256)
        yield library, album, sha


@pytest.fixture(scope="module")
def tuned(setup, tmp_path_factory: pytest.TempPathFactory):
    """The library after the CLI fine-tune of 's0' into 's0-family' (with --activate), with the forgetting check
    on a generic bank (a limit the random-weight model always meets: the check and its early stop run, never stop)."""
    library, album, _ = setup
    in_album = {name for names in ALBUM.values() for name in names}
    bank = write_bank(tmp_path_factory.mktemp("bank"), [p.name for p in available_photos() if p.name not in in_album])
    args = ["finetune", str(album), "--library", str(library), "--base", "s0", "--name", "s0-family", *SMALL,
            "--generic-bank", str(bank), "--max-forgetting", "1"]  # fmt: skip
    assert main([*args, "--activate", "--no-progress"]) == 0
    return library


def test_import_records_and_keeps_the_checkpoint(setup) -> None:
    library, _, sha = setup
    record = ModelStore(library).find("s0").card.provenance.checkpoint
    assert record.sha256 == sha and record.file == "mobileclip_s0.pt"
    assert record.path.endswith("downloads/mobileclip_s0.pt")  # where it was imported from (now deleted)
    assert record.kept == "checkpoints/mobileclip_s0.pt"
    assert sha256_file(library / record.kept) == sha


def test_keep_checkpoint_reuses_copies_and_never_overwrites_another_file(tmp_path: Path) -> None:
    library = tmp_path / "library"
    first = tmp_path / "a" / "model.pt"
    first.parent.mkdir()
    first.write_bytes(b"first weights")
    kept = keep_checkpoint(first, library, sha256_file(first))
    assert kept == library / "checkpoints" / "model.pt" and kept.read_bytes() == b"first weights"
    assert keep_checkpoint(kept, library, sha256_file(first)) == kept  # already there: no second copy
    other = tmp_path / "b" / "model.pt"
    other.parent.mkdir()
    other.write_bytes(b"other weights")
    second = keep_checkpoint(other, library, sha256_file(other))
    assert second != kept and second.read_bytes() == b"other weights" and kept.read_bytes() == b"first weights"
    assert sorted(p.name for p in (library / "checkpoints").iterdir()) == sorted([kept.name, second.name])


@pytest.mark.parametrize("name", ["mobileclip-s0", "mobileclip2-s0"])  # v1 MCi + MCt, and FastViT + open_clip text
def test_student_computes_what_the_model_computes(name: str) -> None:
    """Frozen part (cached) + trainable part = the whole tower, before any training; only the top trains."""
    model = build_filled(lambda: create_model(name))
    student = MobileCLIPAlbumStudent(model)
    photos = [Image.fromarray(skimage_data.chelsea()), Image.fromarray(skimage_data.rocket())]
    spec = preprocess_spec(model.info)
    pixels = torch.from_numpy(np.stack([preprocess(photo, spec)[0] for photo in photos]))
    captions = ["a photo of nonna.", "kepler", "a photo of a cat."]
    tokens = ClipBpeTokenizer(bundled_vocab_path())(captions)
    ids, eot = torch.from_numpy(tokens["input_ids"]), torch.from_numpy(tokens["eot_index"])
    student.cache_captions(ids, eot)
    with torch.no_grad():
        image, text = model.encode_image(pixels), model.encode_text(ids, eot)
        cached_image = student.encode_image(student.frozen_image_features(pixels))
        cached_text = student.encode_text(torch.tensor([2, 0, 1, 0]))
    assert torch.allclose(cached_image, image, atol=1e-4 * float(image.abs().max()))  # fused frozen part
    assert torch.allclose(cached_text, text[[2, 0, 1, 0]], atol=1e-5)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    prefixes = TRAINED[name]
    assert all(n.startswith(prefixes) for n in trainable)
    assert all(any(n.startswith(prefix) for n in trainable) for prefix in prefixes)
    assert 0.1 < student.trainable_counts()["trainable_parameters"] / student.trainable_counts()["parameters"] < 0.3


def test_text_only_student_trains_no_image_parameter() -> None:
    with torch.device("meta"):
        model = create_model("mobileclip-s0")
    MobileCLIPAlbumStudent(model, text_only=True)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and not [n for n in trainable if n.startswith("image")]
    assert any(n.startswith("text") for n in trainable)


def test_vit_image_towers_are_refused() -> None:
    with torch.device("meta"):
        model = create_model("mobileclip-b")
    with pytest.raises(FinetuneError, match="ViT image tower"):
        MobileCLIPAlbumStudent(model)


def _zero_shot_accuracy(package: ModelPackage, photos: list, labels: list[str]) -> float:
    prompts = [t.format(label) for label in labels for t in TAG_TEMPLATES]
    text = package.embed_texts(prompts).reshape(len(labels), len(TAG_TEMPLATES), -1).mean(axis=1)
    predicted = (package.embed_images([image for _, image in photos]) @ text.T).argmax(axis=1)
    return float(np.mean([labels[i] == label for i, (label, _) in zip(predicted, photos, strict=True)]))


@pytest.mark.slow
def test_finetune_installs_a_package_core_loads(setup, tuned: Path) -> None:
    library, album, sha = setup
    store = ModelStore(library)
    package = store.load("s0-family")  # verifies every file's sha256 against the card
    base = store.load("s0")  # the base stays installed, intact
    assert store.active_id() == "s0-family"
    assert {m.id for m in store.list()} == {"starter", "s0", "s0-family"}

    parsed, images = read_album(album)
    _, val = split_album(parsed, VAL_FRACTION, seed=0)
    photos = [(p.label, images[p.path]) for p in val]
    embedded = package.embed_images([image for _, image in photos])
    assert embedded.shape == (len(photos), 512) and np.isfinite(embedded).all()

    card = package.card
    assert card.architecture.family == "mobileclip" and card.architecture.variant == "mobileclip-s0"
    assert card.architecture.finetune.base == "s0" and card.architecture.finetune.labels == tuple(parsed.labels)
    assert card.provenance.base.id == "s0" and card.provenance.steps == 2
    assert [t.id for t in card.provenance.teachers] == ["s0", "starter"]
    assert card.provenance.lineage == (
        LineageStep(id="s0", name="MobileCLIP-S0", built_by="python -m trainer import", checkpoint_sha256=sha,
                    album=None),
    )  # fmt: skip
    # Before and after are core's own measurements of the two installed packages on the held-out photos.
    validation = card.metrics["album_validation"]
    assert validation["before"]["accuracy"] == pytest.approx(_zero_shot_accuracy(base, photos, parsed.labels))
    assert validation["after"]["accuracy"] == pytest.approx(_zero_shot_accuracy(package, photos, parsed.labels))
    assert set(validation["after"]) >= {"balanced_accuracy", "recall@1", "mAP", "per_label"}
    assert 0.0 <= card.metrics["generic_concepts"]["generic_overlap@5"] <= 1.0
    assert 0.0 <= card.metrics["generic_retrieval"]["after"] <= 1.0 and card.metrics["generic_retrieval"]["photos"] >= 6
    assert card.provenance.early_stop == EarlyStopRecord(stopped=False, kept_step=2)
    assert card.architecture.finetune.text_only is False
    assert card.parity["image_max_abs_diff"] < 1e-4 and card.parity["text_max_abs_diff"] < 1e-4


@pytest.mark.slow
def test_finetune_keeps_trainable_weights_that_match_the_package(setup, tuned: Path) -> None:
    library, album, sha = setup
    package = ModelStore(library).load("s0-family")
    record = package.card.provenance.checkpoint
    kept = library / record.kept
    assert sha256_file(kept) == record.sha256 and kept.name == "s0-family.safetensors"

    # Only the top of each tower moved: frozen weights are the base's, trained ones differ.
    new, old = load_file(str(kept)), load_checkpoint(library / "checkpoints" / "mobileclip_s0.pt").model.state_dict()
    assert torch.equal(new["image_encoder.model.patch_embed.0.rbr_conv.0.conv.weight"],
                       old["image_encoder.model.patch_embed.0.rbr_conv.0.conv.weight"])  # fmt: skip
    assert torch.equal(new["text_encoder.embedding_layer.weight"], old["text_encoder.embedding_layer.weight"])
    for key in ("image_encoder.model.head.proj", "text_encoder.projection_layer", "logit_scale"):
        assert not torch.equal(new[key], old[key]), key

    # The kept weights are the package's model: core's embeddings equal the PyTorch model's.
    model = load_checkpoint(kept, "mobileclip-s0").model
    parsed, images = read_album(album)
    photos = [images[p.path] for p in parsed.photos[:2]]
    pixels = torch.from_numpy(np.stack([package.preprocess(photo)[0] for photo in photos]))
    tokens = package.tokenizer(["nonna", "a photo of kepler."])
    with torch.no_grad():
        image_ref = model.encode_image(pixels, normalize=True).numpy()
        text_ref = model.encode_text(torch.from_numpy(tokens["input_ids"]), normalize=True).numpy()
    assert np.abs(package.embed_images(photos) - image_ref).max() < 1e-4
    assert np.abs(package.embed_texts(["nonna", "a photo of kepler."]) - text_ref).max() < 1e-4


@pytest.mark.slow
def test_finetune_of_a_finetune(setup, tuned: Path) -> None:
    library, album, sha = setup
    options = FinetuneOptions(
        base="s0-family", model_id="s0-family2", steps=1, batch_size=4, augmentations=1, synthetic=0, teachers=[],
        val_fraction=VAL_FRACTION, progress=False,
    )  # fmt: skip
    report = finetune(album, library, options)
    first = ModelStore(library).load("s0-family").card
    assert report.before["accuracy"] == pytest.approx(first.metrics["album_validation"]["after"]["accuracy"])
    card = ModelStore(library).load("s0-family2").card
    assert [step.id for step in card.provenance.lineage] == ["s0", "s0-family"]
    assert card.provenance.lineage[-1].checkpoint_sha256 == first.provenance.checkpoint.sha256
    assert sha256_file(library / card.provenance.checkpoint.kept) == card.provenance.checkpoint.sha256
    assert ModelStore(library).active_id() == "s0-family"  # no --activate this time


def test_missing_or_changed_checkpoint_gets_a_clear_error(setup, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    library, album, _ = setup
    other = tmp_path / "library"  # the same package, but a library that never kept its checkpoint
    (other / "models").mkdir(parents=True)
    (other / "models" / "s0").symlink_to(library / "models" / "s0", target_is_directory=True)
    args = ["finetune", str(album), "--library", str(other), "--base", "s0", *SMALL, "--no-progress"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "'mobileclip_s0.pt' that 's0' was made from is missing" in err
    assert f"python -m trainer import FILE --id s0 --library {other}" in err
    assert "python -m trainer download mobileclip-s0" in err
    assert not (other / "cache").exists()  # it failed before any teacher ran

    (other / "checkpoints").mkdir()
    shutil.copyfile(library / "models" / "s0" / "LICENSE.txt", other / "checkpoints" / "mobileclip_s0.pt")
    with pytest.raises(FinetuneError, match="differ from the recorded sha256"):
        finetune(album, other, FinetuneOptions(base="s0", steps=1))


@pytest.mark.slow
def test_text_only_finetune_shares_the_imported_base_image_side(setup) -> None:
    """A MobileCLIP export writes the image tower again: the text-only package carries the base's image-side files
    byte for byte instead (graphs, their external data if any, extra files), so core keys both models' photo
    embeddings alike, and the package still verifies and loads."""
    library, album, _ = setup
    options = FinetuneOptions(
        steps=2,
        batch_size=4,
        augmentations=2,
        val_fraction=VAL_FRACTION,
        base="s0",
        model_id="s0-words",
        text_only=True,
        anchor=5.0,  # off by default for MobileCLIP (unmeasured on real weights); asked for, it runs here too
    )
    finetune(album, library, options)
    store = ModelStore(library)
    base, words = store.load("s0"), store.load("s0-words")  # verifies every file against its card
    assert {n: words.card.files[n] for n in image_side_files(words.card)} == {
        n: base.card.files[n] for n in image_side_files(base.card)
    }
    assert (
        words.card.shares_image_of
        == SharedImageSpec("s0", image_key(base.card))
        == SharedImageSpec("s0", image_key(words.card))
    )
    photo = Image.fromarray(skimage_data.chelsea())
    np.testing.assert_array_equal(words.embed_images([photo]), base.embed_images([photo]))
    assert words.card.provenance.loss["text_anchor"] == {"weight": 5.0, "captions": len(anchor_captions())}
