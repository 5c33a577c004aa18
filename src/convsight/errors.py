"""Errors a user can act on.

Every failure caused by the user's input (a path, a file, a config value) raises a
:class:`ConvsightError` subclass whose message names the thing and the reason. The CLI prints that
message as one line on stderr and exits with code 2; library users catch the class.
"""

from __future__ import annotations


class ConvsightError(Exception):
    """Base class: a problem the user can fix (bad path, corrupt file, wrong config)."""


class InputFileError(ConvsightError):
    """A file the user handed us is missing, unreadable or not what it claims to be."""


class ImageError(InputFileError):
    """An image cannot be decoded, is truncated, too large, or is not an image."""


class DatasetError(InputFileError):
    """An annotation file or dataset folder is malformed or inconsistent."""


class WeightsError(InputFileError):
    """A weights file is missing, corrupt, for another architecture, or holds NaN/Inf."""


class ConfigError(ConvsightError):
    """An option or configuration value is out of range or inconsistent."""


class ConvsightWarning(UserWarning):
    """Something ran, but not as well as it could (e.g. random weights because none were found)."""
