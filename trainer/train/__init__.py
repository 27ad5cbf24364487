"""Multi-modal reinforced training (MobileCLIP, docs/mobileclip-spec.md §9): the generic training loop.

``loss`` (the reinforced loss), ``optim`` (AdamW groups, warm-up + cosine), ``loop`` (the loop: accumulation,
clipping, bf16, EMA, exact resume, DDP), ``data`` (batch sources), ``distributed``, ``state`` (checkpoints, RNG,
EMA), ``metrics`` (JSONL + PNG), ``config`` and ``run`` (``python -m trainer train CONFIG``); ``cli`` registers
``train``. Album fine-tuning, which drives this loop, lives in ``trainer.finetune``.
Importing this package does not import torch; its modules do.
"""
