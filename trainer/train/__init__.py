"""Multi-modal reinforced training (MobileCLIP, docs/mobileclip-spec.md §9) and album fine-tuning.

General training: ``loss`` (the reinforced loss), ``optim`` (AdamW groups, warm-up + cosine), ``loop`` (the loop:
accumulation, clipping, bf16, EMA, exact resume, DDP), ``data`` (batch sources), ``distributed``, ``state``
(checkpoints, RNG, EMA), ``metrics`` (JSONL + PNG), ``config`` and ``run`` (``python -m trainer train CONFIG``).

Album fine-tuning (``python -m trainer finetune ./album``): ``album`` (validation, split), ``album_reinforce``
(the album's reinforced dataset via ``trainer.reinforce``), ``finetune`` (the shared pipeline), ``evaluate``
(before/after metrics); per base family: ``starter_tuner`` + ``album_student`` + ``album_export`` (the starter) and
``mobileclip_finetune`` + ``mobileclip_student`` (MobileCLIP bases, rebuilt from the checkpoint their card keeps).
``cli`` registers ``train`` and ``finetune``.
Importing this package does not import torch; its modules do.
"""
