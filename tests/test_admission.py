"""The lines heavy work waits in (lfqa_demo/admission.py): bounded, one place per visitor, stoppable."""

from __future__ import annotations

import threading
import time

import pytest

from lfqa_demo.admission import ServerBusyError, Visitor, WorkLine, WorkStopped


def test_one_place_per_session_and_per_address():
    line = WorkLine("evaluation", running=1, waiting=3, per_address=1)
    first = line.join(Visitor("s1", "10.0.0.1"))
    with pytest.raises(ServerBusyError, match="One evaluation at a time per visitor"):
        line.join(Visitor("s1", "10.0.0.2"))  # the same session from elsewhere
    with pytest.raises(ServerBusyError, match="One evaluation at a time per visitor"):
        line.join(Visitor("s2", "10.0.0.1"))  # another session from the same address
    first.leave()
    line.join(Visitor("s2", "10.0.0.1")).leave()  # free again once the first left


def test_an_address_holds_at_most_its_cap():
    line = WorkLine("embedding", running=2, waiting=10, per_address=3)
    places = [line.join(Visitor(f"s{i}", "203.0.113.7")) for i in range(3)]
    with pytest.raises(ServerBusyError, match="3 embeddings are already running or waiting from your address"):
        line.join(Visitor("s9", "203.0.113.7"))
    line.join(Visitor("s10", "203.0.113.8"))  # another address is not concerned
    line.join(Visitor("s11", None))  # nor a client with no known address (this machine)
    places[0].leave()
    line.join(Visitor("s9", "203.0.113.7"))


def test_sessions_only_when_addresses_are_not_limited():
    line = WorkLine("embedding", running=1, waiting=3)
    places = [line.join(Visitor(f"s{i}", "127.0.0.1")) for i in range(4)]
    assert [p.running for p in places] == [True, False, False, False]
    assert [p.ahead for p in places] == [0, 1, 2, 3]


def test_a_full_line_refuses_at_once_and_lets_the_next_in_when_one_leaves():
    line = WorkLine("evaluation", running=1, waiting=2)
    places = [line.join(Visitor(f"s{i}")) for i in range(3)]
    started = time.monotonic()
    with pytest.raises(ServerBusyError, match="The server is busy: 3 evaluations"):
        line.join(Visitor("s9"))
    assert time.monotonic() - started < 0.1
    assert not places[1].wait(0.05)
    admitted = threading.Event()
    threading.Thread(target=lambda: places[1].wait(5) and admitted.set()).start()
    places[0].leave()
    assert admitted.wait(2) and places[1].running and places[2].ahead == 1


def test_a_place_stops_when_its_visitor_leaves_or_its_time_is_spent():
    line = WorkLine("evaluation", running=1, waiting=1, budget_s=0.2)
    running, waiting = line.join(Visitor("a")), line.join(Visitor("b"))
    running.check()
    line.cancel_session("b")
    assert not waiting.wait(1)  # woken, not admitted
    with pytest.raises(WorkStopped, match="page was closed"):
        waiting.check()
    time.sleep(0.25)
    with pytest.raises(WorkStopped, match=r"stopped after 0 s"):
        running.check()
    running.leave()
    waiting.leave()
    assert len(line) == 0


def test_a_stopped_evaluation_is_not_cached(tmp_path):
    from lfqa_demo.engine import RetrievalEngine
    from lfqa_demo.evaluation import evaluate_retriever
    from lfqa_demo.retrieval.corpus import load_bundled_questions

    engine = RetrievalEngine(cache_dir=tmp_path)
    qa = load_bundled_questions()
    batches = []

    def stop_at_the_second_batch():
        batches.append(1)
        if len(batches) == 2:
            raise WorkStopped("stopped")

    with pytest.raises(WorkStopped):
        evaluate_retriever(engine, qa, "bm25", batch=64, check=stop_at_the_second_batch)
    whole = evaluate_retriever(engine, qa, "bm25", batch=64, check=lambda: None)
    assert len(whole.answer_ranks) == len(qa)
