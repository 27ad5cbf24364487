"""PhotoSeek's run time: no torch, no Qt."""

from core.privacy import keep_private

# First of all: onnxruntime reads its telemetry switch once, when it is first imported (see core.privacy).
keep_private()
