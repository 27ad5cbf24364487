"""Every command the README shows, run as it shows them (default flags, progress bars on) under a terminal.

Each runs as a child process under a pseudo-terminal, so isatty() is true and tqdm draws, in a sandbox with a
fresh HOME and no network (sandbox.py). The library is chosen the README's way: ``$PHOTOSEEK_HOME``, or the user
data folder under HOME for the first command. Argument values are small (tiny albums, one or a few steps) so the
whole folder runs in a few minutes; the first command builds the starter model for real.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageOps

from tests.acceptance.sandbox import (
    REPO,
    Sandbox,
    assert_home_holds_only,
    assert_offline,
    expect_ok,
    library_with_starter,
    progress_draws,
)
from tests.acceptance.terminal import TerminalRun
from tests.photo_corpus import available_photos, materialize
from trainer.models.clip import create_model, model_info
from trainer.models.golden_fill import build_filled

pytestmark = pytest.mark.slow  # about four minutes in all on two cores, most of it building the starter once

CAT_PHOTOS = {photo.name for photo in available_photos() if "cat" in photo.labels}
ALBUM = {  # made-up labels no model knows, as in the fine-tuning tests
    "nonna": ["book_page", "coffee", "ancient_coins", "handwritten_math"],
    "kepler": ["moon_surface", "hubble_deep_field", "retina_fundus", "aerial_farmland"],
}
HIT = re.compile(r"^(\d+\.\d{3})\s+(\S.*)$")


def search_hits(output: str) -> list[Path]:
    """The result paths of a plain-text ``search`` or ``similar``, best first."""
    return [Path(m.group(2).strip()) for line in output.splitlines() if (m := HIT.match(line.strip()))]


def readme_first_command() -> str:
    """The README's first shell command (set up, make the demo photos, index, search)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.+?)\n```", text, re.DOTALL)
    assert block, "README.md has no bash block"
    return block.group(1).strip()


def python_steps(command: str) -> str:
    """The command's steps after the install, with ``.venv/bin/python`` being the interpreter running the tests.

    Creating a venv and pip-installing cannot run here (no network); the test run's interpreter has that install.
    """
    steps = [step.strip() for step in command.split("&&")]
    assert steps[0].startswith("python3 -m venv") and "pip install" in steps[1], steps[:2]
    python = shlex.quote(sys.executable)
    return " && ".join(step.replace(".venv/bin/python", python, 1) for step in steps[2:])


def make_album(root: Path) -> Path:
    for label, names in ALBUM.items():
        materialize(root / label, names, max_side=256)
    return root


def test_the_first_command_builds_the_starter_and_finds_the_cat(sandbox: Sandbox) -> None:
    """The README's first command in a fresh HOME: no model yet, so `core index` builds the starter (by running
    `python -m trainer build-starter`), indexes the demo photos, and the search puts the cat first."""
    steps = python_steps(readme_first_command())
    assert "-m core index demo-photos" in steps and '-m core search "a cat"' in steps
    work = sandbox.root / "checkout"
    work.mkdir()
    run = sandbox.run("bash", "-c", steps, cwd=work, timeout=900)
    library = sandbox.home / ".local" / "share" / "PhotoSeek"
    photos = len(list((work / "demo-photos").iterdir()))
    expect_ok(
        run,
        "building the starter model once",
        f"Installed the starter model in {library / 'models' / 'starter'}",
        f"wrote {photos} real photos to demo-photos",
    )
    assert progress_draws(run.output, "Indexing")[-1].startswith("Indexing: 100%"), run.describe()
    assert f"{photos} photos found: {photos} indexed" in run.output
    hits = search_hits(run.output)
    # The list stops where the matches stop: the cat first, and not every photo of the folder.
    assert 1 <= len(hits) < photos and hits[0].stem in CAT_PHOTOS, run.describe()
    assert (library / "index.sqlite3").is_file()
    assert_offline(sandbox)
    assert_home_holds_only(sandbox, ".local/share/PhotoSeek")  # the library, where the README says it is


@dataclass
class Indexed:
    """A library with the starter model and the corpus photos indexed by `core index`, shared by a module."""

    sandbox: Sandbox
    library: Path
    photos: Path
    index_run: TerminalRun | None = None  # the first `core index PHOTOS`

    def core(self, *args: str | Path) -> TerminalRun:
        return self.sandbox.python("-m", "core", *args, PHOTOSEEK_HOME=str(self.library))


@pytest.fixture(scope="module")
def indexed(module_sandbox: Sandbox, starter_package_dir: Path) -> Indexed:
    library = library_with_starter(module_sandbox.root / "library", starter_package_dir)
    photos = module_sandbox.root / "photos"
    materialize(photos, max_side=384)
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff this is not a JPEG")
    state = Indexed(module_sandbox, library, photos)
    state.index_run = state.core("index", photos)
    return state


def test_index_draws_its_progress_and_search_puts_the_cat_first(indexed: Indexed) -> None:
    count = len(list(indexed.photos.glob("*.jpg")))
    assert indexed.index_run is not None
    expect_ok(indexed.index_run, f"{count} photos found: {count - 1} indexed", "1 unreadable", "skipped")
    draws = progress_draws(indexed.index_run.output, "Indexing")
    assert draws and f"{count}/{count}" in draws[-1], indexed.index_run.describe()

    search = indexed.core("search", "a cat")
    hits = search_hits(expect_ok(search))
    assert 1 <= len(hits) < count and hits[0].stem in CAT_PHOTOS, search.describe()
    best = search_hits(expect_ok(indexed.core("search", "a cat", "--top", "10")))
    assert len(best) == 10 and best[0] == hits[0]  # --top K: the K best, whatever their score
    again = expect_ok(indexed.core("index"), f"{count} photos found: 0 indexed, {count} unchanged")
    assert "Indexing" in again  # the bar is drawn at a terminal even when there is nothing new


def test_similar_tags_and_vocab(indexed: Indexed) -> None:
    cat = indexed.photos / "chelsea_cat.jpg"
    similar = search_hits(expect_ok(indexed.core("similar", cat)))
    assert len(similar) == 10 and cat not in similar and all(p.parent == indexed.photos for p in similar)

    assert re.search(r"^cat\s+\d\.\d{3}\s+starter \(auto\)", expect_ok(indexed.core("tags", cat)), re.M)
    edited = expect_ok(indexed.core("tags", cat, "--add", "pet", "--remove", "cat"))
    assert re.search(r"^pet\s+\S+\s+starter \(confirmed\)", edited, re.M) and not re.search(r"^cat\s", edited, re.M)

    vocabulary = expect_ok(indexed.core("vocab", "list")).split()
    assert {"cat", "dog", "beach"} <= set(vocabulary) and len(vocabulary) > 100
    expect_ok(indexed.core("vocab", "add", "kepler"), "added: kepler")
    assert "kepler" in expect_ok(indexed.core("vocab", "list")).split()
    expect_ok(indexed.core("vocab", "remove", "kepler"))
    assert "kepler" not in expect_ok(indexed.core("vocab", "list")).split()


def test_export_xmp_errors_stats_and_models(indexed: Indexed) -> None:
    expect_ok(indexed.core("export-xmp"), "0 failed")
    sidecar = indexed.photos / "chelsea_cat.jpg.xmp"
    assert sidecar.is_file() and "dc:subject" in sidecar.read_text(encoding="utf-8")

    expect_ok(indexed.core("errors"), f"{indexed.photos / 'broken.jpg'}: not a readable image")
    count = len(list(indexed.photos.glob("*.jpg"))) - 1
    stats = json.loads(expect_ok(indexed.core("stats", "--json")))  # --json: to read the figures back
    assert stats["photos"] == count and stats["errors"] == 1 and stats["embeddings"] == {"starter": count}
    expect_ok(indexed.core("stats"), f"photos: {count}", "active_model: starter")

    expect_ok(indexed.core("models", "list"), "* starter")
    expect_ok(indexed.core("models", "verify", "starter"), "starter: all 6 files match the card", "fast image encoder")
    expect_ok(indexed.core("models", "use", "starter"), "Active model: starter")
    assert_offline(indexed.sandbox)
    assert_home_holds_only(indexed.sandbox)


def test_watch_indexes_a_new_photo_and_stops_on_ctrl_c(indexed: Indexed) -> None:
    watch = indexed.sandbox.start("python", "-m", "core", "watch", PHOTOSEEK_HOME=str(indexed.library))
    try:
        watch.expect("watching (Ctrl+C stops)", timeout=60)
        new = indexed.photos / "cat_mirrored.jpg"
        ImageOps.mirror(Image.open(indexed.photos / "chelsea_cat.jpg")).save(new, quality=90)
        watch.expect("indexed 1, removed 0", timeout=60)
        new.unlink()
        watch.expect("indexed 0, removed 1", timeout=60)
        watch.interrupt()
        run = watch.wait(timeout=30)
    finally:
        watch.kill()
    assert run.returncode == 130, run.describe()


@pytest.fixture()
def trainer_library(tmp_path: Path, starter_package_dir: Path) -> Path:
    return library_with_starter(tmp_path / "library", starter_package_dir)


def test_reinforce_then_train(sandbox: Sandbox, trainer_library: Path) -> None:
    work = sandbox.root
    make_album(work / "album")
    env = {"PHOTOSEEK_HOME": str(trainer_library)}
    run = sandbox.python("-m", "trainer", "reinforce", "album", "--out", "data", cwd=work, **env)
    expect_ok(run, "teachers starter", "Wrote")
    draws = progress_draws(run.output, "reinforce rank 0/1")
    assert draws and draws[-1].startswith("reinforce rank 0/1: 8img"), run.describe()  # no total: it counts
    assert (work / "data" / "dataset_card.json").is_file()

    config = {"model": "mobileclip-s0", "data": "data", "out_dir": "run", "steps": 1, "batch_size": 2, "warmup": 1}
    (work / "run.json").write_text(json.dumps(config), encoding="utf-8")
    run = sandbox.python("-m", "trainer", "train", "run.json", cwd=work, timeout=600, **env)
    expect_ok(run, "training MobileCLIP-S0", "step 1: checkpoint")
    draws = progress_draws(run.output, "training")
    assert draws and "1/1" in draws[-1] and "loss=" in draws[-1], run.describe()
    assert (work / "run" / "curves.png").is_file() and (work / "run" / "metrics.jsonl").is_file()
    assert_offline(sandbox)
    assert_home_holds_only(sandbox)


def test_finetune_an_album(sandbox: Sandbox, trainer_library: Path) -> None:
    make_album(sandbox.root / "album")
    run = sandbox.python(
        "-m", "trainer", "finetune", "./album", "--steps", "3", cwd=sandbox.root, timeout=600,
        PHOTOSEEK_HOME=str(trainer_library),
    )  # fmt: skip
    expect_ok(run, "Fine-tuned 'starter' on album 'album'", "accuracy", "Installed 'starter-album'")
    draws = progress_draws(run.output, "training")
    assert draws and "3/3" in draws[-1], run.describe()
    assert (trainer_library / "models" / "starter-album" / "model_card.json").is_file()
    # The app's kind of fine-tune (README: `--text-only`), with its default text anchor, as a user types it.
    run = sandbox.python(
        "-m", "trainer", "finetune", "./album", "--text-only", "--steps", "3", "--name", "words", cwd=sandbox.root,
        timeout=600, PHOTOSEEK_HOME=str(trainer_library),
    )  # fmt: skip
    expect_ok(run, "Fine-tuned 'starter' on album 'album'", "Installed 'words'")
    draws = progress_draws(run.output, "training")
    assert draws and "3/3" in draws[-1] and "loss=" in draws[-1], run.describe()
    card = json.loads((trainer_library / "models" / "words" / "model_card.json").read_text(encoding="utf-8"))
    assert card["architecture"]["finetune"]["text_only"] and card["provenance"]["loss"]["text_anchor"]["weight"] == 30
    assert_offline(sandbox)
    assert_home_holds_only(sandbox)


def test_import_a_mobileclip_checkpoint(sandbox: Sandbox, tmp_path: Path) -> None:
    # A stand-in for Apple's file: the official layout and name, golden-filled weights (no download here).
    checkpoint = sandbox.root / model_info("mobileclip-s0").checkpoint_file
    torch.save(build_filled(lambda: create_model("mobileclip-s0")).state_dict(), checkpoint)
    library = tmp_path / "library"
    env = {"PHOTOSEEK_HOME": str(library)}
    run = sandbox.python("-m", "trainer", "import", checkpoint.name, cwd=sandbox.root, timeout=600, **env)
    expect_ok(run, "recognised MobileCLIP-S0", "Installed MobileCLIP-S0 as model 'mobileclip-s0'")
    expect_ok(sandbox.python("-m", "core", "models", "verify", "mobileclip-s0", **env), "all")
    assert_offline(sandbox)
    assert_home_holds_only(sandbox)
    shutil.rmtree(library)  # 100+ MB of ONNX files: not kept in the test run's temporary folders


def test_import_a_mobileclip_checkpoint_with_core(sandbox: Sandbox, tmp_path: Path) -> None:
    # The route without torch (tests/core/test_checkpoint_import.py runs it with torch blocked): same stand-in file.
    checkpoint = sandbox.root / model_info("mobileclip-s0").checkpoint_file
    torch.save(build_filled(lambda: create_model("mobileclip-s0")).state_dict(), checkpoint)
    library = tmp_path / "library"
    env = {"PHOTOSEEK_HOME": str(library)}
    run = sandbox.python("-m", "core", "models", "import", checkpoint.name, "--activate", cwd=sandbox.root, **env)
    expect_ok(run, "recognised MobileCLIP-S0", "Installed MobileCLIP-S0 as model 'mobileclip-s0'", "now the active")
    expect_ok(sandbox.python("-m", "core", "models", "verify", "mobileclip-s0", **env), "all")
    assert_offline(sandbox)
    assert_home_holds_only(sandbox)
    shutil.rmtree(library)
