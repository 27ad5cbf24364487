"""PyInstaller runtime hook (build.spec): runs before the frozen app's entry script, so before onnxruntime loads.

onnxruntime reads its telemetry switch once, at import; see core/privacy.py.
"""

from core.privacy import keep_private

keep_private()
