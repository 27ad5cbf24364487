"""Album fine-tuning (``python -m trainer finetune ./album``): teach a model the user's labels.

``album`` (validation, stratified split), ``reinforce`` (the album's reinforced dataset via ``trainer.reinforce``,
fed the split in memory), ``evaluate`` (before/after metrics), ``forgetting`` (the forgetting checks and the early
stop), ``pipeline`` (the shared steps: it takes ``options`` and gives a ``report``), ``selection`` (the base, the
teachers, the tuner and the new model's id), ``lineage`` (what a fine-tune descends from), ``tuner`` (the ``Tuner``
protocol a base family implements), one module per family holding its student and export: ``starter`` (the starter
and its fine-tunes) and ``mobileclip`` (MobileCLIP bases, rebuilt from the checkpoint their card keeps:
``mobileclip_source``, trained as ``mobileclip_student``); ``cli`` registers ``finetune``. The generic training loop
they drive is ``trainer.train``. Importing this package does not import torch; its modules do.
"""
