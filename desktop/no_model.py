"""What the app says when no search model is installed and it cannot build the starter: why, in plain words, and
what the user can do (reinstall, or install a model package), never a command to type."""

from __future__ import annotations

from pathlib import Path

from core.pathtext import display

MODELS_FOLDER = "models"  # a library's own model packages (core.model_store looks there first)


def _install_package_hint(library: Path) -> str:
    return (
        "reinstall PhotoSeek from a download that includes its starter model, or install a model package: "
        f"put the package's folder (with its model_card.json) into\n{display(str(Path(library) / MODELS_FOLDER))}\n"
        "and restart PhotoSeek."
    )


def cannot_build_text(library: Path) -> str:
    """No model, and this copy of PhotoSeek has no model builder (the packaged app, a runtime-only install)."""
    return (
        "No search model is installed, and this copy of PhotoSeek cannot build one: it was installed without "
        f"its model builder.\n\nWhat you can do: {_install_package_hint(library)}"
    )


def build_failed_text(library: Path, reason: str) -> str:
    """Building the starter model was tried and failed; `reason` is the builder's own last word on it."""
    return (
        f"PhotoSeek could not build its starter model: {display(reason)}\n\nWhat you can do: try “Build the starter "
        f"model” again once the cause is fixed, or {_install_package_hint(library)}"
    )
