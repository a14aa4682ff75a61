"""User-facing exceptions: each message says what went wrong and what to do about it."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal error (the details are in the server's log)"


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


class MissingDependencyError(LfqaError, ImportError):
    """A build-only dependency (Ray, for `index --engine ray`) is not installed; the message says how to install it."""


class IndexNotReady(LfqaError):
    """A dense index is still being built; `status` says how far it is (a lfqa_demo.status.Status)."""

    def __init__(self, label: str, status: object = None):
        """`label` names the index ("DPR"); without a `status` it is the whole message."""
        if status is None:
            super().__init__(label)
        else:
            done, total = getattr(status, "done", None), getattr(status, "total", None)
            far = f" ({done:,}/{total:,} passages embedded)" if done is not None and total else ""
            super().__init__(
                f"the {label} index is not ready yet{far}; it goes on in the background: try again shortly"
            )
        self.status = status


class CorpusUnavailableError(LfqaError):
    """A visitor's corpus is no longer held by the server (unloaded to make room, or never there)."""


def failure_message(exc: BaseException, *, logged: bool = False) -> str:
    """What a result says about an exception: the message of one of ours (written for the user),
    else a short "internal error" (its traceback goes to the log unless it is `logged` already)."""
    if isinstance(exc, LfqaError):
        return str(exc)
    if not logged:
        log.error("unexpected error", exc_info=exc)
    return INTERNAL_ERROR
