"""Synthetic-caption plug-ins (CoCa-style captioners) for dataset reinforcement.

A captioner is any object with an ``id``, ``describe()`` and ``caption(images, count)``. Installed captioners
register under the entry-point group ``photoseek.captioners`` (the entry point names a zero-argument factory).
None ships with PhotoSeek: without one, a reinforced dataset has S = 0 synthetic captions and its card says so.
Captions are never invented: asking for S > 0 with no captioner is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from core.errors import PhotoSeekError

ENTRY_POINT_GROUP = "photoseek.captioners"
NO_CAPTIONER_NOTE = (
    "no captioner is installed, so the dataset has no synthetic captions (S = 0); none were invented. "
    f"Install a captioner plug-in (entry-point group '{ENTRY_POINT_GROUP}') to add them."
)


class CaptionerError(PhotoSeekError):
    """No usable captioner, or a captioner returned something unusable."""


@runtime_checkable
class Captioner(Protocol):
    """Generates ``count`` captions per image."""

    id: str

    def caption(self, images: Sequence[Image.Image], count: int) -> list[list[str]]:
        """``count`` captions for each RGB image, in image order."""
        ...

    def describe(self) -> dict[str, Any]:
        """Model name, weights and sampling settings, for the dataset card."""
        ...


def installed_captioners() -> list[str]:
    """Names of the captioner plug-ins installed in this environment."""
    return sorted(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))


def load_captioner(name: str | None = None) -> Captioner | None:
    """The captioner plug-in ``name`` (default: the only/first installed one); None when none is installed."""
    points = {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    if not points:
        if name is not None:
            raise CaptionerError(f"captioner {name!r} is not installed (no captioner plug-ins are)")
        return None
    if name is None:
        name = sorted(points)[0]
    if name not in points:
        raise CaptionerError(f"captioner {name!r} is not installed (installed: {', '.join(sorted(points))})")
    captioner = points[name].load()()
    if not isinstance(captioner, Captioner):
        raise CaptionerError(f"captioner plug-in {name!r} does not provide id, caption() and describe()")
    return captioner


def run_captioner(captioner: Captioner, images: Sequence[Image.Image], count: int) -> list[list[str]]:
    """Captions from ``captioner``, checked: exactly ``count`` non-empty strings per image."""
    captions = captioner.caption(images, count)
    if len(captions) != len(images):
        raise CaptionerError(
            f"captioner {captioner.id} returned {len(captions)} caption lists for {len(images)} images"
        )
    for row in captions:
        if len(row) != count or not all(isinstance(text, str) and text.strip() for text in row):
            raise CaptionerError(f"captioner {captioner.id} must return {count} non-empty captions per image")
    return [[text.strip() for text in row] for row in captions]


def resolve_caption_count(requested: int | None, captioner: Captioner | None) -> int:
    """S: as requested, 5 (DataCompDR) by default with a captioner, and 0 without one."""
    if captioner is None:
        if requested:
            raise CaptionerError(
                f"--captions {requested} needs a captioner, and none is installed. {NO_CAPTIONER_NOTE}"
            )
        return 0
    if requested is not None and requested < 0:
        raise CaptionerError("the number of synthetic captions cannot be negative")
    return 5 if requested is None else requested
