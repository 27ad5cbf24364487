"""Multi-modal reinforced training (MobileCLIP, spec section 9) and album fine-tuning.

``loss`` the reinforced loss, ``optim`` AdamW groups and the schedule, ``loop`` the training loop (DDP, resume,
EMA, metrics), ``config`` the config file, ``finetune`` the ``python -m trainer finetune ./album`` pipeline.
Importing this package does not import torch; its modules do.
"""
