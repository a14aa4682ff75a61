"""Dense index builds in background threads: shared, bounded, cancellable, observable.

Embedding a corpus takes seconds on a GPU and minutes on a 2-core CPU, so a build never runs
inside a web request. The engine starts one `IndexBuild` per (retriever, corpus); requests
wait on it for as long as their budget allows (a second request for the same index waits for
the same build, it never starts another) and show its progress meanwhile.

At most one build embeds at a time in the whole process (`BUILD_SLOTS`): a second one queues,
so visitors cannot pile CPU-bound builds onto two cores. A build stops at its next batch when
it is cancelled: when the last request waiting on it goes away before it was handed to the
background, or when its engine is dropped (a session ended, an upload was evicted).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable

from ..errors import LfqaError, failure_message
from ..status import Origin, Phase, Status

log = logging.getLogger(__name__)

BUILD_SLOTS = threading.BoundedSemaphore(1)  # builds that embed at once; the others queue


# The time left may rise (a slow batch) but by at most RISE_FACTOR per RISE_WINDOW_S: a page looking
# every 1-2 s sees it change smoothly, never jump from "20 s" to "3 min".
RISE_FACTOR = 1.5
RISE_WINDOW_S = 10.0
SMOOTHING_S = 5.0  # the shown time left moves towards the rate's estimate with this time constant


class BuildCancelled(LfqaError):
    """An index build was stopped before it finished (nobody wanted it any more)."""


class IndexBuild:
    """One index being built (or loaded from the cache) in its own daemon thread.

    `run` is the work: it takes a progress callback `(done, total) -> None` and returns the
    index. The callback raises BuildCancelled once `cancel()` was called, which stops the
    work at the next batch.
    """

    def __init__(
        self,
        label: str,
        run: Callable[[Callable[[int, int], None]], object],
        total: int,
        prepare: Callable[[], object | None] | None = None,
    ):
        """`prepare`, when given, runs first and outside the build slot (loading a model is memory
        and disk work, not the CPU-bound embedding the slot bounds); a result other than None is
        the index itself (a prebuilt one), and `run` is then skipped."""
        self.label = label
        self.total = total
        self.done = 0
        self.state = Phase.LOADING
        self.result: object | None = None
        self.error: BaseException | None = None
        self.background = False  # True once a request handed it over to finish on its own
        self.refused: str | None = None  # why a prebuilt index was not used (it is built here instead)
        self.embedding = False  # True from the first progress report on (the model has loaded by then)
        self._run = run
        self._prepare = prepare
        self._waiters = 0
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._lock = threading.Lock()
        self._started_at: float | None = None
        self._shown_left: tuple[float, float] | None = None  # (seconds left shown, when): see seconds_left
        self._thread = threading.Thread(target=self._work, name=f"index-build {label}", daemon=True)

    def start(self) -> "IndexBuild":
        self._thread.start()
        return self

    # -- the worker ------------------------------------------------------------------------------
    def _progress(self, done: int, total: int) -> None:
        if self._cancel.is_set():
            raise BuildCancelled(f"the {self.label} index build was cancelled")
        if not self.embedding:  # the rate (and time left) counts from here, not from the model load
            self._started_at, self.embedding = time.monotonic(), True
        self.done, self.total = done, total

    def _work(self) -> None:
        try:
            result = self._prepare() if self._prepare is not None else None
            if result is None:
                self.state = Phase.QUEUED
                with BUILD_SLOTS:
                    if self._cancel.is_set():
                        raise BuildCancelled(f"the {self.label} index build was cancelled")
                    self.state, self._started_at = Phase.INDEXING, time.monotonic()
                    result = self._run(self._progress)
            self.result, self.state = result, Phase.READY
        except BuildCancelled as exc:
            self.error, self.state = exc, Phase.CANCELLED
        except LfqaError as exc:
            self.error, self.state = exc, Phase.FAILED
        except Exception as exc:  # a bug, or the disk: log it whole, report it short
            log.exception("index build %s failed", self.label)
            self.error, self.state = exc, Phase.FAILED
        finally:
            self._finished.set()

    # -- what callers do ---------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the build is over or `timeout` seconds passed; True if it is over."""
        return self._finished.wait(timeout)

    def outcome(self) -> object:
        """The built index; raises the build's error if it failed or was cancelled."""
        if not self.finished:
            raise RuntimeError("the build is not finished")
        if self.error is not None:
            raise self.error
        return self.result

    def join_waiters(self) -> None:
        with self._lock:
            self._waiters += 1

    def leave_waiters(self) -> None:
        """A waiting request went away; with nobody left and no hand-over, stop the work."""
        with self._lock:
            self._waiters -= 1
            orphan = self._waiters <= 0 and not self.background
        if orphan and not self.finished:
            self.cancel()

    def keep_in_background(self) -> None:
        """Let the build finish after the request that started it has returned."""
        with self._lock:
            self.background = True

    def cancel(self) -> None:
        self._cancel.set()

    def seconds_left(self) -> float | None:
        """Time left at the rate so far, smoothed: the last figure, counted down since, moves towards
        the rate's estimate by 1 - exp(-elapsed / SMOOTHING_S) (by the time passed, not by how often
        anyone looks), and a rise is capped at RISE_FACTOR per RISE_WINDOW_S. None until a first
        batch is done."""
        if self.state != Phase.INDEXING or not self.done or self._started_at is None:
            return None
        now = time.monotonic()
        estimate = (now - self._started_at) / self.done * max(self.total - self.done, 0)
        with self._lock:
            if self._shown_left is None:
                left = estimate
            else:
                shown, at = self._shown_left
                counted_down = max(shown - (now - at), 0.0)
                left = counted_down + (1 - math.exp(-(now - at) / SMOOTHING_S)) * (estimate - counted_down)
                left = min(left, shown * RISE_FACTOR ** ((now - at) / RISE_WINDOW_S))
            self._shown_left = (left, now)
        return left

    def status(self) -> Status:
        """Where the build stands, as data (ui/ words it)."""
        if self.state == Phase.INDEXING and not self.embedding:
            phase = Phase.LOADING  # the passage encoder loads inside the slot, before the first batch
        else:
            phase = self.state
        if phase in (Phase.FAILED, Phase.CANCELLED):
            return Status(phase, note=failure_message(self.error, logged=True), background=self.background)
        origin = Origin.REBUILT if self.refused else None
        if phase == Phase.INDEXING:
            left = self.seconds_left()
            return Status(phase, self.done, self.total, left, self.refused, origin, background=self.background)
        return Status(phase, note=self.refused, origin=origin, background=self.background)
