"""Exceptions raised by core. The CLI and the GUI turn them into messages; libraries never print."""


class PhotoSeekError(Exception):
    """Base class of every error core raises on purpose."""


class ModelPackageError(PhotoSeekError):
    """A model package is missing, malformed or fails its integrity check."""


class NoModelError(PhotoSeekError):
    """No model package is installed where the model store looks."""


class ImageDecodeError(PhotoSeekError):
    """An image file could not be read as a picture."""


class LibraryError(PhotoSeekError):
    """The photo library (its folder or its database) cannot be used."""


class CheckpointError(PhotoSeekError):
    """A checkpoint file cannot be read, is refused because loading it could run code, or does not fit the model."""


class ImportFailed(PhotoSeekError):
    """Turning a checkpoint into a model package (export, fill or parity check) failed."""
