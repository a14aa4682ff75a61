"""The backend's side of issue 9, in-process: index builds that are shared, bounded and
cancellable; a registry that never answers from another corpus; a cache that may fail; and
an error boundary that shows visitors our messages and logs everything else."""

from __future__ import annotations

import errno
import json
import logging
import subprocess

import pytest
from helpers import wait_until

from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.errors import INTERNAL_ERROR, CorpusUnavailableError
from lfqa_demo.retrieval.corpus import Corpus, Passage, load_bundled_corpus
from lfqa_demo.sessions import EngineRegistry
from lfqa_demo.status import Origin, Phase


def corpus_of(n: int, tag: str) -> Corpus:
    return Corpus(
        f"{tag}.jsonl",
        [
            Passage(f"{tag}-{i}", f"Doc {i}", f"{tag} passage {i} about normans and vikings number {i}")
            for i in range(n)
        ],
    )


# -- the registry ---------------------------------------------------------------------------------
def test_an_evicted_upload_is_an_error_that_says_what_to_do(tmp_path):
    registry = EngineRegistry(load_bundled_corpus(), lambda c: RetrievalEngine(c, cache_dir=tmp_path), max_uploads=2)
    mine = registry.register(corpus_of(3, "mine"), "s1")
    registry.register(corpus_of(3, "a"), "s2")
    registry.register(corpus_of(3, "b"), "s3")
    with pytest.raises(
        CorpusUnavailableError, match=r"'mine.jsonl' is not loaded any more: .*keeps 2 at a time.*Upload it again"
    ):
        registry.engine(mine)
    assert registry.engine(registry.bundled_ref) is registry.bundled  # the bundled corpus is never dropped


def test_a_session_that_ends_drops_its_upload_and_stops_its_builds(tmp_path):
    registry = EngineRegistry(load_bundled_corpus(), lambda c: RetrievalEngine(c, cache_dir=tmp_path))
    big = registry.register(corpus_of(20_000, "big"), "s1")
    shared = registry.register(corpus_of(3, "shared"), "s2")
    registry.register(corpus_of(3, "shared"), "s3", name="other-name.jsonl")
    build = registry.engine(big).start_index("dpr")
    registry.release("s1")
    assert wait_until(lambda: build.finished) and build.state == "cancelled"
    with pytest.raises(CorpusUnavailableError, match="every session that used it has ended"):
        registry.engine(big)
    registry.release("s2")  # s3 still uses the same corpus
    assert registry.engine(shared).corpus.name == "shared.jsonl"


def test_same_bytes_under_two_names_share_an_engine_but_not_a_name(tmp_path):
    registry = EngineRegistry(load_bundled_corpus(), lambda c: RetrievalEngine(c, cache_dir=tmp_path))
    a = registry.register(corpus_of(3, "x"), "s1", name="alice.jsonl")
    b = registry.register(corpus_of(3, "x"), "s2", name="bob.jsonl")
    assert (a.name, b.name) == ("alice.jsonl", "bob.jsonl") and registry.engine(a) is registry.engine(b)


# -- builds ---------------------------------------------------------------------------------------
def test_two_requests_for_one_index_share_one_build(tmp_path):
    engine = RetrievalEngine(corpus_of(300, "share"), cache_dir=tmp_path)
    first, second = engine.start_index("dpr"), engine.start_index("dpr")
    assert first is second
    assert len(engine.index("dpr")) == 300 and engine.start_index("dpr") is first


def test_a_comparison_closed_early_stops_the_build_nobody_waits_for(tmp_path):
    engine = RetrievalEngine(corpus_of(20_000, "closed"), cache_dir=tmp_path)
    live = engine.compare_live("who led the normans?", ["realm", "bm25"], 3)
    first = next(live)
    assert len(first.results["bm25"].hits) == 3  # BM25 answers while REALM indexes
    assert first.results["realm"].pending and not first.results["realm"].hits
    build = engine.start_index("realm")
    live.close()  # the visitor went away
    assert wait_until(lambda: build.finished) and build.state is Phase.CANCELLED
    assert engine.index_states()["realm"].phase is Phase.CANCELLED


def test_past_its_budget_a_comparison_hands_the_build_to_the_background(tmp_path):
    engine = RetrievalEngine(corpus_of(20_000, "budget"), cache_dir=tmp_path)
    *_, last = engine.compare_live("who led the normans?", ["dpr", "bm25"], 3, budget_s=0.2)
    assert last.results["dpr"].pending.background
    build = engine.start_index("dpr")
    assert build.background and not build.finished
    assert wait_until(lambda: build.finished, 240) and build.state is Phase.READY
    assert len(engine.compare("who led the normans?", ["dpr"], 3).results["dpr"].hits) == 3


# -- a cache that may fail ------------------------------------------------------------------------
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_an_unwritable_cache_keeps_the_index_in_memory(tmp_path, monkeypatch, code):
    import faiss

    def fail(*args, **kwargs):
        raise OSError(code, "injected")

    monkeypatch.setattr(faiss, "serialize_index", fail)
    engine = RetrievalEngine(corpus_of(50, "cache"), cache_dir=tmp_path)
    calls = []
    retriever = engine.retriever("dpr")
    original = retriever.encode_passages
    monkeypatch.setattr(retriever, "encode_passages", lambda *a, **k: calls.append(1) or original(*a, **k))
    for _ in range(2):
        c = engine.compare("who led the normans?", ["dpr", "bm25"], 3)
        assert [len(r.hits) for r in c.results.values()] == [3, 3]
    assert len(calls) == 1  # built once, then served from memory
    state = engine.index_states()["dpr"]
    assert state.origin is Origin.MEMORY_ONLY and state.note.startswith("the index cache cannot be written: ")


def test_a_really_full_disk_keeps_the_index_in_memory(tmp_path):
    """The same on a real 32 KiB tmpfs (needs root, as CI and the dev machines have)."""
    disk = tmp_path / "small"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    try:
        engine = RetrievalEngine(corpus_of(4000, "full"), cache_dir=disk)  # 4,000 vectors: over 32 KiB
        c = engine.compare("who led the normans?", ["realm", "bm25"], 3)
        assert [len(r.hits) for r in c.results.values()] == [3, 3]
        state = engine.index_states()["realm"]
        assert state.origin is Origin.MEMORY_ONLY
        assert state.note == "the index cache cannot be written: No space left on device"
        assert not [p for p in (disk / "indexes").iterdir() if p.name.startswith(".tmp-")]  # no half-written entry left
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_one_retriever_failing_with_a_bug_never_takes_the_others_down(tmp_path, monkeypatch, caplog):
    engine = RetrievalEngine(corpus_of(20, "bug"), cache_dir=tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("/srv/secret/path exploded")

    monkeypatch.setattr(engine.searchers["dpr"], "model", broken)
    with caplog.at_level(logging.ERROR):
        c = engine.compare("who led the normans?", ["dpr", "bm25"], 3)
    assert c.results["dpr"].error == INTERNAL_ERROR and len(c.results["bm25"].hits) == 3
    assert "/srv/secret/path exploded" in caplog.text  # the details go to the log, not the visitor


# -- the app's error boundary -----------------------------------------------------------------------
def test_the_app_shows_our_errors_escaped_and_hides_bugs(monkeypatch, caplog):
    import gradio as gr

    import app
    from ui.tabs.compare import CompareTab
    from ui.tabs.corpus import CorpusTab

    with pytest.raises(gr.Error, match="&lt;b&gt;x&lt;/b&gt;/y") as caught:
        CorpusTab(app.service).load_hub_dataset("<b>x</b>/y", "", "train", 10)
    assert "<b>" not in caught.value.message

    def buggy(*args, **kwargs):
        raise KeyError("/srv/app/secret.py")

    import lfqa_demo.comparison

    monkeypatch.setattr(lfqa_demo.comparison, "live", buggy)
    with caplog.at_level(logging.ERROR), pytest.raises(gr.Error) as caught:
        list(CompareTab(app.service).compare_retrievers("who?", 3, ["bm25"], "", app.registry.bundled_ref))
    assert caught.value.message.startswith("Internal error") and "secret" not in caught.value.message
    assert "secret.py" in caplog.text and "Traceback" in caplog.text
    with pytest.raises(gr.Error, match="must be a whole number"):
        list(
            CompareTab(app.service).compare_retrievers(
                "who?", json.loads("NaN"), ["bm25"], "", app.registry.bundled_ref
            )
        )


def test_a_retriever_and_a_reader_failing_are_told_apart(tmp_path, monkeypatch):
    """errors was keyed by bare name: the DPR reader's error overwrote the DPR retriever's, and a
    retriever's failure was shown as a "RetriBERT reader"."""
    from ui import render

    engine = RetrievalEngine(corpus_of(20, "roles"), cache_dir=tmp_path)
    report = engine.answer("who led the normans?", "minilm", ["dpr"], 3)  # MiniLM is not in the fixture cache
    assert report.retriever_error and not report.reader_errors and report.passages == []
    html = render.render_answers(report)
    assert "MiniLM retriever: " in html and "MiniLM reader" not in html

    import lfqa_demo.answering as answering

    def broken(*args, **kwargs):
        raise RuntimeError("reader exploded")

    monkeypatch.setattr(answering, "load_reader", broken)
    report = engine.answer("who led the normans?", "dpr", ["dpr"], 3)
    assert report.retriever_error is None and report.reader_errors == {"dpr": INTERNAL_ERROR}
    assert len(report.passages) == 3


def test_build_indexes_gives_each_index_or_its_error(tmp_path):
    engine = RetrievalEngine(corpus_of(20, "results"), cache_dir=tmp_path)
    results = engine.build_indexes(["dpr", "minilm", "bm25"])
    assert set(results) == {"dpr", "minilm"}  # BM25 is built too, but is no dense index
    assert results["dpr"].error is None and len(results["dpr"].index) == 20
    assert results["minilm"].index is None and "hf download" in results["minilm"].error
