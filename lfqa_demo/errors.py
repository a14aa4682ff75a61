"""User-facing exceptions: each message says what went wrong and what to do about it."""

from __future__ import annotations


class LfqaError(Exception):
    """Base class of the errors this package raises on purpose."""


class CheckpointNotFoundError(LfqaError, FileNotFoundError):
    """A checkpoint's files are neither cached nor downloadable (offline, unknown repo, missing dir)."""


class CheckpointError(LfqaError, ValueError):
    """A checkpoint's files are present but unusable: corrupt, truncated, or with missing/mis-shaped weights."""


class CorpusError(LfqaError, ValueError):
    """A corpus source the user gave cannot be used (bad file, missing column, no passages...)."""


class InvalidInputError(LfqaError, ValueError):
    """Something a caller or visitor passed in is not usable; the message says what to send instead."""


class InvalidTypeError(InvalidInputError, TypeError):
    """An argument of the wrong type (a number where a list of strings belongs, say)."""


class IndexNotReady(LfqaError):
    """A dense index is still being built; the message says how far it is."""


class CorpusUnavailableError(LfqaError):
    """A visitor's corpus is no longer held by the server (unloaded to make room, or never there)."""
