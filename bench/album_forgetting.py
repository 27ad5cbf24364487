"""What an album fine-tune teaches and what it forgets, per lever, through ``finetune`` as the CLI runs it.

    python bench/album_forgetting.py [--steps N] [--seed 0] [--teach-album | --album DIR --bank DIR] [--json OUT]

Album: label folders of real corpus photos (tests/photo_corpus.py) grouped under made-up words (the groups of
bench/train_efficiency.py with at least 3 photos here), half of each label held out. With ``--teach-album``: the
app's teach album instead (bench/teach_from_app.py: 4 concepts x 15 photos made from the PyPI photos, a fifth of each
held out as the app does). Generic bank: every other available corpus photo with its caption, so none is in the
album (set PHOTOSEEK_CORPUS_ROOTS, tools/fetch_corpus_roots.sh, for the full corpus). Or your own --album and --bank
(a folder of photos with ``<name>.txt`` captions). Each variant fine-tunes the starter from scratch in a fresh
library (the reinforced dataset is built once and reused) and reports, as core runs the installed packages:

* held-out album mAP (bare label as the query) and accuracy, before -> after;
* generic caption -> photo R@5 (the forgetting check, limit 0.01) and R@1 on the bank, before -> after;
* the top-5 generic-concept overlap with the base on the held-out album photos (the report's other forgetting
  figure, finer than R@5 on a small bank);
* steps trained (early stop), seconds.

Variants: ``reinforced`` (the default loss: labels contrastive, concept captions distilled from the stored
teacher embeddings), ``plain`` (no concept captions, no teacher), ``text_only`` (the image side stays the base's; its
label captions half-distilled towards the label prototypes and generic captions held by the text anchor, the
default), ``text_only_unanchored`` (the same without the anchor, ``--anchor 0``), ``text_only_contrastive`` (without
the anchor and with labels learnt contrastively only, ``lam`` 0; with ``--lr 1e-4`` the text-only default before),
and each with the early stop on the forgetting check (``+stop``). With a small bank one photo moves R@5 by
1/photos: read the figures with the photo counts printed beside them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import cpu_name  # noqa: E402
from bench.teach_from_app import CONCEPTS, make_photos  # noqa: E402
from bench.train_efficiency import GROUPS, starter_package  # noqa: E402
from core.model_store import ModelStore  # noqa: E402
from tests.photo_corpus import all_photos, available_photos, materialize  # noqa: E402
from trainer.finetune.evaluate import retrieval  # noqa: E402
from trainer.finetune.forgetting import read_generic_bank  # noqa: E402
from trainer.finetune.options import FinetuneOptions  # noqa: E402
from trainer.finetune.pipeline import finetune  # noqa: E402

MIN_PER_LABEL = 3
MAX_PER_LABEL = 4  # the rest go to the bank: with 17 corpus photos here, 4 per label leaves it the 6 it needs
VARIANTS: dict[str, dict] = {
    "reinforced": {"early_stop": False},
    "plain": {"early_stop": False, "use_syn": False},
    "text_only": {"early_stop": False, "text_only": True},
    "text_only_unanchored": {
        "early_stop": False,
        "text_only": True,
        "anchor": 0.0,
    },  # before the anchor was its default
    "text_only_contrastive": {"early_stop": False, "text_only": True, "lam": 0.0, "anchor": 0.0},  # before lam 0.5
    "reinforced+stop": {"early_stop": True},
    "plain+stop": {"early_stop": True, "use_syn": False},
    "text_only+stop": {"early_stop": True, "text_only": True},
}


def make_album_and_bank(dest: Path) -> tuple[Path, Path]:
    """The corpus groups with enough photos here as the album (at most 4 each); all other available photos, captioned,
    as the bank."""
    have = {p.name for p in available_photos()}
    used: set[str] = set()
    for label, names in GROUPS.items():
        chosen = [n for n in names.split() if n in have][:MAX_PER_LABEL]
        if len(chosen) >= MIN_PER_LABEL:
            materialize(dest / "album" / label, chosen, max_side=512)
            used.update(chosen)
    write_bank(dest / "bank", sorted(have - used))
    return dest / "album", dest / "bank"


def make_teach_album_and_bank(dest: Path) -> tuple[Path, Path]:
    """The app's teach album (15 photos per concept) and, as the bank, every available photo none of it comes from."""
    (dest / "photos").mkdir()
    for concept, paths in make_photos(dest / "photos", per_concept=15).items():
        (dest / "album" / concept).mkdir(parents=True)
        for path in paths:
            path.rename(dest / "album" / concept / path.name)
    used = {name for names in CONCEPTS.values() for name in names}
    write_bank(dest / "bank", sorted({p.name for p in available_photos()} - used))
    return dest / "album", dest / "bank"


def write_bank(dest: Path, names: list[str]) -> None:
    """The named corpus photos with their captions beside them (``<name>.txt``)."""
    captions = {p.name: p.caption for p in all_photos()}
    for name, path in materialize(dest, names, max_side=512).items():
        path.with_suffix(".txt").write_text(captions[name] + "\n", encoding="utf-8")


def bank_recall(store: ModelStore, model_id: str, bank) -> dict[str, float]:
    """R@1 and R@5 of caption queries over the bank's photos, as core runs the installed package."""
    package = store.load(model_id)
    queries = package.embed_texts(bank.captions, as_query=True)
    return retrieval(package.embed_images(bank.images), queries, list(range(len(bank.captions))), ks=(1, 5))


def run_variant(name: str, album: Path, bank_dir: Path, cache: Path, args: argparse.Namespace, bank) -> dict:
    """One fine-tune of the starter in a fresh library that shares the reinforced-dataset cache."""
    with tempfile.TemporaryDirectory(prefix=f"album-forgetting-{name}-") as tmp:
        library = Path(tmp)
        (library / "models").mkdir()
        (library / "models" / "starter").symlink_to(starter_package(), target_is_directory=True)
        (library / "cache").symlink_to(cache, target_is_directory=True)
        options = FinetuneOptions(
            steps=args.steps, lr=args.lr, val_fraction=args.val_fraction, seed=args.seed, generic_bank=bank_dir,
            model_id="tuned", teachers=[],
            **{**VARIANTS[name], **({"anchor": args.anchor} if args.anchor is not None else {})},
        )  # fmt: skip
        torch.manual_seed(args.seed)
        start = time.perf_counter()
        report = finetune(album, library, options)
        seconds = time.perf_counter() - start
        store = ModelStore(library)
        check = report.forgetting
        return {
            "album_mAP": [report.before["mAP"], report.after["mAP"]],
            "album_accuracy": [report.before["accuracy"], report.after["accuracy"]],
            "generic_R@5": [check.before, check.after],
            "generic_R@1": [
                bank_recall(store, "starter", bank)["recall@1"],
                bank_recall(store, "tuned", bank)["recall@1"],
            ],
            "concept_overlap@5": report.generic["generic_overlap@5"],
            "forgets": check.forgets,
            "steps": report.steps,
            "early_stop": report.early_stop,
            "seconds": round(seconds, 1),
            "train_s": round(report.timings.get("train_s", 0.0), 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, help="optimiser steps (default: the starter's, 300)")
    parser.add_argument("--lr", type=float, help="learning rate (default: the starter's, 1e-4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the training")
    parser.add_argument("--anchor", type=float, help="text-anchor weight for every variant (default: each variant's)")
    parser.add_argument("--teach-album", action="store_true", help="the app's 60-photo teach album")
    parser.add_argument("--val-fraction", type=float, help="share held out per label (default 0.5; 0.2, the app's, "
                        "with --teach-album)")  # fmt: skip
    parser.add_argument("--album", type=Path, help="your own album (needs --bank)")
    parser.add_argument("--bank", type=Path, help="your own generic bank: photos with <name>.txt captions")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of the variants")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    if (args.album is None) != (args.bank is None) or (args.album and args.teach_album):
        parser.error("--album and --bank go together, and without --teach-album")
    if args.val_fraction is None:
        args.val_fraction = FinetuneOptions.val_fraction if args.teach_album else 0.5
    with tempfile.TemporaryDirectory(prefix="album-forgetting-") as tmp:
        if args.album:
            album, bank_dir = args.album, args.bank
        else:
            album, bank_dir = (make_teach_album_and_bank if args.teach_album else make_album_and_bank)(Path(tmp))
        bank = read_generic_bank(bank_dir)
        cache = Path(tmp) / "cache"
        cache.mkdir()
        results = {
            "cpu": f"{cpu_name()}, {torch.get_num_threads()} torch threads",
            "bank_photos": len(bank.images),
            "album": str(album.name),
            "lr": args.lr,
            "variants": {},
        }
        for name in args.variants.split(","):
            results["variants"][name] = run_variant(name, album, bank_dir, cache, args, bank)
            print(f"{name}: {results['variants'][name]}", file=sys.stderr, flush=True)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report(r: dict) -> None:
    print(f"CPU: {r['cpu']}; generic bank: {r['bank_photos']} photos outside the album; lr {r['lr'] or 'default'}")
    print(f"{'variant':<18}{'mAP before':>11}{'after':>7}{'gain':>7}{'R@5 before':>12}{'after':>7}{'drop':>7}"
          f"{'R@1 before':>12}{'after':>7}{'ovl@5':>7}{'steps':>8}{'train s':>9}  verdict")  # fmt: skip
    for name, v in r["variants"].items():
        (mb, ma), (gb, ga), (g1b, g1a) = v["album_mAP"], v["generic_R@5"], v["generic_R@1"]
        stop = v["early_stop"] or {}
        steps = f"{v['steps']}" + (f"->{stop['kept_step']}" if stop.get("stopped") else "")
        print(f"{name:<18}{mb:>11.3f}{ma:>7.3f}{ma - mb:>+7.3f}{gb:>12.3f}{ga:>7.3f}{gb - ga:>+7.3f}"
              f"{g1b:>12.3f}{g1a:>7.3f}{v['concept_overlap@5']:>7.3f}{steps:>8}{v['train_s']:>9.1f}  "
              f"{'forgets' if v['forgets'] else 'keeps'}")  # fmt: skip


if __name__ == "__main__":
    main()
