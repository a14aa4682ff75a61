"""The comparison engine with the fixture models: structure, oracles, agreement and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from lfqa_demo import RetrieverSpec
from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.errors import CorpusError
from lfqa_demo.results import overlap_at_k, rank_biased_overlap
from lfqa_demo.retrieval.corpus import build_corpus, corpus_from_file, load_bundled_corpus


@pytest.fixture
def engine(tmp_path):
    corpus = build_corpus(
        "small",
        [
            {
                "id": f"d{i}",
                "title": f"Topic {i % 7}",
                "text": f"the normans conquered england in {1000 + i} and built castle number {i}",
            }
            for i in range(60)
        ],
    )
    return RetrievalEngine(corpus, cache_dir=tmp_path)


def test_compare_returns_every_retriever_with_ranked_hits_and_timings(engine):
    c = engine.compare("when did the normans conquer england?", k=5, gold_answer="castle number 3")
    assert list(c.results) == ["retribert", "dpr", "realm", "bm25"]
    for result in c.results.values():
        assert result.error is None and [h.rank for h in result.hits] == [1, 2, 3, 4, 5]
        scores = [h.score for h in result.hits]
        assert scores == sorted(scores, reverse=True)
        assert result.encode_ms >= 0 and result.search_ms > 0
        for h in result.hits:  # whole tokens (DPR's rule): "castle number 30" does not hold "castle number 3"
            assert h.contains_answer == (h.passage_id == "d3")
    assert len(c.agreement) == 6 and all(0 <= a.overlap <= 1 and 0 <= a.rbo <= 1 for a in c.agreement)
    assert all(len(v) >= 1 for v in c.found_by().values())


def test_dense_results_equal_a_numpy_oracle(engine):
    retriever = engine.retriever("dpr")
    vectors = retriever.encode_passages(engine.corpus.as_dicts())
    q = retriever.encode_questions(["castle number 12"])[0]
    order = np.argsort(-(vectors @ q), kind="stable")[:8]
    hits = engine.compare("castle number 12", ["dpr"], k=8).results["dpr"].hits
    assert [h.passage_id for h in hits] == [engine.corpus[i].id for i in order]
    np.testing.assert_allclose([h.score for h in hits], (vectors @ q)[order], atol=1e-4)


def test_k_larger_than_the_corpus_and_bad_input(engine, tmp_path):
    tiny = RetrievalEngine(
        build_corpus("tiny", [{"text": "one"}, {"text": "two"}, {"text": "three"}]), cache_dir=tmp_path
    )
    c = tiny.compare("one", k=50)
    assert all(len(r.hits) == 3 for n, r in c.results.items() if n != "bm25")
    assert [h.text for h in c.results["bm25"].hits] == ["one"]  # passages sharing no term are not hits
    with pytest.raises(ValueError, match="empty"):
        engine.compare("   ")
    with pytest.raises(ValueError, match="between 1 and 100"):
        engine.compare("q", k=0)
    with pytest.raises(TypeError, match="k must be an integer"):
        engine.compare("q", k="5")
    with pytest.raises(TypeError, match="question must be a string"):
        engine.compare(None)
    with pytest.raises(ValueError, match="unknown retriever 'colbert'"):
        engine.compare("q", ["colbert"])


def test_a_retriever_that_cannot_load_does_not_block_the_others(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))  # nothing cached, offline
    engine = RetrievalEngine(load_bundled_corpus(), cache_dir=tmp_path)
    c = engine.compare("why is the sky blue", k=3)
    assert c.results["bm25"].error is None and len(c.results["bm25"].hits) == 3
    for name in ("retribert", "dpr", "realm"):
        assert "HF_HUB_OFFLINE" in c.results[name].error and not c.results[name].hits
    assert c.agreement == []


def test_batch_equals_single(engine):
    questions = ["normans castle 5", "england 1012", "built castle number 40"]
    batch = engine.compare_batch(questions, ["realm", "bm25"], k=4)
    for question, got in zip(questions, batch):
        single = engine.compare(question, ["realm", "bm25"], k=4)
        for name in ("realm", "bm25"):
            assert [h.passage_id for h in got.results[name].hits] == [h.passage_id for h in single.results[name].hits]


def test_agreement_measures():
    a = ["1", "2", "3", "4"]
    assert overlap_at_k(a, a, 4) == 1 and rank_biased_overlap(a, a) == pytest.approx(1.0)
    assert overlap_at_k(a, ["5", "6", "7", "8"], 4) == 0 and rank_biased_overlap(a, ["5", "6", "7", "8"]) == 0
    swapped_top = rank_biased_overlap(a, ["2", "1", "3", "4"])
    swapped_tail = rank_biased_overlap(a, ["1", "2", "4", "3"])
    assert 0 < swapped_top < swapped_tail < 1  # disagreement at the top costs more
    assert overlap_at_k(a, ["4", "3", "2", "1"], 4) == 1


def test_a_failed_upload_leaves_the_corpus_and_indexes_usable(engine, tmp_path):
    before = engine.compare("castle number 7", ["bm25", "realm"], k=3)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\nnot json\n', encoding="utf-8")
    with pytest.raises(CorpusError, match="line"):
        RetrievalEngine(corpus_from_file(bad))
    after = engine.compare("castle number 7", ["bm25", "realm"], k=3)
    for name in ("bm25", "realm"):
        assert [h.passage_id for h in after.results[name].hits] == [h.passage_id for h in before.results[name].hits]


def test_another_corpus_gets_another_engine_and_extra_retrievers(engine, tmp_path):
    from helpers import REPOS

    extra = RetrievalEngine(
        engine.corpus, retrievers={"bm25": "bm25", "mine": RetrieverSpec("realm", REPOS["realm"])}, cache_dir=tmp_path
    )
    assert extra.compare("castle", k=2).results.keys() == {"bm25"}  # defaults present in this engine
    assert len(extra.compare("castle", ["mine"], k=2).results["mine"].hits) == 2
    new = build_corpus("new", [{"text": "completely different words"}, {"text": "another passage"}])
    hits = RetrievalEngine(new, cache_dir=tmp_path).compare("different", ["bm25", "dpr"], k=5).results
    assert {h.passage_id for h in hits["dpr"].hits} == {p.id for p in new}
