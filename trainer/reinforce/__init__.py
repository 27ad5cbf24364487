"""Multi-modal dataset reinforcement (MobileCLIP's DataCompDR recipe, docs/mobileclip-spec.md §9).

Teachers' knowledge is paid for once and stored with the data: per image, K augmentations as parameters, every
teacher's embedding of every augmented view, real and synthetic captions and their teacher embeddings, in
DataCompDR's webdataset layout. Modules: ``augment`` (sampling and exact replay), ``teachers``, ``captioners``,
``sources``, ``safetar`` and ``shards`` (untrusted shard reading, writing), ``card``, ``generate`` (sharded,
resumable, torchrun-aware), ``reader`` (the training-side IterableDataset) and ``cli``.
This package's ``__init__`` imports nothing, so the command line stays fast and torch-free until it runs.
"""
