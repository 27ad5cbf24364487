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
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.encoders import ModelPackage
from core.model_card_types import (
    AlbumRecord,
    Architecture,
    BaseRecord,
    EarlyStopRecord,
    FinetuneProvenance,
    FinetuneRecord,
    SplitRecord,
    TeacherRecord,
)
from core.model_store import ModelStore
from core.package_writer import finalize_package, install_package, staging_dir
from core.tagging import default_vocabulary
from trainer.finetune.album import Album, AlbumPhoto, read_album, split_album
from trainer.finetune.anchor import TextAnchor, anchor_captions
from trainer.finetune.evaluate import album_metrics
from trainer.finetune.forgetting import (
    ForgettingCheck,
    ForgettingStop,
    GenericBank,
    concept_agreement,
    forgetting_check,
    keep_within_limit,
    read_generic_bank,
)
from trainer.finetune.lineage import finetune_name, lineage
from trainer.finetune.options import FinetuneOptions
from trainer.finetune.reinforce import AlbumReinforcement, build_album_dataset, cache_key, load_album_dataset
from trainer.finetune.report import FinetuneReport
from trainer.finetune.selection import default_base, make_tuner, new_model_id, teacher_models, training_steps
from trainer.finetune.tuner import Evaluate, Log, Tuner, keep_base_image_side, teacher_scale
from trainer.train.config import TrainConfig
from trainer.train.distributed import DistInfo, pick_device
from trainer.train.loop import TrainResult, train

PHASES = ("album", "reinforce", "evaluate", "train", "export")  # what ``finetune`` tells its progress listener
Progress = Callable[[str, int, int], None]


@dataclass
class _Run:
    """What the steps of one fine-tune share: its inputs, the models it uses, and what it has measured so far."""

    options: FinetuneOptions
    log: Log
    tell: Progress
    store: ModelStore
    album: Album
    bank: GenericBank | None
    base: ModelPackage
    model_id: str
    tuner: Tuner
    train_photos: list[AlbumPhoto]
    val_photos: list[AlbumPhoto]
    val_images: list[Image.Image]
    teachers: list[ModelPackage]
    vocabulary: list[str]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return self.album.labels

    @property
    def truth(self) -> list[int]:
        return [self.labels.index(p.label) for p in self.val_photos]


@dataclass
class _Reinforced:
    """The album's reinforced dataset: where it is, its cache key, and whether an earlier run built it."""

    data: AlbumReinforcement
    folder: Path
    key: str
    reused: bool


@dataclass
class _Trained:
    """What training made: the loop's result, its config, the early stop's record (None: no early stop) and the
    text anchor (its weight and caption count; None: no anchor)."""

    result: TrainResult
    cfg: TrainConfig
    early: dict | None
    anchor: dict | None = None


@dataclass
class _Installed:
    """The installed package and its measures, run by core as the app runs them."""

    package_dir: Path
    after: dict
    generic: dict
    forgetting: ForgettingCheck | None


def finetune(
    album_dir: Path,
    library: Path,
    options: FinetuneOptions | None = None,
    log: Log = lambda _m: None,
    progress: Progress | None = None,
) -> FinetuneReport:
    """Fine-tune the base model on ``album_dir`` and install the result in ``library``; returns a FinetuneReport.

    ``progress(phase, done, total)`` hears where the run is: ``PHASES`` in order, with counts for the photos
    reinforced and the training steps (0, 0 for the phases without them).
    Raises AlbumError for an album that cannot be used, FinetuneError / ModelPackageError for model problems,
    ValueError for an option out of range.
    """
    options = options or FinetuneOptions()
    if options.anchor is not None and options.anchor < 0:
        raise ValueError(f"the text anchor's weight must be 0 (none) or more, got {options.anchor}")
    started = time.perf_counter()
    run = _start(Path(album_dir), Path(library), options, log, progress or (lambda _phase, _done, _total: None))
    reinforced = _reinforce(run)
    run.tell("evaluate", 0, 0)
    mark = time.perf_counter()
    val_base = run.base.embed_images(run.val_images)
    base = run.base
    before = album_metrics(
        val_base, base.embed_texts, lambda q: base.embed_texts(q, as_query=True), run.truth, run.labels
    )
    run.timings["evaluate_base_s"] = time.perf_counter() - mark
    trained = _train(run, reinforced, val_base)
    installed = _install(run, reinforced, trained, before, val_base)
    forgetting = installed.forgetting
    refused = options.activate and forgetting is not None and forgetting.forgets and not options.force
    activated = options.activate and not refused
    if activated:
        run.store.set_active(run.model_id)
    album, result = run.album, trained.result
    return FinetuneReport(
        model_id=run.model_id, package_dir=installed.package_dir, base_id=base.id, album=album.root.resolve().name,
        labels=run.labels, train_count=len(run.train_photos), val_count=len(run.val_photos), skipped=album.skipped,
        teachers=[t.id for t in run.teachers], steps=result.step, before=before, after=installed.after,
        generic=installed.generic, seconds=time.perf_counter() - started, activated=activated,
        reused_dataset=reinforced.reused, curves=result.plot, timings=run.timings, forgetting=forgetting,
        activation_refused=refused, early_stop=trained.early, text_only=options.text_only,
    )  # fmt: skip


def _start(album_dir: Path, library: Path, options: FinetuneOptions, log: Log, tell: Progress) -> _Run:
    """Read the album and the bank, load the base and its tuner, split the album and pick the teachers."""
    tell("album", 0, 0)
    album, images = read_album(album_dir)  # a bad album fails before any model loads
    bank = read_generic_bank(options.generic_bank) if options.generic_bank is not None else None
    store = ModelStore(library)
    base = store.load(options.base or default_base(store))
    model_id = new_model_id(options, base.id, album, store)
    mark = time.perf_counter()
    tuner = make_tuner(base, store.library, options, log)  # a base we cannot train fails before any teacher runs
    load_base_s = time.perf_counter() - mark
    train_photos, val_photos = split_album(album, options.val_fraction, options.seed)
    # Only the validation photos stay decoded: the reinforcement reads the training photos from disk.
    val_images = [images[p.path] for p in val_photos]
    log(f"album: {len(album.labels)} labels, {len(train_photos)} training and {len(val_photos)} validation photos")
    for path, reason in album.skipped:
        log(f"skipped {path}: {reason}")
    teachers = teacher_models(store, base, options.teachers, log)
    return _Run(
        options=options, log=log, tell=tell, store=store, album=album, bank=bank, base=base, model_id=model_id,
        tuner=tuner, train_photos=train_photos, val_photos=val_photos, val_images=val_images, teachers=teachers,
        vocabulary=default_vocabulary(), timings={"load_base_s": load_base_s},
    )  # fmt: skip


def _reinforce(run: _Run) -> _Reinforced:
    """Build the album's reinforced dataset, or reuse the library's cached one for the same photos and teachers."""
    options, store, tell = run.options, run.store, run.tell
    settings = dict(augmentations=options.augmentations, synthetic=options.synthetic, seed=options.seed)
    vocab_hash = hashlib.sha256("\n".join(run.vocabulary).encode()).hexdigest()
    key = cache_key(run.train_photos, run.teachers, vocabulary=vocab_hash, **settings)
    dataset_dir = store.library / "cache" / "reinforced" / key
    reused = options.reuse and (dataset_dir / "dataset_card.json").is_file()
    mark = time.perf_counter()
    if reused:
        run.log(f"reusing the reinforced dataset {dataset_dir}")
    else:
        run.log(f"building the reinforced dataset in {dataset_dir}")
        pairs = [(t, teacher_scale(t)) for t in run.teachers]
        total = len(run.train_photos)
        done = [0]

        def photos_done(count: int) -> None:
            done[0] += count
            tell("reinforce", done[0], total)

        tell("reinforce", 0, total)
        build_album_dataset(
            run.train_photos, dataset_dir, pairs, run.vocabulary, log=run.log, on_images=photos_done, **settings
        )  # fmt: skip
    reinf = load_album_dataset(dataset_dir)
    run.timings["reinforce_s"] = time.perf_counter() - mark
    return _Reinforced(data=reinf, folder=dataset_dir, key=key, reused=reused)


def _train(run: _Run, reinforced: _Reinforced, val_base: np.ndarray) -> _Trained:
    """Train the tuner's student on the reinforced dataset, with the forgetting check as early stop when there is a
    generic bank; the student ends on the CPU in eval mode, with the weights to export."""
    options, tuner = run.options, run.tuner
    mark = time.perf_counter()
    device = pick_device(options.device)
    weight = options.anchor if options.anchor is not None else tuner.default_anchor
    captions = anchor_captions(run.vocabulary, run.labels) if weight > 0 else []
    student, data = tuner.student_data(reinforced.data, reinforced.folder, device, run.log, captions)
    rows = torch.arange(len(reinforced.data.captions), len(reinforced.data.captions) + len(captions))
    anchor = TextAnchor(student, rows, weight, seed=options.seed) if captions else None
    evaluate = tuner.evaluator(run.val_images, val_base, run.truth, run.labels)
    stop = None
    if run.bank is not None and options.early_stop:
        bank = run.bank
        stop = ForgettingStop(student, tuner.generic_evaluator(bank.images, bank.captions), options.max_forgetting)
        evaluate = _joined(evaluate, stop.evaluate)
    run.timings["prepare_student_s"] = time.perf_counter() - mark
    batch = min(options.batch_size, len(data))
    steps = training_steps(options, len(data), batch, tuner.default_steps)
    lr = options.lr if options.lr is not None else tuner.default_lr
    work = run.store.library / "cache" / "finetune" / run.model_id
    shutil.rmtree(work, ignore_errors=True)  # a fresh run: never resume another album's checkpoint
    cfg = TrainConfig(
        out_dir=str(work), steps=steps, batch_size=batch, lr=lr, weight_decay=options.weight_decay,
        warmup=max(1, steps // 10), w_clip=1.0 - options.label_lambda(), w_kd=options.label_lambda(),
        syn_w_clip=1.0 - options.lam_syn, syn_w_kd=options.lam_syn, use_syn=options.use_syn, seed=options.seed,
        device=options.device, progress=options.progress, log_every=1, checkpoint_every=0,
        eval_every=max(1, steps // 10), resume=False,
    )  # fmt: skip
    mark = time.perf_counter()
    info = DistInfo(device=device)  # one process, on the GPU when there is one (device 'auto')
    run.tell("train", 0, steps)
    result = train(
        student, data, cfg, teachers=reinforced.data.teachers, info=info, evaluate=evaluate, stop_when=stop,
        log=run.log, on_step=lambda step: run.tell("train", step, steps), regularise=anchor,
    )  # fmt: skip
    early = (
        {"stopped": stop.stopped, "kept_step": keep_within_limit(stop, result, run.log)} if stop is not None else None
    )
    run.timings["train_s"] = time.perf_counter() - mark
    student.cpu().eval()
    (work / "last.pt").unlink(missing_ok=True)  # the run is complete; the package (and its checkpoint) is the result
    anchored = {"weight": weight, "captions": len(captions)} if anchor is not None else None
    return _Trained(result=result, cfg=cfg, early=early, anchor=anchored)


def _card_records(run: _Run, reinforced: _Reinforced, trained: _Trained) -> tuple[FinetuneProvenance, Architecture]:
    """The new card's (provenance, architecture): where the model comes from and what trained."""
    options, base, album, labels = run.options, run.base, run.album, run.labels
    cfg, result, early, reinf, key = trained.cfg, trained.result, trained.early, reinforced.data, reinforced.key
    train_photos, val_photos, tuner = run.train_photos, run.val_photos, run.tuner
    provenance = FinetuneProvenance(
        built_by="python -m trainer finetune",
        base=BaseRecord(id=base.id, files=base.card.files),
        lineage=lineage(base),
        album=AlbumRecord(name=album.root.resolve().name, sha256=album.digest(), labels=tuple(labels)),
        split=SplitRecord(train=len(train_photos), validation=len(val_photos), seed=options.seed),
        steps=result.step,
        early_stop=EarlyStopRecord(**early) if early is not None else None,
        teachers=tuple(TeacherRecord(id=t.name, scale=t.scale) for t in reinf.teachers),
        reinforced_dataset=key,
        loss={
            "real": vars(cfg.real_weights),
            "synthetic": vars(cfg.syn_weights) if cfg.use_syn else None,
            **({"text_anchor": trained.anchor} if trained.anchor else {}),
        },
        config=cfg.to_dict(),
        torch=torch.__version__,
    )
    finetune = FinetuneRecord(base=base.id, family=tuner.family, **tuner.describe(), labels=tuple(labels))
    return provenance, dataclasses.replace(base.card.architecture, finetune=finetune)


def _install(run: _Run, reinforced: _Reinforced, trained: _Trained, before: dict, val_base: np.ndarray) -> _Installed:
    """Export the student, measure the package with core, write its card and install it beside the base.

    Nothing stays behind when this fails: the staged package and what the tuner wrote outside it are removed."""
    base, tuner, bank, val_images = run.base, run.tuner, run.bank, run.val_images
    cards = {model.id: model.card for model in run.store.list()}
    mark = time.perf_counter()
    run.tell("export", 0, 0)
    staged = staging_dir(run.store.install_dir, run.model_id)
    try:
        provenance, architecture = _card_records(run, reinforced, trained)
        card = tuner.write_package(
            staged, model_id=run.model_id, name=finetune_name(base, cards, run.labels),
            architecture=architecture, provenance=provenance, check_images=val_images,
        )  # fmt: skip
        if run.options.text_only:
            card = keep_base_image_side(staged, card, base)
        run.timings["export_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        tuned = ModelPackage(staged, verify=False)
        val_new = tuned.embed_images(val_images)
        after = album_metrics(
            val_new, tuned.embed_texts, lambda q: tuned.embed_texts(q, as_query=True), run.truth, run.labels
        )
        generic = concept_agreement(base, tuned, val_base, val_new, run.vocabulary)
        forgetting = forgetting_check(base, tuned, bank, run.options.max_forgetting) if bank is not None else None
        run.timings["evaluate_new_s"] = time.perf_counter() - mark
        losses = trained.result.losses()
        metrics = {
            "album_validation": {"before": before, "after": after, "photos": len(run.val_photos)},
            "generic_concepts": generic,
            **({"generic_retrieval": dataclasses.asdict(forgetting)} if forgetting is not None else {}),
            "final_training_loss": losses[-1] if losses else None,
        }
        finalize_package(staged, dataclasses.replace(card, metrics=metrics))
        package_dir = install_package(staged, run.store.install_dir, run.model_id)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        tuner.abort()
        raise
    tuner.commit()
    return _Installed(package_dir=package_dir, after=after, generic=generic, forgetting=forgetting)


def _joined(first: Evaluate, second: Evaluate) -> Evaluate:
    return lambda student: {**first(student), **second(student)}


__all__ = ["PHASES", "finetune"]
