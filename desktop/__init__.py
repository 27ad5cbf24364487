"""PhotoSeek's desktop app (PySide6)."""

# core first: it switches telemetry off before anything imports onnxruntime (see core.privacy).
from core.privacy import keep_private

keep_private()
