"""Exceptions raised by core. The CLI and the GUI turn them into messages; libraries never print."""


class PhotoSeekError(Exception):
    """Base class of every error core raises on purpose."""


class ModelPackageError(PhotoSeekError):
    """A model package is missing, malformed or fails its integrity check."""


class NoModelError(PhotoSeekError):
    """No model package is installed where the model store looks."""


class StarterBuildError(NoModelError):
    """The starter model could not be built; `reason` says why in a few words (for an app's own message)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ImageDecodeError(PhotoSeekError):
    """An image file could not be read as a picture."""


class LibraryError(PhotoSeekError):
    """The photo library (its folder or its database) cannot be used."""


class CheckpointError(PhotoSeekError):
    """A checkpoint file cannot be read, is refused because loading it could run code, or does not fit the model."""


class ImportFailed(PhotoSeekError):
    """Turning a checkpoint into a model package (export, fill or parity check) failed."""
