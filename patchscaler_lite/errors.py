"""Exceptions with one-line messages; the CLI prints them as `error: <message>` and exits 2."""


class PatchScalerError(ValueError):
    """A problem with the user's input (file, option, tensor or weights), stated in one line."""


class ImageError(PatchScalerError):
    """An input image cannot be read, or an image tensor is not a valid (B, 3, H, W) in [0, 1]."""


class WeightsError(PatchScalerError):
    """A weight file is missing, corrupt, or does not match the requested configuration."""
