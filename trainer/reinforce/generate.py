"""Sharded generation of a reinforced dataset, across processes and hosts (torchrun), resumable.

Each source unit becomes one output shard ``shards/<unit>.tar`` plus a sidecar ``<unit>.json`` (sha256, sample
count, skipped photos) written after the shard is in place: a shard with its sidecar is finished and is skipped
when the run is started again. Rank r of W (``RANK``/``WORLD_SIZE`` from torchrun) takes units r, r + W, ...;
a sample's augmentations and caption template depend only on the seed and its key, so any split of the work
gives the same shards. When every rank is done (a gloo barrier), rank 0 writes the dataset card. Memory stays
bounded: images are decoded, augmented and embedded ``batch_size`` at a time and streamed into the shard.
Across hosts, the output folder must be on a shared file system.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.errors import ImageDecodeError, PhotoSeekError
from core.model_card import sha256_file
from trainer.reinforce import card as cards
from trainer.reinforce.augment import AugmentConfig, AugParams, apply_params, sample_params, sample_rng
from trainer.reinforce.captioners import NO_CAPTIONER_NOTE, Captioner, resolve_caption_count, run_captioner
from trainer.reinforce.safetar import SampleError
from trainer.reinforce.shards import ShardWriter, aug_json, decode_image, encode_npz
from trainer.reinforce.sources import Source, SourceError, SourceSample
from trainer.reinforce.teachers import Teacher, check_ensemble, ensemble_texts

SHARD_DIR = "shards"
RUN_FILE = "reinforce_run.json"
MAX_LISTED_SKIPS = 1000

Log = Callable[[str], None]


class ReinforceError(PhotoSeekError):
    """Generation cannot start or finish (bad settings, a different run in the output folder, missing shards)."""


@dataclass(frozen=True)
class ReinforceConfig:
    """Settings of one reinforcement run. ``captions`` None: 5 with a captioner, 0 without."""

    augmentations: int = 2
    captions: int | None = None
    seed: int = 0
    batch_size: int = 32
    max_side: int | None = 1024
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class RunResult:
    """What this process did: shards written and found finished, samples written, and the card if it wrote one."""

    out_dir: Path
    written: list[int] = field(default_factory=list)
    already_done: list[int] = field(default_factory=list)
    samples: int = 0
    card_path: Path | None = None


@dataclass
class _Prepared:
    sample: SourceSample
    data: bytes
    ext: str
    image: Image.Image


def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) outside torchrun."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def shard_name(unit: int) -> str:
    """File name of a unit's shard inside ``shards/``."""
    return f"{unit:06d}.tar"


def _sidecar(out_dir: Path, unit: int) -> Path:
    return out_dir / SHARD_DIR / f"{unit:06d}.json"


def _finished(out_dir: Path, unit: int) -> dict[str, Any] | None:
    """The sidecar of a finished shard, or None when the shard must be (re)made."""
    try:
        info = json.loads(_sidecar(out_dir, unit).read_text(encoding="utf-8"))
        shard = out_dir / SHARD_DIR / shard_name(unit)
        return info if shard.stat().st_size == info["bytes"] else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _check_run(out_dir: Path, run: dict[str, Any]) -> dict[str, Any]:
    """Record the run's settings, or check that the output folder holds the same run; returns the recorded one."""
    path = out_dir / RUN_FILE
    if path.is_file():
        recorded = json.loads(path.read_text(encoding="utf-8"))
        mine = json.loads(json.dumps(run))
        differ = sorted(k for k in set(mine) | set(recorded) if k != "created_at" and mine.get(k) != recorded.get(k))
        if differ:
            raise ReinforceError(
                f"{out_dir} holds a run with different settings ({', '.join(differ)}); use a new --out folder "
                "or the same settings to resume"
            )
        return recorded
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(path, run)  # ranks racing here write the same content
    return run


def _views(prepared: list[_Prepared], params: list[list[AugParams]], size: int, interp: str) -> list[Image.Image]:
    return [apply_params(p.image, aug, size, interp) for p, augs in zip(prepared, params, strict=True) for aug in augs]


class _UnitWriter:
    """Reinforces the samples of one unit and streams them into its shard."""

    def __init__(
        self, teachers: Sequence[Teacher], config: ReinforceConfig, captions: int, captioner: Captioner | None
    ):
        self.teachers = list(teachers)
        self.config = config
        self.captions = captions
        self.captioner = captioner

    def flush(self, writer: ShardWriter, batch: list[_Prepared]) -> None:
        if not batch:
            return
        k = self.config.augmentations
        params = [
            [sample_params(p.image.width, p.image.height, rng, self.config.augment) for _ in range(k)]
            for p in batch
            for rng in [sample_rng(self.config.seed, p.sample.key, "augment")]
        ]
        syn = (
            run_captioner(self.captioner, [p.image for p in batch], self.captions)
            if self.captions
            else [[]] * len(batch)
        )
        views: dict[tuple[int, str], list[Image.Image]] = {}
        parts = []
        for teacher in self.teachers:  # teachers that share resolution and interpolation share the views
            setting = (teacher.resolution, teacher.interpolation)
            if setting not in views:
                views[setting] = _views(batch, params, *setting)
            parts.append(teacher.embed_views(views[setting]))
        image_emb = np.concatenate(parts, axis=1).reshape(len(batch), k, -1)
        # No real caption (an uncaptioned photo with a captioner): the first synthetic caption stands in for it,
        # and the sample's json says so, since DataCompDR's layout always has a real caption first.
        real = [p.sample.caption or extra[0] for p, extra in zip(batch, syn, strict=True)]
        texts = [text for caption, extra in zip(real, syn, strict=True) for text in [caption, *extra]]
        text_emb = ensemble_texts(self.teachers, texts).reshape(len(batch), 1 + self.captions, -1)
        for i, p in enumerate(batch):
            meta = {"uid": p.sample.key, "sha256": hashlib.sha256(p.data).hexdigest(), "label": p.sample.label}
            meta["origin"] = p.sample.origin
            if not p.sample.caption:
                meta["real_caption"] = False
            writer.add(
                p.sample.key,
                {
                    p.ext: p.data,
                    "txt": real[i].encode(),
                    "json": json.dumps(meta, separators=(",", ":")).encode(),
                    "syn.json": json.dumps({"syn_text": syn[i]}, separators=(",", ":")).encode(),
                    "paug.json": aug_json(params[i]),
                    "npz": encode_npz({"image_emb": image_emb[i], "text_emb": text_emb[i]}),
                },
            )

    def write(self, source: Source, unit: int, out_dir: Path, on_images: Callable[[int], None]) -> dict[str, Any]:
        shard = out_dir / SHARD_DIR / shard_name(unit)
        for stale in shard.parent.glob(f"{shard.name}.tmp-*"):  # left by an interrupted run: only we own this unit
            stale.unlink(missing_ok=True)
        writer = ShardWriter(shard)
        skipped: list[dict[str, str]] = []
        errors: list[str] = []
        batch: list[_Prepared] = []
        try:
            try:
                for sample in source.samples(unit):
                    if not self.captions and not sample.caption:
                        skipped.append({"origin": sample.origin, "reason": "no real caption and no synthetic captions"})
                        continue
                    try:
                        data, ext = sample.load()
                        batch.append(_Prepared(sample, data, ext, decode_image(data)))
                    except (ImageDecodeError, SampleError) as exc:
                        skipped.append({"origin": sample.origin, "reason": str(exc)})
                        continue
                    if len(batch) >= self.config.batch_size:
                        self.flush(writer, batch)
                        on_images(len(batch))
                        batch = []
            except SourceError as exc:  # a corrupt input shard: keep what was read, report the rest
                errors.append(str(exc))
            self.flush(writer, batch)
            on_images(len(batch))
            samples = writer.samples
            writer.close()
        except BaseException:
            writer.abort()
            raise
        info = {
            "unit": unit,
            "file": f"{SHARD_DIR}/{shard.name}",
            "sha256": sha256_file(shard),
            "bytes": shard.stat().st_size,
            "samples": samples,
            "skipped": skipped,
            "errors": errors,
        }
        _write_json(_sidecar(out_dir, unit), info)
        return info


def _barrier(timeout: timedelta) -> None:
    """Wait for every rank (a gloo process group, created here and removed again when torchrun made none)."""
    import torch.distributed as dist

    created = not dist.is_initialized()
    if created:
        dist.init_process_group("gloo", timeout=timeout)
    try:
        dist.barrier()
    finally:
        if created:
            dist.destroy_process_group()


def run_description(
    source: Source, teachers: Sequence[Teacher], config: ReinforceConfig, captions: int, captioner: Captioner | None
) -> dict[str, Any]:
    """Everything that decides the shards' contents; a resumed run must match it."""
    import time

    return {
        "source": source.describe(),
        "units": source.num_units,
        "teachers": [t.describe() for t in teachers],
        "augmentations": config.augmentations,
        "augmentation": config.augment.to_json(),
        "synthetic_captions": captions,
        "captioner": captioner.describe() if captioner is not None else None,
        "seed": config.seed,
        "max_side": config.max_side,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def finalize(out_dir: Path, run: dict[str, Any]) -> Path:
    """Write the dataset card from the finished shards' sidecars; ReinforceError if any shard is missing."""
    infos = [_finished(out_dir, unit) for unit in range(run["units"])]
    missing = [unit for unit, info in enumerate(infos) if info is None]
    if missing:
        raise ReinforceError(f"{len(missing)} shard(s) are not finished (first: {missing[0]}); run again to resume")
    skipped = [s for info in infos for s in info["skipped"]]
    teachers = cards.teacher_columns(run["teachers"])
    card = {
        "format": cards.FORMAT,
        "format_version": cards.FORMAT_VERSION,
        "layout": "datacompdr-v1",
        "generator": "python -m trainer reinforce",
        "created_at": run["created_at"],
        "teachers": teachers,
        "embedding_dim": sum(t["dim"] for t in teachers),
        "augmentations": run["augmentations"],
        "augmentation": run["augmentation"],
        "synthetic_captions": run["synthetic_captions"],
        "captioner": run["captioner"],
        "captioner_note": NO_CAPTIONER_NOTE if run["captioner"] is None else "",
        "source": run["source"],
        "seed": run["seed"],
        "max_side": run["max_side"],
        "samples": sum(info["samples"] for info in infos),
        "skipped_count": len(skipped),
        "skipped": skipped[:MAX_LISTED_SKIPS],
        "errors": [e for info in infos for e in info["errors"]],
        "shards": [{k: info[k] for k in ("file", "sha256", "samples", "bytes")} for info in infos],
        "versions": cards.package_versions(),
    }
    return cards.write_card(out_dir, card)


def _advance(bar: Any, on_images: Callable[[int], None] | None) -> Callable[[int], None]:
    """What a unit writer calls for each photo done: the bar and the listener, either of them optional."""

    def advance(count: int) -> None:
        if bar is not None:
            bar.update(count)
        if on_images is not None:
            on_images(count)

    return advance


def reinforce(
    source: Source,
    out_dir: Path,
    teachers: Sequence[Teacher],
    config: ReinforceConfig = ReinforceConfig(),
    *,
    captioner: Captioner | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    progress: bool = False,
    on_images: Callable[[int], None] | None = None,
    log: Log | None = None,
    barrier_timeout: timedelta = timedelta(hours=24),
) -> RunResult:
    """Reinforce this rank's share of ``source`` into ``out_dir``; rank 0 writes the card once all ranks are done.

    ``progress`` shows a tqdm bar; ``on_images`` hears how many more photos were done (another progress display).
    """
    env_rank, env_world, _ = dist_env()
    rank = env_rank if rank is None else rank
    world_size = env_world if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ReinforceError(f"rank {rank} is not in 0..{world_size - 1}")
    if config.augmentations < 1 or config.batch_size < 1:
        raise ReinforceError("--augmentations and the batch size must be at least 1")
    check_ensemble(teachers)
    captions = resolve_caption_count(config.captions, captioner)
    out_dir = Path(out_dir)
    _check_run(out_dir, run_description(source, teachers, config, captions, captioner))
    (out_dir / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    result = RunResult(out_dir)
    mine = list(range(rank, source.num_units, world_size))
    todo = [u for u in mine if _finished(out_dir, u) is None]
    result.already_done = [u for u in mine if u not in todo]
    if log and result.already_done:
        log(f"rank {rank}: {len(result.already_done)} shard(s) already finished, skipping them")
    writer = _UnitWriter(teachers, config, captions, captioner)
    bar = None  # a tqdm without a total has no truth value (bool() raises): compare with None only
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="img", desc=f"reinforce rank {rank}/{world_size}", position=rank, dynamic_ncols=True)
    try:
        for unit in todo:
            info = writer.write(source, unit, out_dir, _advance(bar, on_images))
            result.written.append(unit)
            result.samples += info["samples"]
            if log and (info["skipped"] or info["errors"]):
                log(f"shard {unit}: {len(info['skipped'])} photo(s) skipped, {len(info['errors'])} error(s)")
    finally:
        if bar is not None:
            bar.close()
    if world_size > 1:
        _barrier(barrier_timeout)
    if rank == 0:
        recorded = json.loads((out_dir / RUN_FILE).read_text(encoding="utf-8"))  # the one every rank checked against
        result.card_path = finalize(out_dir, recorded)
    return result
