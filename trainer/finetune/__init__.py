"""Album fine-tuning (``python -m trainer finetune ./album``): teach a model the user's labels.

``album`` (validation, stratified split), ``reinforce`` (the album's reinforced dataset via ``trainer.reinforce``,
fed the split in memory), ``evaluate`` (before/after metrics), ``pipeline`` (the shared steps), ``tuner`` (the
``Tuner`` protocol a base family implements), one module per family holding its student and export: ``starter``
(the starter and its fine-tunes) and ``mobileclip`` (MobileCLIP bases, rebuilt from the checkpoint their card
keeps: ``mobileclip_source``, trained as ``mobileclip_student``); ``cli`` registers ``finetune``. The generic training loop they drive is ``trainer.train``.
Importing this package does not import torch; its modules do.
"""
