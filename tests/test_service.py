"""The service between the page and the engine (lfqa_demo/service.py): what the page's timers ask
of it, and what /status says about a session's corpus. Found by attacking the page's refresh."""

from __future__ import annotations

from helpers import wait_until

from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.retrieval.corpus import Corpus, Passage, load_bundled_corpus
from lfqa_demo.service import CompareRequest, Service
from lfqa_demo.sessions import EngineRegistry
from lfqa_demo.status import Phase
from ui.tabs.compare import CompareTab, Watched


def corpus_of(n: int, tag: str) -> Corpus:
    return Corpus(
        f"{tag}.jsonl", [Passage(f"{tag}-{i}", f"Doc {i}", f"{tag} passage {i} about normans") for i in range(n)]
    )


def service_of(tmp_path, max_uploads: int = 4) -> Service:
    bundled = load_bundled_corpus()
    registry = EngineRegistry(
        bundled,
        lambda c: RetrievalEngine(c, cache_dir=tmp_path),
        max_uploads,
        RetrievalEngine(bundled, cache_dir=tmp_path),
    )
    return Service(registry, budget_s=0.1)


def test_status_says_when_a_sessions_upload_was_dropped(tmp_path):
    """/status answered "bundled, no error" for a session whose upload had been evicted."""
    service = service_of(tmp_path, max_uploads=1)
    service.registry.register(corpus_of(5, "mine"), "a")
    assert service.status(None, "a").corpus == "mine.jsonl" and service.status(None, "a").error is None
    service.registry.register(corpus_of(5, "theirs"), "b")  # evicts "mine"
    status = service.status(None, "a")
    assert status.error and "not loaded any more" in status.error and status.indexes == {}
    assert service.status(None, "b").corpus == "theirs.jsonl" and service.status(None, "nobody").corpus == "bundled"


def test_a_refresh_never_restarts_a_failed_build(tmp_path):
    """Each refresh tick restarted MiniLM's failed build (its weights are not in the test cache):
    the column said "loading the model" again instead of why it failed."""
    service = service_of(tmp_path)
    ref = service.registry.bundled_ref
    engine = service.engine(ref)
    asked = CompareRequest.check("who led the normans?", 3, ["minilm", "bm25"])
    *_, first = service.compare(ref, asked)
    build = engine.searchers["minilm"]._build
    assert wait_until(lambda: build.finished) and build.state is Phase.FAILED
    for _ in range(3):
        c = service.refresh(ref, asked, first)
        assert "hf download" in c.results["minilm"].error and len(c.results["bm25"].hits) == 3
    assert engine.searchers["minilm"]._build is build  # no new build


def test_a_refresh_stops_on_a_dropped_corpus_and_on_another_corpus(tmp_path):
    """The timers raised an error toast every 2 s, for ever, once the session's upload was
    evicted; and a refresh re-ran the comparison on whatever corpus the session switched to."""
    service = service_of(tmp_path, max_uploads=1)
    tab = CompareTab(service)
    ref = service.registry.register(corpus_of(5, "mine"), None)
    form = ("who led the normans?", 3, ["bm25"], "")
    watched = Watched(CompareRequest.check(*form), ref.key)
    html, _, _, kept, timer = tab.refresh(watched, *form, ref)
    assert "mine.jsonl" in html and kept is None and timer.active is False  # nothing pending: done
    service.registry.register(corpus_of(5, "theirs"), None)  # evicts "mine"
    html, _, _, kept, timer = tab.refresh(watched, *form, ref)
    assert "not loaded any more" in html and kept is None and timer.active is False  # said once, stopped
    # Another corpus in the session (the bundled one): the watch stops and shows nothing of it.
    watched = Watched(CompareRequest.check(*form), service.registry.register(corpus_of(5, "third"), None).key)
    out = tab.refresh(watched, *form, service.registry.bundled_ref)
    assert out[3] is None and out[4].active is False and "bundled" not in str(out[0])


def test_kept_evaluations_are_bounded_in_number_and_size(tmp_path, monkeypatch):
    """A 17.5 MB QA file's evaluation was kept whole for each of 64 sessions (about 1.2 GB)."""
    import lfqa_demo.service as service_module

    monkeypatch.setattr(service_module, "KEPT_EVALUATION_BYTES", 100)
    monkeypatch.setattr(service_module, "KEPT_EVALUATIONS", 3)
    service = service_of(tmp_path)
    ref = service.registry.bundled_ref
    for session, chars in [("a", 40), ("b", 40), ("c", 40)]:  # 120 > 100: "a" goes
        service._keep_evaluation(session, ref, None, chars)
    assert list(service._evaluations) == ["b", "c"]
    service._keep_evaluation("huge", ref, None, 101)  # larger than everything allowed: not kept at all
    assert list(service._evaluations) == ["b", "c"]
    for session in "def":
        service._keep_evaluation(session, ref, None, 0)
    assert list(service._evaluations) == ["d", "e", "f"]
    service.release("e")
    assert list(service._evaluations) == ["d", "f"]


def test_a_refresh_ends_for_an_index_never_started_and_re_arming_does_not_speed_it_up(tmp_path):
    """A crafted watch naming an index nobody started kept its timer on for ever; and calling the
    private watch again reset the 1 s throttle, so the refresh lane could rank without pause."""
    from types import SimpleNamespace

    service = service_of(tmp_path)
    ref = service.registry.bundled_ref
    asked = CompareRequest.check("who led the normans?", 3, ["realm", "bm25"])
    c = service.refresh(ref, asked, None)
    assert not c.results["realm"].pending and "not started" in c.results["realm"].error
    assert service.engine(ref).index_states() == {}  # and it started nothing
    tab = CompareTab(service)
    page = SimpleNamespace(session_hash="page-1")
    form = ("who led the normans?", 3, ["bm25"], "")
    first = tab.refresh(Watched(CompareRequest.check(*form), ref.key), *form, ref, page)
    again = tab.refresh(Watched(CompareRequest.check(*form), ref.key), *form, ref, page)  # re-armed at once
    assert "who led the normans" in first[0] and again[0] == again[3] == {"__type__": "update"}
