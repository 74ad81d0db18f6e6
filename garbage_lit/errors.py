"""The errors a user fixes: a config value, the data, a checkpoint. Every command shows them as one line.

Anything else that goes wrong is a bug or the machine's (a full disk has its own message): it keeps its traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """A problem with what the user gave (config, data, checkpoint, input files); the message names it and the fix."""


class ConfigError(UserError):
    """A config value outside what the run accepts; the message names the key and the allowed values."""


class DataError(UserError):
    """The dataset cannot be used as configured; the message names the file and the fix."""


class CheckpointError(UserError):
    """A checkpoint that cannot be used as asked; the message names the file and what to give instead."""
