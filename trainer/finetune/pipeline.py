"""``python -m trainer finetune ./album``: teach a model the user's labels without forgetting what it knew.

Steps: validate the album and split it (stratified, seeded); build (or reuse from the library's cache) the
album's reinforced dataset with the base and the other installed models as teachers; evaluate the base; train
the student with the reinforced loss; export the package; evaluate it with core exactly as the app will run it;
install it next to the base; optionally activate it.

What trains and how the package is written depends on the base's family, through a *tuner*: the starter family
(``starter``: the base graph + a linear adapter, the fine-tuned MiniLM) or MobileCLIP (``mobileclip``:
the top of both towers, rebuilt from the checkpoint the base's card records, reparameterized and exported).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.encoders import ModelPackage
from core.errors import ModelPackageError
from core.model_store import ModelStore
from core.package_writer import finalize_package, install_package, staging_dir
from core.tagging import default_vocabulary
from trainer.finetune.album import Album, AlbumPhoto, read_album, split_album
from trainer.finetune.evaluate import agreement, album_metrics, concept_ranks
from trainer.finetune.forgetting import (
    DEFAULT_LIMIT,
    GENERIC_KEY,
    ForgettingCheck,
    ForgettingStop,
    GenericBank,
    generic_recall,
    read_generic_bank,
)
from trainer.finetune.mobileclip import MobileCLIPTuner, is_mobileclip
from trainer.finetune.reinforce import SYN_TEMPLATE, build_album_dataset, cache_key, load_album_dataset
from trainer.finetune.starter import StarterTuner
from trainer.finetune.tuner import Evaluate, FinetuneError, Log, Tuner, keep_base_image_side, teacher_scale
from trainer.train.config import TrainConfig
from trainer.train.distributed import DistInfo, pick_device
from trainer.train.loop import TrainResult, train

PHASES = ("album", "reinforce", "evaluate", "train", "export")  # what ``finetune`` tells its progress listener
Progress = Callable[[str, int, int], None]


@dataclass
class FinetuneOptions:
    """Knobs of ``finetune``; the defaults fine-tune a 200-photo album on a 2-core CPU in a few minutes.

    ``lam`` / ``lam_syn`` are the paper's lambda (``w_kd = lam``, ``w_clip = 1 - lam``) for the real (label)
    captions and the synthetic (generic concept) captions. The recipe's lambda = 1 on the real captions cannot
    teach new words with the teachers' text embeddings: no teacher knows "Miso". The label captions' distillation
    targets are therefore each label's *prototype* (the mean teacher embedding of its training photos' stored
    augmentations, ``AlbumReinforcement.distill_caption_emb``), so ``lam > 0`` distils the teachers'
    nearest-prototype view of the labels. By default the labels are learnt contrastively (``lam = 0``:
    bench/train_efficiency.py measured no reliable speed or accuracy gain from ``lam = 0.5`` with prototypes on
    three album splits) and the teachers are distilled on the synthetic captions (``lam_syn = 1``), which keeps
    the generic knowledge (see the README for the measurements). ``lr`` and ``steps`` default to the base family's
    values (starter: 1e-4, the usual BERT fine-tuning rate, and 300 steps; MobileCLIP: 3e-5 and 100 steps), with
    10% warm-up. ``train_layers`` top text layers train in both families; ``image_blocks`` trailing image trunk
    blocks train in a MobileCLIP base; ``text_only`` keeps the whole image side of the base (the card then says
    ``architecture.finetune.text_only``: photos embed as with the base). ``generic_bank`` (captioned photos
    outside the album, see ``forgetting``) turns on the forgetting check: ``activate`` is refused for a model whose
    generic recall@5 drops by more than ``max_forgetting`` unless ``force``, and (``early_stop``) it is the
    training's stop criterion: training ends at the first evaluation over the limit, with the last weights within
    it.
    """

    base: str | None = None
    model_id: str | None = None
    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 32
    lr: float | None = None
    weight_decay: float = 0.05
    lam: float = 0.0
    lam_syn: float = 1.0
    use_syn: bool = True
    train_layers: int = 2
    image_blocks: int = 2
    text_only: bool = False
    augmentations: int = 4
    synthetic: int = 3
    teachers: Sequence[str] | None = None
    val_fraction: float = 0.2
    seed: int = 0
    activate: bool = False
    generic_bank: Path | None = None
    max_forgetting: float = DEFAULT_LIMIT
    force: bool = False
    early_stop: bool = True
    device: str = "auto"
    progress: bool = False
    reuse: bool = True


@dataclass
class FinetuneReport:
    """What ``finetune`` did, measured before and after on the validation photos."""

    model_id: str
    package_dir: Path
    base_id: str
    album: str
    labels: list[str]
    train_count: int
    val_count: int
    skipped: list[tuple[Path, str]]
    teachers: list[str]
    steps: int
    before: dict
    after: dict
    generic: dict
    seconds: float
    activated: bool
    reused_dataset: bool
    curves: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    forgetting: ForgettingCheck | None = None
    activation_refused: bool = False
    early_stop: dict | None = None
    text_only: bool = False  # the photos' embeddings are the base's: switching re-embeds nothing

    def to_dict(self) -> dict:
        """The report as plain JSON values (what ``finetune --progress-json`` prints last)."""
        forgetting = None
        if self.forgetting is not None:
            forgetting = {**dataclasses.asdict(self.forgetting), "drop": self.forgetting.drop}
            forgetting["forgets"] = self.forgetting.forgets
        return {
            "model_id": self.model_id, "package_dir": str(self.package_dir), "base_id": self.base_id,
            "album": self.album, "labels": self.labels, "train_count": self.train_count, "val_count": self.val_count,
            "skipped": [[str(path), reason] for path, reason in self.skipped], "teachers": self.teachers,
            "steps": self.steps, "before": self.before, "after": self.after, "generic": self.generic,
            "seconds": self.seconds, "activated": self.activated, "activation_refused": self.activation_refused,
            "forgetting": forgetting, "early_stop": self.early_stop, "timings": self.timings,
            "text_only": self.text_only,
        }  # fmt: skip

    def summary(self) -> str:
        """A plain-text before/after report."""
        lines = [
            f"Fine-tuned '{self.base_id}' on album '{self.album}': {len(self.labels)} labels, "
            f"{self.train_count} training / {self.val_count} validation photos, {self.steps} steps, "
            f"{self.seconds:.0f} s; teachers: {', '.join(self.teachers)}"
            + (" (reinforced dataset reused)" if self.reused_dataset else "")
        ]
        for path, reason in self.skipped:
            lines.append(f"  skipped {path}: {reason}")
        lines.append(f"  {'validation':<24}{'before':>8}{'after':>8}")
        for key in ("accuracy", "balanced_accuracy", "recall@1", "recall@5", "mAP"):
            lines.append(f"  {key:<24}{self.before[key]:>8.3f}{self.after[key]:>8.3f}")
        for label in self.labels:
            b, a = self.before["per_label"].get(label, float("nan")), self.after["per_label"].get(label, float("nan"))
            lines.append(f"    {label[:22]:<22}{b:>8.3f}{a:>8.3f}")
        lines.append("  generic concepts vs the base: " + ", ".join(f"{k} {v:.3f}" for k, v in self.generic.items()))
        lines.append(
            "  " + self.forgetting.summary()
            if self.forgetting is not None
            else "  forgetting check not run: give --generic-bank DIR (captioned photos outside the album)"
        )
        if self.early_stop and self.early_stop["stopped"]:
            lines.append(
                f"  early stop: generic R@5 fell over the limit at step {self.steps}; kept the weights of step "
                f"{self.early_stop['kept_step']}"
            )
        if self.curves is not None:
            lines.append(f"Training curves: {self.curves}")
        lines.append(
            f"Installed '{self.model_id}' in {self.package_dir}; '{self.base_id}' stays installed for rollback."
        )
        if self.activation_refused:
            lines.append(
                f"Not activated: '{self.model_id}' forgets more than the limit allows; '{self.base_id}' stays in use "
                "(--force activates it anyway)."
            )
        if self.activated and self.text_only:
            lines.append(
                f"'{self.model_id}' is now active; it shares the base's photo embeddings: nothing to re-embed."
            )
        elif self.activated:
            lines.append(
                f"'{self.model_id}' is now active: the library re-embeds with it when it indexes (search keeps the "
                "old model until that is done)."
            )
        else:
            lines.append(f"Use it with: python -m core models use {self.model_id}")
        return "\n".join(lines)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")[:40] or "album"


def _teachers(store: ModelStore, base: ModelPackage, wanted: Sequence[str] | None, log: Log) -> list[ModelPackage]:
    """The base first, then the other installed models (not earlier album fine-tunes, unless named)."""
    installed = {m.id: m for m in store.list()}
    if wanted is not None:
        unknown = sorted(set(wanted) - set(installed))
        if unknown:
            raise ModelPackageError(f"unknown teacher(s) {', '.join(unknown)}; installed: {', '.join(installed)}")
    out = [base]
    for model_id, model in installed.items():
        if model_id == base.id or (wanted is None and "finetune" in model.card.architecture):
            continue
        if wanted is not None and model_id not in wanted:
            continue
        try:
            out.append(ModelPackage(model.dir))
        except ModelPackageError as exc:
            log(f"not using '{model_id}' as a teacher: {exc}")
    return out


def _steps(options: FinetuneOptions, n_train: int, batch: int, default: int) -> int:
    if options.steps is not None:
        return options.steps
    if options.epochs is not None:
        return max(1, options.epochs * max(1, n_train // batch))
    return default


def _tuner(base: ModelPackage, library: Path, options: FinetuneOptions, log: Log) -> Tuner:
    """The family-specific part of fine-tuning ``base``; raises FinetuneError for a base that cannot be trained."""
    if is_mobileclip(base):
        return MobileCLIPTuner(
            base, library, image_blocks=options.image_blocks, text_layers=options.train_layers, log=log,
            text_only=options.text_only,
        )  # fmt: skip
    return StarterTuner(base, options.train_layers, text_only=options.text_only)


def _lineage(base: ModelPackage) -> list[dict]:
    """The chain of models this one descends from, oldest first, ending with its base."""
    earlier = base.card.provenance.get("lineage")
    checkpoint = base.card.provenance.get("checkpoint")
    album = base.card.provenance.get("album")
    return [*(earlier if isinstance(earlier, list) else []), {
        "id": base.id,
        "name": base.card.name,
        "built_by": base.card.provenance.get("built_by"),
        "checkpoint_sha256": checkpoint.get("sha256") if isinstance(checkpoint, dict) else None,
        "album": album.get("name") if isinstance(album, dict) else None,
    }]  # fmt: skip


def _default_base(store: ModelStore) -> str:
    """The active model, or, when that is itself an album fine-tune, the model it was fine-tuned from: running the
    command again re-trains from the same base instead of stacking fine-tunes (``--base`` can still stack them)."""
    active = store.find(store.active_id())
    parent = active.card.architecture.get("finetune", {}).get("base")
    installed = {m.id for m in store.list()}
    return parent if isinstance(parent, str) and parent in installed else active.id


def _model_id(options: FinetuneOptions, base_id: str, album: Album, store: ModelStore) -> str:
    model_id = options.model_id or f"{base_id}-{_slug(album.root.resolve().name)}"
    if model_id == base_id:
        raise FinetuneError(f"the fine-tuned model needs another id than its base '{base_id}'")
    for model in store.list():
        if model.id == model_id and "finetune" not in model.card.architecture:
            raise FinetuneError(f"'{model_id}' is an installed model that no fine-tune made; choose another --name")
    return model_id


def finetune(
    album_dir: Path,
    library: Path,
    options: FinetuneOptions | None = None,
    log: Log = lambda _m: None,
    progress: Progress | None = None,
):
    """Fine-tune the base model on ``album_dir`` and install the result in ``library``; returns a FinetuneReport.

    ``progress(phase, done, total)`` hears where the run is: ``PHASES`` in order, with counts for the photos
    reinforced and the training steps (0, 0 for the phases without them).
    Raises AlbumError for an album that cannot be used, FinetuneError / ModelPackageError for model problems.
    """
    options = options or FinetuneOptions()
    tell = progress or (lambda _phase, _done, _total: None)
    tell("album", 0, 0)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    album, images = read_album(Path(album_dir))  # a bad album fails before any model loads
    bank = read_generic_bank(options.generic_bank) if options.generic_bank is not None else None
    store = ModelStore(Path(library))
    base = store.load(options.base or _default_base(store))
    model_id = _model_id(options, base.id, album, store)
    mark = time.perf_counter()
    tuner = _tuner(base, store.library, options, log)  # a base we cannot train fails before any teacher runs
    timings["load_base_s"] = time.perf_counter() - mark
    train_photos, val_photos = split_album(album, options.val_fraction, options.seed)
    images = {p.path: images[p.path] for p in val_photos}  # the reinforcement reads training photos from disk
    labels = album.labels
    log(f"album: {len(labels)} labels, {len(train_photos)} training and {len(val_photos)} validation photos")
    for path, reason in album.skipped:
        log(f"skipped {path}: {reason}")

    teachers = _teachers(store, base, options.teachers, log)
    vocabulary = default_vocabulary()
    settings = dict(augmentations=options.augmentations, synthetic=options.synthetic, seed=options.seed)
    vocab_hash = hashlib.sha256("\n".join(vocabulary).encode()).hexdigest()
    key = cache_key(train_photos, teachers, vocabulary=vocab_hash, **settings)
    dataset_dir = store.library / "cache" / "reinforced" / key
    reused = options.reuse and (dataset_dir / "dataset_card.json").is_file()
    mark = time.perf_counter()
    if reused:
        log(f"reusing the reinforced dataset {dataset_dir}")
    else:
        log(f"building the reinforced dataset in {dataset_dir}")
        pairs = [(t, teacher_scale(t)) for t in teachers]
        done = [0]

        def photos_done(count: int) -> None:
            done[0] += count
            tell("reinforce", done[0], len(train_photos))

        tell("reinforce", 0, len(train_photos))
        build_album_dataset(
            train_photos, dataset_dir, pairs, vocabulary, log=log, on_images=photos_done, **settings
        )  # fmt: skip
    reinf = load_album_dataset(dataset_dir)
    timings["reinforce_s"] = time.perf_counter() - mark

    truth = [labels.index(p.label) for p in val_photos]
    tell("evaluate", 0, 0)
    mark = time.perf_counter()
    val_images = [images[p.path] for p in val_photos]
    val_base = base.embed_images(val_images)
    before = album_metrics(val_base, base.embed_texts, lambda q: base.embed_texts(q, as_query=True), truth, labels)
    timings["evaluate_base_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    device = pick_device(options.device)
    student, data = tuner.student_data(reinf, dataset_dir, device, log)
    evaluate = tuner.evaluator(val_images, val_base, truth, labels)
    stop = None
    if bank is not None and options.early_stop:
        stop = ForgettingStop(student, tuner.generic_evaluator(bank.images, bank.captions), options.max_forgetting)
        evaluate = _joined(evaluate, stop.evaluate)
    timings["prepare_student_s"] = time.perf_counter() - mark
    batch = min(options.batch_size, len(data))
    steps = _steps(options, len(data), batch, tuner.default_steps)
    lr = options.lr if options.lr is not None else tuner.default_lr
    work = store.library / "cache" / "finetune" / model_id
    shutil.rmtree(work, ignore_errors=True)  # a fresh run: never resume another album's checkpoint
    cfg = TrainConfig(
        out_dir=str(work), steps=steps, batch_size=batch, lr=lr, weight_decay=options.weight_decay,
        warmup=max(1, steps // 10), w_clip=1.0 - options.lam, w_kd=options.lam,
        syn_w_clip=1.0 - options.lam_syn, syn_w_kd=options.lam_syn, use_syn=options.use_syn, seed=options.seed,
        device=options.device, progress=options.progress, log_every=1, checkpoint_every=0,
        eval_every=max(1, steps // 10), resume=False,
    )  # fmt: skip
    mark = time.perf_counter()
    info = DistInfo(device=device)  # one process, on the GPU when there is one (device 'auto')
    tell("train", 0, steps)
    result = train(
        student, data, cfg, teachers=reinf.teachers, info=info, evaluate=evaluate, stop_when=stop, log=log,
        on_step=lambda step: tell("train", step, steps),
    )  # fmt: skip
    early = {"stopped": stop.stopped, "kept_step": _early_stop(stop, result, log)} if stop is not None else None
    timings["train_s"] = time.perf_counter() - mark
    student.cpu().eval()
    (work / "last.pt").unlink(missing_ok=True)  # the run is complete; the package (and its checkpoint) is the result

    mark = time.perf_counter()
    tell("export", 0, 0)
    staged = staging_dir(store.install_dir, model_id)
    try:
        provenance = {
            "built_by": "python -m trainer finetune",
            "base": {"id": base.id, "files": base.card.files},
            "lineage": _lineage(base),
            "album": {"name": album.root.resolve().name, "sha256": album.digest(), "labels": labels},
            "split": {"train": len(train_photos), "validation": len(val_photos), "seed": options.seed},
            "steps": result.step,
            **({"early_stop": early} if early is not None else {}),
            "teachers": [{"id": t.name, "scale": t.scale} for t in reinf.teachers],
            "reinforced_dataset": key,
            "loss": {"real": vars(cfg.real_weights), "synthetic": vars(cfg.syn_weights) if cfg.use_syn else None},
            "config": cfg.to_dict(),
            "torch": torch.__version__,
        }
        architecture = {
            **base.card.architecture,
            "finetune": {"base": base.id, "family": tuner.family, **tuner.describe(), "labels": labels},
        }
        card = tuner.write_package(
            staged, model_id=model_id, name=f"{base.card.name} + album '{album.root.resolve().name}'",
            architecture=architecture, provenance=provenance, check_images=val_images,
        )  # fmt: skip
        if options.text_only:
            card = keep_base_image_side(staged, card, base)
        timings["export_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        tuned = ModelPackage(staged, verify=False)
        val_new = tuned.embed_images(val_images)
        after = album_metrics(val_new, tuned.embed_texts, lambda q: tuned.embed_texts(q, as_query=True), truth, labels)
        generic = _generic(base, tuned, val_base, val_new, vocabulary)
        forgetting = _forgetting(base, tuned, bank, options.max_forgetting) if bank is not None else None
        timings["evaluate_new_s"] = time.perf_counter() - mark
        metrics = {
            "album_validation": {"before": before, "after": after, "photos": len(val_photos)},
            "generic_concepts": generic,
            **({"generic_retrieval": dataclasses.asdict(forgetting)} if forgetting is not None else {}),
            "final_training_loss": result.losses()[-1] if result.losses() else None,
        }
        finalize_package(staged, dataclasses.replace(card, metrics=metrics))
        package_dir = install_package(staged, store.install_dir, model_id)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        tuner.abort()
        raise
    tuner.commit()
    refused = options.activate and forgetting is not None and forgetting.forgets and not options.force
    activated = options.activate and not refused
    if activated:
        store.set_active(model_id)
    return FinetuneReport(
        model_id=model_id, package_dir=package_dir, base_id=base.id, album=album.root.resolve().name, labels=labels,
        train_count=len(train_photos), val_count=len(val_photos), skipped=album.skipped,
        teachers=[t.id for t in teachers], steps=result.step, before=before, after=after, generic=generic,
        seconds=time.perf_counter() - started, activated=activated, reused_dataset=reused,
        curves=result.plot, timings=timings, forgetting=forgetting, activation_refused=refused,
        early_stop=early, text_only=options.text_only,
    )  # fmt: skip


def _generic(
    base: ModelPackage,
    tuned: ModelPackage,
    val_base: np.ndarray,
    val_new: np.ndarray,
    vocabulary: Sequence[str],
) -> dict:
    """Forgetting check on the validation photos: generic concept rankings of the new model vs the base."""
    prompts = [SYN_TEMPLATE.format(v) for v in vocabulary]
    base_top = concept_ranks(val_base, base.embed_texts(prompts))
    new_top = concept_ranks(val_new, tuned.embed_texts(prompts))
    return agreement(base_top, new_top)


def _joined(first: Evaluate, second: Evaluate) -> Evaluate:
    return lambda student: {**first(student), **second(student)}


def _early_stop(stop: ForgettingStop, result: TrainResult, log: Log) -> int:
    """After an early stop, put back the last weights within the limit; returns the step they come from."""
    checked = [r["step"] for r in result.records if GENERIC_KEY in r]
    kept = checked[stop.kept_evaluation - 1] if stop.kept_evaluation else 0
    if stop.stopped:
        stop.restore()
        log(f"generic recall@5 fell over the limit at step {result.step}: keeping the weights of step {kept}")
    return kept


def _forgetting(base: ModelPackage, tuned: ModelPackage, bank: GenericBank, limit: float) -> ForgettingCheck:
    """Generic recall@5 of the base and the fine-tune on the bank, both run by core as the app runs them."""
    before = generic_recall(base.embed_images(bank.images), lambda q: base.embed_texts(q, as_query=True), bank.captions)
    after = generic_recall(
        tuned.embed_images(bank.images), lambda q: tuned.embed_texts(q, as_query=True), bank.captions
    )
    return ForgettingCheck(photos=len(bank.images), before=before, after=after, limit=limit)


__all__ = ["AlbumPhoto", "FinetuneOptions", "FinetuneReport", "finetune"]
