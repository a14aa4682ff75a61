"""Where models and indexes stand, as data: a phase from a fixed set, progress, time left, a note.

The backend reports every state as a `Status`; only `ui/` turns one into words, and scripts
read the same values as JSON (`Status.as_json`, the app's /model_status endpoint). A model is
named by a `ModelKey` (its role and name) everywhere: the loader's registry, the warm-up's
plan, the status panel. This module imports nothing of the project: every layer can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Phase(str, Enum):
    """The phases of a model or an index (a str mixin: a phase is its own JSON value)."""

    NOT_LOADED = "not loaded"  # nothing asked for it yet
    WAITING = "waiting"  # in a plan (the warm-up's) or a line, not started
    LOADING = "loading"  # a model loading (an index build's first step too)
    QUEUED = "queued"  # an index build waiting for the build slot
    INDEXING = "indexing"  # passages being embedded: done/total move
    DOWNLOADING = "downloading"  # a corpus bundle's files: done/total are bytes
    READY = "ready"
    FAILED = "failed"  # note: why
    CANCELLED = "cancelled"  # an index build nobody wanted any more


class Origin(str, Enum):
    """Where a ready index came from."""

    BUILT = "built"  # embedded here, and written to the index cache
    CACHED = "cached"  # read from this machine's index cache
    PREBUILT = "prebuilt"  # read from a prebuilt bundle ($LFQA_INDEXES)
    REBUILT = "rebuilt"  # a prebuilt bundle was refused (note: why), so it was embedded here
    MEMORY_ONLY = "in memory only"  # embedded here; the cache could not be written (note: why)


class Role(str, Enum):
    RETRIEVER = "retriever"
    READER = "reader"


@dataclass(frozen=True)
class ModelKey:
    """One model: its role and its name ("dpr", "realm", "minilm", or a checkpoint's id)."""

    role: Role
    name: str

    def __str__(self) -> str:  # "retriever dpr": the key of the JSON status
        return f"{self.role.value} {self.name}"

    @classmethod
    def retriever(cls, name: str) -> "ModelKey":
        return cls(Role.RETRIEVER, name)

    @classmethod
    def reader(cls, name: str) -> "ModelKey":
        return cls(Role.READER, name)


@dataclass(frozen=True)
class Status:
    """One model's or one index's state. `done`/`total` count passages while indexing;
    `seconds_left` is smoothed (it never rises by more than half between two looks);
    `note` is why it failed, or what a reader of the state should know (a refused bundle);
    `background` is True once the requests that waited for a build have handed it over."""

    phase: Phase
    done: int | None = None
    total: int | None = None
    seconds_left: float | None = None
    note: str | None = None
    origin: Origin | None = None
    device: str | None = None  # a loaded model's device and dtype ("cpu", "float32")
    dtype: str | None = None
    background: bool = False

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY

    @property
    def moving(self) -> bool:
        """True while something is under way or about to be (waiting, loading, queued, indexing,
        downloading): a page showing it has a reason to look again."""
        return self.phase in (Phase.WAITING, Phase.LOADING, Phase.QUEUED, Phase.INDEXING, Phase.DOWNLOADING)

    @property
    def over(self) -> bool:
        """True when nothing more will happen without another request (ready, failed, cancelled)."""
        return self.phase in (Phase.READY, Phase.FAILED, Phase.CANCELLED)

    def as_json(self) -> dict:
        """The JSON form scripts poll: state, done, total, seconds_left, note (and origin,
        device, dtype where known)."""
        out = {
            "state": self.phase.value,
            "done": self.done,
            "total": self.total,
            "seconds_left": None if self.seconds_left is None else round(self.seconds_left, 1),
            "note": self.note,
        }
        if self.origin is not None:
            out["origin"] = self.origin.value
        if self.device is not None:
            out["device"], out["dtype"] = self.device, self.dtype
        return out


NOT_LOADED = Status(Phase.NOT_LOADED)
WAITING = Status(Phase.WAITING)
