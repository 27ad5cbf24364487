"""Reinforced album training vs plain fine-tuning vs online distillation, on one album and one step budget.

    python bench/train_efficiency.py [--steps 60] [--lrs 1e-4,3e-4,1e-3] [--dense-until 40] [--eval-every 10]
                                     [--min-overlap 0.8] [--album DIR] [--split-seed 0] [--json OUT]

Album: label folders of real photos from tests/photo_corpus.py (PyPI packages, plus the Debian ones when
PHOTOSEEK_CORPUS_ROOTS points at them), grouped by what they show under made-up label words, or your own --album.
Split 70/30 per label (--split-seed, default 0). Teacher: the starter package (the base); student: the album
student (top 2 MiniLM layers + image adapter). Measured in one run:

* held-out zero-shot accuracy after every step up to --dense-until, then every --eval-every steps, for
  - plain fine-tuning (lambda = 0, no teacher, label captions only: the standard baseline),
  - reinforced training as ``finetune`` runs it by default (label captions contrastive, concept captions distilled
    from the stored teacher embeddings),
  - reinforced with label prototypes (``lam`` 0.5: the label captions are also distilled, their teacher targets
    being each label's prototype, the mean teacher embedding of its training photos' stored augmentations),
  each at every learning rate of --lrs (warm-up 10% then cosine over --steps), plus the generic-concept agreement
  with the base at the end of each run;
* the steps-to-accuracy metric: plain's learning rate is the one whose best held-out accuracy within the budget is
  highest (ties: reached in fewer steps); that accuracy is the *level*, and S_plain the first step plain reaches
  it. A reinforced variant's S is the first step it reaches the level, at its fastest learning rate among those
  whose generic top-5 overlap with the base stays >= --min-overlap. Ratio = S_plain / S (the issue's goal: >= 5).
  Plain held to that same overlap constraint is reported too (``plain_keeping_overlap``): often it never gets
  there, i.e. plain reaches the level only by forgetting;
* step time: reinforced, plain CLIP (same captions, no distillation term; and label captions only), and online
  distillation, where the teacher embeds each step's augmented photos and captions instead of reading them.

With ~15 held-out photos one photo is 0.067 of accuracy: read the curves, not only the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.encoders import ModelPackage  # noqa: E402
from core.tagging import default_vocabulary  # noqa: E402
from tests.photo_corpus import available_photos, materialize  # noqa: E402
from trainer.finetune.album import read_album, split_album  # noqa: E402
from trainer.finetune.evaluate import agreement, concept_ranks  # noqa: E402
from trainer.finetune.reinforce import (  # noqa: E402
    CROP_SCALE,
    SYN_TEMPLATE,
    build_album_dataset,
    load_album_dataset,
)
from trainer.finetune.starter import (  # noqa: E402
    AlbumStudent,
    caption_tokens,
    load_base_text_encoder,
    student_data,
    val_evaluator,
)
from trainer.finetune.tuner import teacher_scale  # noqa: E402
from trainer.reinforce.augment import AugmentConfig, apply_params, sample_params  # noqa: E402
from trainer.reinforce.teachers import PackageTeacher  # noqa: E402
from trainer.train.config import TrainConfig  # noqa: E402
from trainer.train.distributed import DistInfo  # noqa: E402
from trainer.train.loop import _Forward, _loss, train  # noqa: E402
from trainer.train.optim import make_optimizer  # noqa: E402

# Groups of photos that show one kind of thing, under words no model knows (as a user's folder names would be).
GROUPS = {
    "fuzzballs": "chelsea_cat mandrill butterfly small_dog squirrel robin dragonfly two_dogs",
    "wanderings": "calm_lake lone_tree autumn_mountain forest_stream mountain_trail dandelions mountain_sunset",
    "downtown": "cobbled_street parking_notice road_sign no_parking_barriers shop_front hotel_building car_motion_blur",
    "nom": "coffee red_apple sliced_fruit orange_fruit fig_in_bowl",
    "junkdrawer": "circuit_board desk_objects grocery_boxes toys_and_shells paint_brushes wall_clock bird_ornament",
    "nonna": "handwritten_math book_page ancient_coins cameraman people_on_stairs",
    "kepler": "hubble_deep_field moon_surface retina_fundus aerial_farmland",
    "oldtown": "brick_wall chinese_pagoda rocket_launch_pad ornate_palace graffiti",
}


def make_album(dest: Path) -> Path:
    """Label folders of the available corpus photos; labels with fewer than 4 photos here are left out."""
    have = {p.name for p in available_photos()}
    for label, names in GROUPS.items():
        chosen = [n for n in names.split() if n in have]
        if len(chosen) >= 4:
            materialize(dest / label, chosen, max_side=512)
    return dest


def starter_package() -> Path:
    """The cached test starter package, built once when missing."""
    cache = Path(__file__).resolve().parent.parent / ".cache" / "test-models"
    if not (cache / "starter" / "model_card.json").is_file():
        from trainer.starter.build import build_starter

        build_starter(cache)
    return cache / "starter"


def new_student(base: ModelPackage) -> AlbumStudent:
    return AlbumStudent(load_base_text_encoder(base), base.dim, 2, teacher_scale(base))


def run_variant(name: str, base: ModelPackage, reinf, cfg: TrainConfig, evaluate, out: Path):
    """Train one variant from the base; returns the student and its held-out accuracy curve."""
    student = new_student(base)
    result = train(student, student_data(reinf, base, student), cfg, teachers=reinf.teachers, out_dir=out / name,
                   evaluate=evaluate)  # fmt: skip
    return student, [(r["step"], r["val_accuracy"]) for r in result.records if "val_accuracy" in r]


def scheduled(evaluate, dense_until: int, every: int, last: int):
    """``evaluate`` for a loop that calls it after every step: runs after each of the first ``dense_until`` steps,
    then every ``every`` steps and at the last one (the other calls return nothing)."""
    step = 0

    def wrapped(student) -> dict[str, float]:
        nonlocal step
        step += 1
        return evaluate(student) if step <= dense_until or step % every == 0 or step == last else {}

    return wrapped


def generic_agreement(student: AlbumStudent, base: ModelPackage, val_base: np.ndarray, vocabulary) -> dict:
    prompts = [SYN_TEMPLATE.format(v) for v in vocabulary]
    with torch.no_grad():
        texts = torch.nn.functional.normalize(student.encode_text(caption_tokens(base, prompts)), dim=-1).numpy()
        images = student.encode_image(torch.from_numpy(val_base)).numpy()
    return agreement(concept_ranks(val_base, base.embed_texts(prompts)), concept_ranks(images, texts))


class StepTimer:
    """One optimiser step of a variant at a time, so that variants can be timed interleaved (a shared machine's
    load then affects them alike). ``photos`` (sample key -> photo) turns on online distillation: the teacher
    augments and embeds each step's photos and captions instead of reading stored embeddings."""

    def __init__(self, base: ModelPackage, reinf, cfg: TrainConfig, photos: dict | None = None) -> None:
        self.student = new_student(base)
        self.table = student_data(reinf, base, self.student)
        self.optimizer = make_optimizer(self.student, cfg.lr, cfg.weight_decay)
        self.forward, self.info, self.cfg, self.reinf, self.photos = (
            _Forward(self.student),
            DistInfo(),
            cfg,
            reinf,
            photos,
        )
        self.teacher = PackageTeacher(base, logit_scale=teacher_scale(base)) if photos else None
        self.rng = np.random.default_rng(0)
        self.stream = self._batches()
        self.times: list[float] = []
        self.teacher_times: list[float] = []

    def _batches(self):
        epoch = 0
        while True:
            yield from self.table.batches(epoch, 0, self.cfg.batch_size, self.info, self.cfg.seed)
            epoch += 1

    def step(self) -> None:
        batch = next(self.stream)
        start = time.perf_counter()
        if self.teacher is not None:
            views = []
            for key in batch["key"]:
                photo = self.photos[key]
                params = sample_params(photo.width, photo.height, self.rng, AugmentConfig(scale=CROP_SCALE))
                views.append(apply_params(photo, params, self.teacher.resolution, self.teacher.interpolation))
            image_emb = torch.from_numpy(self.teacher.embed_views(views))
            ids = torch.cat([batch["text_key"], batch["syn_key"]])
            texts = torch.from_numpy(self.teacher.embed_texts([self.reinf.captions[int(i)] for i in ids]))
            real_emb, syn_emb = texts.split(len(views))
            # The student's frozen trunk is the base teacher, so its fresh output is also the student's input.
            batch.update(image=image_emb, image_emb=image_emb, text_emb=real_emb, syn_text_emb=syn_emb)
            self.teacher_times.append(time.perf_counter() - start)
        self.optimizer.zero_grad()
        _loss(self.forward, batch, self.cfg, self.reinf.teachers, self.info)["loss"].backward()
        self.optimizer.step()
        self.times.append(time.perf_counter() - start)


def time_steps(timers: dict[str, StepTimer], rounds: int = 10, per_round: int = 5) -> dict[str, dict]:
    """Median step time per variant, interleaved round-robin with the order rotating every round; each variant's
    first round is a warm-up and not counted."""
    order = list(timers.values())
    for r in range(rounds):
        for timer in order[r % len(order) :] + order[: r % len(order)]:
            for _ in range(per_round):
                timer.step()
    out = {}
    for name, timer in timers.items():
        entry = {"step_ms": round(statistics.median(timer.times[per_round:]) * 1000, 1)}
        if timer.teacher_times:
            entry["teacher_ms"] = round(statistics.median(timer.teacher_times[per_round:]) * 1000, 1)
        out[name] = entry
    return out


def steps_to(curve: list[tuple[int, float]], level: float) -> int | None:
    return next((step for step, acc in curve if acc >= level - 1e-9), None)


def peak(curve: list[tuple[int, float]]) -> tuple[float, int]:
    """The best accuracy of a curve and the first step that reaches it."""
    best = max(acc for _, acc in curve)
    return best, steps_to(curve, best)


def steps_metric(runs: dict[str, dict[float, dict]], min_overlap: float) -> dict:
    """The steps-to-accuracy comparison (see the module docstring) from ``runs[variant][lr]`` results."""
    plain_lr = min(
        runs["plain"], key=lambda lr: (-peak(runs["plain"][lr]["curve"])[0], peak(runs["plain"][lr]["curve"])[1])
    )
    level, plain_steps = peak(runs["plain"][plain_lr]["curve"])
    out = {"level": level, "plain": {"lr": plain_lr, "steps": plain_steps}}
    for name, by_lr in runs.items():
        steps, lr = _fastest_keeping(by_lr, level, min_overlap)
        key = "plain_keeping_overlap" if name == "plain" else name  # plain held to the reinforced runs' constraint
        out[key] = {"lr": lr, "steps": steps, "ratio": round(plain_steps / steps, 2) if steps else None}
    return out


def _fastest_keeping(by_lr: dict[float, dict], level: float, min_overlap: float) -> tuple[int | None, float | None]:
    """(first step reaching ``level``, learning rate) of the fastest run whose generic overlap stays >= min_overlap."""
    options = [(steps_to(r["curve"], level), lr) for lr, r in by_lr.items()
               if r["generic_overlap@5"] >= min_overlap - 1e-9 and steps_to(r["curve"], level) is not None]  # fmt: skip
    return min(options) if options else (None, None)


VARIANTS = ("plain", "reinforced", "reinforced_prototypes")


def variant_config(name: str, common: dict, lr: float) -> TrainConfig:
    """The loss of each variant; ``common`` holds the schedule and bookkeeping shared by all."""
    if name == "plain":
        return TrainConfig(**common, lr=lr, w_clip=1.0, w_kd=0.0, use_syn=False)
    if name == "plain_clip_both_captions":
        return TrainConfig(**common, lr=lr, w_clip=1.0, w_kd=0.0)
    if name == "reinforced":
        return TrainConfig(**common, lr=lr, w_clip=1.0, w_kd=0.0, syn_w_clip=0.0, syn_w_kd=1.0)
    if name == "reinforced_prototypes":
        return TrainConfig(**common, lr=lr, w_clip=0.5, w_kd=0.5, syn_w_clip=0.0, syn_w_kd=1.0)
    raise ValueError(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lrs", default="1e-4,3e-4,1e-3", help="learning rates every variant is trained with")
    parser.add_argument("--dense-until", type=int, default=40, help="evaluate after every step up to this one")
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--min-overlap", type=float, default=0.8, help="generic overlap a reinforced run must keep")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--album", type=Path, help="your own album (default: one made from the photo corpus)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the 70/30 train/held-out split")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    lrs = [float(x) for x in args.lrs.split(",")]
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="train-efficiency-") as tmp:
        tmp = Path(tmp)
        album_dir = args.album or make_album(tmp / "album")
        album, images = read_album(album_dir)
        train_photos, val_photos = split_album(album, 0.3, seed=args.split_seed)
        labels = album.labels
        base = ModelPackage(starter_package())
        vocabulary = default_vocabulary()
        start = time.perf_counter()
        build_album_dataset(train_photos, tmp / "data", [(base, teacher_scale(base))], vocabulary)
        reinforce_s = time.perf_counter() - start
        reinf = load_album_dataset(tmp / "data")
        val_base = base.embed_images([images[p.path] for p in val_photos])
        truth = [labels.index(p.label) for p in val_photos]
        evaluate = val_evaluator(base, val_base, truth, labels)
        batch = min(args.batch_size, len(train_photos))
        common = dict(steps=args.steps, batch_size=batch, weight_decay=0.05, warmup=max(1, args.steps // 10),
                      eval_every=1, log_every=1, checkpoint_every=0, progress=False, resume=False,
                      device="cpu")  # fmt: skip
        results = {"album": {"labels": len(labels), "train": len(train_photos), "validation": len(val_photos)},
                   "reinforce_dataset_s": round(reinforce_s, 2), "steps": args.steps, "batch": batch,
                   "min_overlap": args.min_overlap}  # fmt: skip
        results["base_val_accuracy"] = evaluate(new_student(base).eval())["val_accuracy"]
        runs: dict[str, dict[float, dict]] = {name: {} for name in VARIANTS}
        for name in VARIANTS:
            for lr in lrs:
                torch.manual_seed(0)
                when = scheduled(evaluate, args.dense_until, args.eval_every, args.steps)
                student, curve = run_variant(name, base, reinf, variant_config(name, common, lr), when, tmp / "runs")
                runs[name][lr] = {"curve": curve, **generic_agreement(student, base, val_base, vocabulary)}
        results["runs"] = {name: {str(lr): r for lr, r in by_lr.items()} for name, by_lr in runs.items()}
        results["steps_to_plain_best"] = steps_metric(runs, args.min_overlap)
        photos = {p.sha256: images[p.path] for p in train_photos}
        timed = ("reinforced", "reinforced_prototypes", "plain", "plain_clip_both_captions")
        timers = {name: StepTimer(base, reinf, variant_config(name, common, 1e-4)) for name in timed}
        results["step_time"] = time_steps(timers)
        # Timed on its own: onnxruntime's worker threads keep spinning after each teacher call and would slow
        # whichever variant ran next.
        online = {"online_distillation": StepTimer(base, reinf, variant_config("reinforced", common, 1e-4), photos)}
        results["step_time"].update(time_steps(online, rounds=3))
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report(r: dict) -> None:
    a = r["album"]
    print(f"album: {a['labels']} labels, {a['train']} training / {a['validation']} held-out photos; "
          f"{r['steps']} steps of batch {r['batch']}; reinforced dataset built in {r['reinforce_dataset_s']} s")  # fmt: skip
    print(f"held-out accuracy of the base: {r['base_val_accuracy']:.3f}")
    runs = r["runs"]
    columns = [(name, lr) for name in runs for lr in runs[name]]
    print("step " + "".join(f"{name[:13]:>14}" for name, _ in columns))
    print("  lr " + "".join(f"{float(lr):>14g}" for _, lr in columns))
    steps = [step for step, _ in runs[columns[0][0]][columns[0][1]]["curve"]]
    for i, step in enumerate(steps):
        print(f"{step:>4} " + "".join(f"{runs[name][lr]['curve'][i][1]:>14.3f}" for name, lr in columns))
    print("peak " + "".join(f"{max(acc for _, acc in runs[n][lr]['curve']):>14.3f}" for n, lr in columns))
    print("ovl5 " + "".join(f"{runs[n][lr]['generic_overlap@5']:>14.3f}" for n, lr in columns))
    print("top1 " + "".join(f"{runs[n][lr]['generic_top1_in_top5']:>14.3f}" for n, lr in columns))
    m = r["steps_to_plain_best"]
    print(f"plain's best held-out accuracy {m['level']:.3f}, first reached at step {m['plain']['steps']} "
          f"(lr {m['plain']['lr']:g})")  # fmt: skip
    for name, entry in m.items():
        if name in ("level", "plain"):
            continue
        if entry["steps"] is None:
            print(f"  {name}: never reaches it with generic overlap >= {r['min_overlap']}")
        else:
            print(f"  {name}: step {entry['steps']} (lr {entry['lr']:g}, generic overlap >= {r['min_overlap']}); "
                  f"steps ratio plain / {name} = {entry['ratio']:.2f}x")  # fmt: skip
    t = r["step_time"]
    for name, entry in t.items():
        extra = f"   (teacher part {entry['teacher_ms']:.1f} ms)" if "teacher_ms" in entry else ""
        print(f"{name:<26} step {entry['step_ms']:>7.1f} ms{extra}")
    rein = t["reinforced"]["step_ms"]
    print(f"reinforced / plain CLIP (same captions): {rein / t['plain_clip_both_captions']['step_ms']:.2f}x; "
          f"reinforced / plain (label captions only): {rein / t['plain']['step_ms']:.2f}x; "
          f"online distillation / reinforced: {t['online_distillation']['step_ms'] / rein:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
