"""What ``finetune`` gives back: the before/after report, as JSON values (``--progress-json``) and as text."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from trainer.finetune.forgetting import ForgettingCheck


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
