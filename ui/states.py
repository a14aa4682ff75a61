"""Words for states: what the page says about a model, an index, a line or an evaluation step.

The backend reports states as data (lfqa_demo.status, lfqa_demo.service); this is the one
place that turns them into English. Plain text: callers escape it where it becomes HTML.
"""

from __future__ import annotations

from lfqa_demo.service import Loading, Step, Waiting
from lfqa_demo.status import ModelKey, Origin, Phase, Role, Status
from ui.text import label, public_message

PHASE_WORDS = {
    Phase.NOT_LOADED: "not loaded",
    Phase.WAITING: "waiting (warm-up)",
    Phase.LOADING: "loading the model",
    Phase.QUEUED: "queued behind another index build",
}
ORIGIN_WORDS = {
    Origin.BUILT: "ready",
    Origin.CACHED: "ready; from the index cache",
    Origin.PREBUILT: "ready; prebuilt",
    Origin.REBUILT: "ready; built here, the prebuilt index was not used",
    Origin.MEMORY_ONLY: "ready, in memory only",
}
BACKGROUND = "it goes on in the background"


def format_seconds(seconds: float) -> str:
    """12 s, 3 min, 1.5 h."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def status_words(status: Status) -> str:
    """One state in words: "indexing 120/552 passages, about 40 s left", "ready on cpu, float32",
    "ready, in memory only (the index cache cannot be written: ...)", "failed: why"."""
    note = public_message(status.note) if status.note else ""
    if status.phase in PHASE_WORDS:
        words = PHASE_WORDS[status.phase]
    elif status.phase is Phase.DOWNLOADING:
        words = f"downloading, {(status.done or 0) / 1e9:.1f} of {(status.total or 0) / 1e9:.1f} GB"
        if status.seconds_left is not None:
            words += f", about {format_seconds(status.seconds_left)} left"
    elif status.phase is Phase.INDEXING:
        words = f"indexing {status.done or 0:,}/{status.total or 0:,} passages"
        if status.seconds_left is not None:
            words += f", about {format_seconds(status.seconds_left)} left"
    elif status.phase is Phase.READY and status.device is not None:
        return f"ready on {status.device}, {status.dtype}"
    elif status.phase is Phase.READY:
        return ORIGIN_WORDS[status.origin or Origin.BUILT] + (f" ({note})" if note else "")
    else:  # failed, cancelled
        return f"{status.phase.value}: {note or 'no reason given'}"
    if status.origin is Origin.REBUILT and note:  # a refused bundle, said while it builds
        words += f" (the prebuilt index was not used: {note})"
    if status.background:
        words += f"; {BACKGROUND}"
    return words


def corpus_words(passages: int, bytes_in_memory: int) -> str:
    """A corpus bundle in the status panel: "2,000,000 passages; its dense indexes hold 1.2 GB in memory"."""
    held = f"{bytes_in_memory / 1e9:.1f} GB" if bytes_in_memory >= 1e9 else f"{bytes_in_memory / 1e6:.0f} MB"
    return f"{passages:,} passages; its dense indexes hold {held} in memory"


def model_words(key: ModelKey) -> str:
    """ "DPR encoders", "REALM reader"."""
    return f"{label(key.name)} reader" if key.role is Role.READER else f"{label(key.name)} encoders"


def loading_words(step: Loading) -> str:
    return f"Loading the {model_words(step.model)} (first use; this takes a few seconds)…"


def waiting_words(step: Waiting) -> str:
    """What a visitor in a line for heavy work reads while others go first."""
    return f"Waiting for the server: {step.ahead} {step.work}{'s' if step.ahead != 1 else ''} before yours…"


STEP_WORDS = {
    Step.WAITING: "waiting",
    Step.LOADING: "loading the model (first use)",
    Step.LOADED: "model loaded",
    Step.EVALUATING: "evaluating",
    Step.DONE: "done",
    Step.FAILED: "unavailable (see below)",
}


def step_words(step: Step, index: Status | None = None, questions: int = 0) -> str:
    """An evaluation step of one retriever, in words."""
    if step is Step.INDEXING and index is not None:
        return f"index: {status_words(index)}"
    if step is Step.EVALUATING:
        return f"evaluating {questions:,} questions"
    return STEP_WORDS.get(step, step.value)
