"""What an album needs before a model can be fine-tuned on it: at least two labels (concepts), each with at least
two photos (one to train on, one to check). The trainer's album check and the app's Teach dialog both read these
rules from here, because the app never imports the trainer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

MIN_LABELS = 2  # so the model learns what tells the labels apart
MIN_PER_LABEL = 2  # one to train on and one to check


@dataclass(frozen=True)
class AlbumShortfall:
    """How far an album is from being usable: photos missing per label, and labels missing."""

    photos: dict[str, int] = field(default_factory=dict)  # label -> photos still needed
    labels: int = 0  # more labels (with MIN_PER_LABEL photos each) still needed

    @property
    def ready(self) -> bool:
        return not self.photos and not self.labels

    def message(self) -> str:
        """What to add, in plain words ('' when nothing is missing)."""
        parts = [f"{n} more photo{'s' if n > 1 else ''} of “{label}”" for label, n in sorted(self.photos.items())]
        if self.labels:
            many = "concepts" if self.labels > 1 else "concept"
            parts.append(f"{self.labels} more {many} with at least {MIN_PER_LABEL} photos each")
        if not parts:
            return ""
        return (
            f"Needs {' and '.join(parts)}: each concept needs at least {MIN_PER_LABEL} photos, and at least "
            f"{MIN_LABELS} concepts are taught together, so the model learns what tells them apart."
        )


def album_shortfall(counts: Mapping[str, int]) -> AlbumShortfall:
    """What an album with ``counts`` photos per label lacks (labels with no photos count as not there)."""
    few = {label: MIN_PER_LABEL - n for label, n in counts.items() if 0 < n < MIN_PER_LABEL}
    usable = sum(1 for n in counts.values() if n >= MIN_PER_LABEL)
    return AlbumShortfall(photos=few, labels=max(0, MIN_LABELS - usable - len(few)))
