"""The dataset card of a reinforced dataset (``dataset_card.json``): what was stored, by which teachers, and the
sha256 of every shard. The card is read back as untrusted input too: shard paths must stay inside the dataset.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from core.errors import PhotoSeekError
from core.model_card import sha256_file
from trainer.reinforce.safetar import ShardError, check_member_name
from trainer.reinforce.shards import is_finite_float

CARD_FILE = "dataset_card.json"
FORMAT = "photoseek-reinforced-dataset"
FORMAT_VERSION = 1
# Apple's DataCompDR (v1): two ViT-L/14 teachers, 768-d each, teacher logit scale 100
# (docs/mobileclip-spec.md §9.2, §9.3).
DATACOMPDR_TEACHERS = (("ViT-L-14/openai", 768, 100.0), ("ViT-L-14/datacomp_xl_s13b_b90k", 768, 100.0))


class DatasetCardError(PhotoSeekError):
    """A dataset card that is missing, malformed or does not match its shards."""


def package_versions() -> dict[str, str]:
    """Versions of what produced the data (recorded in the card)."""
    versions = {"python": platform.python_version()}
    for name in ("photoseek", "numpy", "pillow", "torch", "onnxruntime"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def teacher_columns(teachers: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Teacher entries with their ``columns`` [start, stop) in the concatenated embedding, in ensemble order."""
    start, out = 0, []
    for teacher in teachers:
        out.append({**teacher, "columns": [start, start + int(teacher["dim"])]})
        start += int(teacher["dim"])
    return out


def write_card(dataset_dir: Path, card: dict[str, Any]) -> Path:
    """Write the card atomically (temporary file, then rename)."""
    path = Path(dataset_dir) / CARD_FILE
    tmp = path.with_name(f"{CARD_FILE}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _check(condition: bool, where: Path, message: str) -> None:
    if not condition:
        raise DatasetCardError(f"{where}: {message}")


def validate_card(card: Any, where: Path) -> dict[str, Any]:
    """Check the fields readers rely on; raises DatasetCardError naming the problem."""
    _check(isinstance(card, dict), where, "the dataset card is not a JSON object")
    _check(card.get("format") == FORMAT, where, f"not a reinforced-dataset card (format {card.get('format')!r})")
    _check(
        card.get("format_version") == FORMAT_VERSION,
        where,
        f"card version {card.get('format_version')!r} is not supported",
    )
    teachers = card.get("teachers")
    _check(isinstance(teachers, list) and bool(teachers), where, "the card lists no teachers")
    start = 0
    for teacher in teachers:
        _check(
            isinstance(teacher, dict) and isinstance(teacher.get("id"), str), where, f"bad teacher entry {teacher!r}"
        )
        dim = teacher.get("dim")
        _check(
            isinstance(dim, int) and not isinstance(dim, bool) and dim > 0, where, f"teacher {teacher['id']}: bad dim"
        )
        _check(is_finite_float(teacher.get("logit_scale")), where, f"teacher {teacher['id']}: bad logit_scale")
        _check(teacher.get("columns") == [start, start + dim], where, f"teacher {teacher['id']}: columns do not add up")
        start += dim
    _check(card.get("embedding_dim") == start, where, "embedding_dim is not the sum of the teachers' dims")
    shards = card.get("shards")
    _check(isinstance(shards, list), where, "the card has no shard list")
    for shard in shards:
        _check(isinstance(shard, dict) and isinstance(shard.get("file"), str), where, f"bad shard entry {shard!r}")
        try:
            _check(
                check_member_name(shard["file"]) == shard["file"], where, f"shard path {shard['file']!r} is not plain"
            )
        except ShardError as exc:
            raise DatasetCardError(f"{where}: shard path refused: {exc}") from None
        sha = shard.get("sha256")
        _check(isinstance(sha, str) and len(sha) == 64, where, f"shard {shard['file']}: bad sha256")
    return card


def read_card(dataset_dir: Path) -> dict[str, Any]:
    """Read and validate ``dataset_card.json`` of a reinforced dataset folder."""
    path = Path(dataset_dir) / CARD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetCardError(f"{dataset_dir}: not a reinforced dataset (no {CARD_FILE})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetCardError(f"{path}: cannot read the dataset card: {exc}") from exc
    return validate_card(data, path)


def shard_paths(dataset_dir: Path, card: dict[str, Any]) -> list[Path]:
    """Absolute paths of the card's shards, in card order."""
    return [Path(dataset_dir) / shard["file"] for shard in card["shards"]]


def teacher_slices(card: dict[str, Any]) -> list[tuple[str, slice, float]]:
    """(teacher id, its columns in ``image_emb``/``text_emb``, its logit scale), in ensemble order."""
    return [(t["id"], slice(t["columns"][0], t["columns"][1]), float(t["logit_scale"])) for t in card["teachers"]]


def verify_shards(dataset_dir: Path, card: dict[str, Any]) -> list[str]:
    """Problems found comparing every shard with the card's sha256 (empty when all match)."""
    problems = []
    for shard, path in zip(card["shards"], shard_paths(dataset_dir, card), strict=True):
        if not path.is_file():
            problems.append(f"{shard['file']}: missing")
        elif sha256_file(path) != shard["sha256"]:
            problems.append(f"{shard['file']}: sha256 differs from the card (modified or damaged)")
    return problems


def datacompdr_card(shards: Sequence[Path], *, augmentations: int = 30, synthetic_captions: int = 5) -> dict[str, Any]:
    """A card describing Apple's DataCompDR shards (joined with their images), for ``teacher_slices`` and readers.

    No hashes are known for such shards, so the entries carry none and ``verify_shards`` cannot be used on it.
    """
    teachers = teacher_columns(
        [{"id": i, "dim": d, "logit_scale": s, "kind": "external"} for i, d, s in DATACOMPDR_TEACHERS]
    )
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "layout": "datacompdr-v1",
        "teachers": teachers,
        "embedding_dim": sum(t["dim"] for t in teachers),
        "augmentations": augmentations,
        "synthetic_captions": synthetic_captions,
        "captioner": {"id": "coca_ViT-L-14", "note": "open_clip coca_ViT-L-14 (docs/mobileclip-spec.md §9.2)"},
        "shards": [{"file": str(p), "sha256": None, "samples": None} for p in shards],
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
