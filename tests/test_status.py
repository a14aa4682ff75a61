"""States as data (lfqa_demo/status.py): the smoothed time left, the JSON form, the words ui/
makes of them, and the rule that nothing outside ui/ compares a state with a sentence."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lfqa_demo.retrieval import builds
from lfqa_demo.retrieval.builds import IndexBuild
from lfqa_demo.status import ModelKey, Origin, Phase, Status
from ui.states import status_words

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_time_left_never_rises_by_half_between_two_looks(monkeypatch):
    """The estimate jumped ("about 3 min left" 10 s before done): a slow batch after fast ones
    tripled the rate's estimate at once. Looked at every 2 s, the shown time rises by at most 50%."""
    clock = Clock()
    monkeypatch.setattr(builds.time, "monotonic", clock)
    build = IndexBuild("dpr", lambda progress: None, 1000)
    build.state, build.embedding, build._started_at = Phase.INDEXING, True, clock.now
    shown, done = [], 0
    # 100 fast batches (0.1 s per passage), then a stall (a loaded machine), then fast again.
    for step in range(300):
        clock.now += 2.0
        done += 20 if step < 25 or step > 60 else 0
        build.done = min(done, 999)
        left = build.seconds_left()
        if left is not None:
            shown.append(left)
    assert len(shown) > 100
    assert all(b <= 1.5 * a for a, b in zip(shown, shown[1:])), max(b / a for a, b in zip(shown, shown[1:]))
    assert shown[-1] < shown[0]  # it still counts down to the end


def test_the_time_left_does_not_depend_on_how_often_anyone_looks(monkeypatch):
    """It moved towards the rate's estimate a step per look: a page looking every 3 s saw 402 s
    where one looking every 0.1 s saw 238 s, and one client polling changed what every page saw."""
    clock = Clock()
    monkeypatch.setattr(builds.time, "monotonic", clock)
    shown = {}
    for every in (0.1, 1.0, 3.0):
        build = IndexBuild("dpr", lambda progress: None, 10_000)
        build.state, build.embedding, build._started_at = Phase.INDEXING, True, clock.now
        start, t = clock.now, 0.0
        while t < 30.0:  # slow for 10 s, then ten times faster
            t = round(t + every, 6)
            clock.now = start + t
            build.done = int(t * 5 if t <= 10 else 50 + (t - 10) * 50)
            build.seconds_left()
        shown[every] = build.seconds_left()
    assert max(shown.values()) <= 1.25 * min(shown.values()), shown


def test_a_build_reports_its_phase_as_data():
    build = IndexBuild("dpr", lambda progress: None, 552)
    assert build.status() == Status(Phase.LOADING)
    build.state, build.embedding, build.done = Phase.INDEXING, True, 10
    build.refused = "another max length"
    status = build.status()
    assert (status.phase, status.done, status.total, status.origin) == (Phase.INDEXING, 10, 552, Origin.REBUILT)
    assert status.note == "another max length"


def test_the_json_form_has_what_scripts_poll():
    status = Status(Phase.INDEXING, 120, 552, 40.04, "a note")
    assert status.as_json() == {"state": "indexing", "done": 120, "total": 552, "seconds_left": 40.0, "note": "a note"}
    ready = Status(Phase.READY, device="cpu", dtype="float32").as_json()
    assert ready["state"] == "ready" and ready["device"] == "cpu" and ready["dtype"] == "float32"
    assert str(ModelKey.reader("dpr")) == "reader dpr" and str(ModelKey.retriever("realm")) == "retriever realm"


@pytest.mark.parametrize(
    "status, words",
    [
        (Status(Phase.INDEXING, 120, 552, 40.0), "indexing 120/552 passages, about 40 s left"),
        (
            Status(Phase.INDEXING, 1, 552, 300.0, background=True),
            "indexing 1/552 passages, about 5 min",
        ),
        (Status(Phase.READY, 5, 5, origin=Origin.PREBUILT), "ready; prebuilt"),
        (
            Status(Phase.READY, 5, 5, note="x: Read-only file system", origin=Origin.MEMORY_ONLY),
            "ready, in memory only (x",
        ),
        (
            Status(Phase.READY, 5, 5, note="max length", origin=Origin.REBUILT),
            "ready; built here, the prebuilt",
        ),
        (Status(Phase.READY, device="cpu", dtype="bfloat16"), "ready on cpu, bfloat16"),
        (Status(Phase.FAILED, note="cannot load /srv/x/secret.bin"), "failed: cannot load …/secret.bin"),
        (Status(Phase.QUEUED), "queued behind another index build"),
    ],
)
def test_ui_words_each_state(status, words):
    assert status_words(status).startswith(words), status_words(status)


# A state compared with a sentence: `== "ready"`, `.startswith("ready`, `"indexing" in state`...
STATE_WORDS = r"(?:ready|loading|indexing|queued|failed|cancelled|waiting|not loaded|building)"
COMPARED = re.compile(
    rf"""(?:[=!]=\s*["']{STATE_WORDS}|startswith\(\s*["']{STATE_WORDS}|["']{STATE_WORDS}[^"']*["']\s+(?:not\s+)?in\s)"""
)


def test_nothing_outside_ui_compares_a_state_with_words():
    found = []
    for path in [*ROOT.glob("lfqa_demo/**/*.py"), ROOT / "app.py", *ROOT.glob("benchmarks/*.py")]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if COMPARED.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
