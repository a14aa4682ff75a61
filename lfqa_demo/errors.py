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
