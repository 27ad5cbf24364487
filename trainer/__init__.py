"""PhotoSeek's trainer: PyTorch model building, import, reinforcement and training."""

# core first: it switches telemetry and Hugging Face look-ups off before any trainer module imports onnxruntime.
from core.privacy import keep_private

keep_private()
