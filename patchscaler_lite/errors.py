"""Exceptions with one-line messages; the CLI prints them as `error: <message>` and exits 2."""

import errno

# OSErrors that are the user's or the machine's situation, not a bug: one line, exit 2
USER_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS,
                         errno.EFBIG, errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.ENOENT,
                         errno.EEXIST, errno.ELOOP, errno.EMFILE})


class PatchScalerError(ValueError):
    """A problem with the user's input (file, option, tensor or weights), stated in one line."""


class ImageError(PatchScalerError):
    """An input image cannot be read, or an image tensor is not a valid (B, 3, H, W) in [0, 1]."""


class WeightsError(PatchScalerError):
    """A weight file is missing, corrupt, or does not match the requested configuration."""


class OutputError(PatchScalerError):
    """An output cannot be written: it exists, is an input, or its folder is missing, full or
    read-only."""
