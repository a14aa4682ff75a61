"""Heavy work let in fairly: a short line per kind of work, one place in it per visitor.

An evaluation of 500 questions takes minutes; an index build or a big embedding, seconds to
minutes. Queued like everything else, such work filled the server's one queue: 66 evaluations
from one visitor made every other visitor's comparison answer "Queue is full" for hours. Here
each kind of heavy work has its own `WorkLine`: at most `running` at once, at most `waiting`
more in line; a session holds at most one place in it, running or waiting, and a client
address at most `per_address` (sessions cost nothing to make; addresses do). Anything past
that is refused at once with a message (`ServerBusyError`), never queued. Light requests
(comparisons, answers, status) do not pass through any line, so they never wait behind heavy
work.

A place can be cancelled (its visitor left: `WorkLine.cancel_session`) and carries a time
budget; long work checks `Place.check()` between steps and stops with `WorkStopped`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from .errors import LfqaError


class ServerBusyError(LfqaError):
    """Heavy work refused at the door: the visitor already has one in line, or the line is full."""


class WorkStopped(LfqaError):
    """Heavy work stopped part way: its time budget ran out, or its visitor left."""


@dataclass(frozen=True)
class Visitor:
    """Who asks: the web session (None for a script) and the client's address (None if unknown)."""

    session: str | None = None
    address: str | None = None


class Place:
    """One visitor's place in a `WorkLine`: waiting, then running, until `leave()` (a context manager)."""

    def __init__(self, line: WorkLine, visitor: Visitor):
        self.line, self.visitor = line, visitor
        self.running = False
        self.cancelled = False
        self.deadline: float | None = None  # set when it starts running

    def wait(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds for a turn; True once this place is running."""
        return self.line._wait(self, timeout)

    @property
    def ahead(self) -> int:
        """How many places run or wait before this one."""
        return self.line._ahead(self)

    def check(self) -> None:
        """Raise WorkStopped when the visitor left or the time budget is spent (call it between steps)."""
        if self.cancelled:
            raise WorkStopped(f"The {self.line.what} was stopped: its page was closed.")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise WorkStopped(
                f"The {self.line.what} was stopped after {self.line.budget_s:.0f} s, the time one may take on "
                "this server. Try fewer questions or fewer retrievers, or run it from the command line."
            )

    def leave(self) -> None:
        self.line._leave(self)

    def __enter__(self) -> Place:
        return self

    def __exit__(self, *exc) -> None:
        self.leave()


class WorkLine:
    """A bounded line for one kind of heavy work; thread-safe."""

    def __init__(
        self,
        what: str,
        *,
        running: int = 1,
        waiting: int = 3,
        per_address: int | None = None,
        budget_s: float | None = None,
    ):
        """`what` names the work in messages ("evaluation"); `per_address` caps the places one
        client address may hold (besides one per session; None: no cap, for the address is not
        known or not trusted); `budget_s` is how long one may run."""
        if running < 1 or waiting < 0 or (per_address is not None and per_address < 1):
            raise ValueError("a work line needs running >= 1, waiting >= 0 and per_address >= 1")
        self.what, self.running, self.waiting = what, running, waiting
        self.per_address, self.budget_s = per_address, budget_s
        self._places: deque[Place] = deque()  # running ones first, then waiting ones, in order
        self._turn = threading.Condition()

    @property
    def capacity(self) -> int:
        """How many places the line holds at most (running and waiting): threads it may occupy."""
        return self.running + self.waiting

    def join(self, visitor: Visitor) -> Place:
        """A place for `visitor`, or ServerBusyError saying why not (never waits)."""
        with self._turn:
            mine = visitor.session is not None and any(p.visitor.session == visitor.session for p in self._places)
            from_address = sum(
                1 for p in self._places if visitor.address is not None and p.visitor.address == visitor.address
            )
            if mine or (self.per_address == 1 and from_address):
                raise ServerBusyError(
                    f"One {self.what} at a time per visitor: yours is still running or waiting. "
                    "Wait for it to finish, then try again."
                )
            if self.per_address is not None and from_address >= self.per_address:
                raise ServerBusyError(
                    f"{from_address} {self.what}s are already running or waiting from your address, the most one "
                    "address may have at once. Wait for one to finish, then try again."
                )
            if len(self._places) >= self.capacity:
                raise ServerBusyError(
                    f"The server is busy: {len(self._places)} {self.what}s are running or waiting, the most it "
                    "takes at once. Try again in a few minutes."
                )
            place = Place(self, visitor)
            self._places.append(place)
            self._promote()
            return place

    def cancel_session(self, session: str | None) -> None:
        """The visitor of `session` left: their places stop at their next check, or leave the line."""
        if session is None:
            return
        with self._turn:
            for place in list(self._places):
                if place.visitor.session == session:
                    place.cancelled = True
            self._turn.notify_all()

    def __len__(self) -> int:
        with self._turn:
            return len(self._places)

    # -- internals, under self._turn -------------------------------------------------------------
    def _promote(self) -> None:
        for place in list(self._places)[: self.running]:
            if not place.running:
                place.running = True
                place.deadline = None if self.budget_s is None else time.monotonic() + self.budget_s
        self._turn.notify_all()

    def _wait(self, place: Place, timeout: float) -> bool:
        with self._turn:
            self._turn.wait_for(lambda: place.running or place.cancelled, timeout)
            return place.running

    def _ahead(self, place: Place) -> int:
        with self._turn:
            return list(self._places).index(place) if place in self._places else 0

    def _leave(self, place: Place) -> None:
        with self._turn:
            if place in self._places:
                self._places.remove(place)
            self._promote()
