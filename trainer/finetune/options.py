"""What ``finetune`` takes: its knobs, with the defaults the CLI and the app start from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trainer.finetune.forgetting import DEFAULT_LIMIT

TEXT_ONLY_LAMBDA = 0.5  # label-caption distillation weight of a text-only fine-tune (see label_lambda)


@dataclass
class FinetuneOptions:
    """Knobs of ``finetune``; the defaults fine-tune a 200-photo album on a 2-core CPU in a few minutes.

    ``lam`` / ``lam_syn`` are the paper's lambda (``w_kd = lam``, ``w_clip = 1 - lam``) for the real (label) captions
    and the synthetic (generic concept) captions. The recipe's lambda = 1 on the real captions cannot teach new words
    with the teachers' text embeddings: no teacher knows "Miso". The label captions' distillation targets are therefore
    each label's *prototype* (the mean teacher embedding of its training photos' stored augmentations,
    ``AlbumReinforcement.distill_caption_emb``), so ``lam > 0`` distils the teachers' nearest-prototype view of the
    labels. ``lam = None`` (the default) is ``label_lambda()``: a full fine-tune learns the labels contrastively (0:
    bench/train_efficiency.py measured no reliable speed or accuracy gain from 0.5 with prototypes on three album
    splits), a text-only one half-distils them (``TEXT_ONLY_LAMBDA``: with the photos fixed, the prototypes pull each
    label's text towards where its photos lie: on the app's teach album the held-out mAP gain rose from +0.26 to +0.36,
    and was no lower on two other splits, with the starter's text-only rate 5e-5 keeping as many everyday concepts;
    README, "Measured here"). The teachers are distilled on the synthetic captions (``lam_syn = 1``), which keeps the
    generic knowledge. ``anchor`` weighs the text anchor (``trainer.finetune.anchor``: generic captions held where
    the base put them); None is the base family's default (the starter's text-only fine-tunes: ``TEXT_ONLY_ANCHOR``,
    otherwise 0, no anchor). ``lr`` and ``steps`` default to the base family's values (starter: 1e-4, the usual BERT
    fine-tuning rate, 5e-5 text-only, and 300 steps; MobileCLIP: 3e-5 and 100 steps), with 10% warm-up. ``train_layers``
    top text layers train in both families; ``image_blocks`` trailing image trunk blocks train in a MobileCLIP base;
    ``text_only`` keeps the whole image side of the base (the card then says ``architecture.finetune.text_only``: photos
    embed as with the base). ``generic_bank`` (captioned photos outside the album, see ``forgetting``) turns on the
    forgetting check: ``activate`` is refused for a model whose generic recall@5 drops by more than ``max_forgetting``
    unless ``force``, and (``early_stop``) it is the training's stop criterion: training ends after two evaluations
    over the limit in a row (``forgetting.PATIENCE``), with the last weights within it.
    """

    base: str | None = None
    model_id: str | None = None
    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 32
    lr: float | None = None
    weight_decay: float = 0.05
    lam: float | None = None
    lam_syn: float = 1.0
    anchor: float | None = None
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

    def label_lambda(self) -> float:
        """The distillation weight on the label captions: ``lam`` when given, else ``TEXT_ONLY_LAMBDA`` for a
        text-only fine-tune and 0 (contrastive labels) for a full one."""
        if self.lam is not None:
            return self.lam
        return TEXT_ONLY_LAMBDA if self.text_only else 0.0
