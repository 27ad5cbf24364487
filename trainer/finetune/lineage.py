"""What a fine-tune descends from: the chain of models recorded in its card (``provenance.lineage``)."""

from __future__ import annotations

from core.encoders import ModelPackage


def lineage(base: ModelPackage) -> list[dict]:
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
