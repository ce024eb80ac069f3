"""The package's user-facing error types, in the lowest layer so every layer can raise them.

A :class:`UsageError` is what the ``weeke`` command reports in one line and exits 2 for (bad
options, unreadable or invalid run specifications, an unknown preset), before any work starts;
:class:`ConfigError` is the run configuration's own (a :class:`UsageError` too).
"""

from __future__ import annotations


class UsageError(Exception):
    """A user error that the CLI reports in one line and exits 2 for."""


class ConfigError(UsageError, ValueError):
    """A run specification that cannot be used (the message names the file, section and key)."""
