"""`lfqa_demo.evaluation` on a hand-built corpus and QA set with BM25 (no models), against
figures worked out by hand."""

from __future__ import annotations

import pytest

from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.evaluation import RetrievalScores, evaluate, format_table
from lfqa_demo.retrieval.corpus import QAItem, build_corpus

# Five passages in this order; a passage sharing no word with the question is not a BM25 hit.
PASSAGES = [
    {"id": "apples", "title": "Apples", "text": "Apples grow on trees in cool orchards."},
    {"id": "bananas", "title": "Bananas", "text": "Bananas grow on tall plants in tropical plantations."},
    {"id": "cherries", "title": "Cherries", "text": "Cherries are small red fruit with a stone."},
    {"id": "dates", "title": "Dates", "text": "Dates grow on palm trees in hot deserts."},
    {"id": "figs", "title": "Figs", "text": "Figs are soft purple fruit eaten fresh or dried."},
]
# Where BM25 ranks each gold passage, and the first passage holding a gold answer:
QA = [
    # only "bananas" matches: gold passage 1st, answer 1st
    QAItem("q1", "bananas plantations", ("tropical plantations",), "bananas"),
    # "cherries" matches red, stone and fruit, "figs" only fruit: gold 1st, answer 1st
    QAItem("q2", "red stone fruit", ("small red fruit",), "cherries"),
    # "figs" matches fruit and purple, "cherries" only fruit: gold ("cherries") 2nd, answer ("figs") 1st
    QAItem("q3", "which fruit is purple", ("purple",), "cherries"),
    # "dates" matches dates (title and text) and grow, two others only grow: gold 1st, answer 1st
    QAItem("q4", "where do dates grow", ("hot deserts",), "dates"),
    # nothing matches: no hit at all, so neither the gold passage ("figs") nor the answer is found
    QAItem("q5", "kiwi", ("kiwi",), "figs"),
]


@pytest.fixture
def engine(tmp_path) -> RetrievalEngine:
    corpus = build_corpus("fruit", PASSAGES, split=False)
    return RetrievalEngine(corpus, retrievers={"bm25": "bm25", "dpr": "dpr"}, cache_dir=tmp_path)


def test_recall_by_gold_passage_and_by_answer_and_mrr(engine):
    (scores,) = evaluate(engine, QA, ["bm25"], ks=(1, 2, 20))
    assert scores.retriever == "bm25" and scores.questions == 5 and scores.error is None
    # gold passage ranks 1, 1, 2, 1, none
    assert scores.recall_passage == pytest.approx({1: 3 / 5, 2: 4 / 5, 20: 4 / 5})
    # first answer ranks 1, 1, 1, 1, none
    assert scores.recall_answer == pytest.approx({1: 4 / 5, 2: 4 / 5, 20: 4 / 5})
    # MRR@20 = (1 + 1 + 1/2 + 1 + 0) / 5
    assert scores.mrr == pytest.approx(0.7)


def test_mrr_counts_only_the_top_max_k(engine):
    """With ks (1, 2) the gold passage at rank 2 (q3) still counts: MRR@2 = (1 + 1 + 1/2 + 1 + 0) / 5."""
    (scores,) = evaluate(engine, QA, ["bm25"], ks=(1, 2))
    assert scores.mrr == pytest.approx(0.7)
    assert scores.recall_passage == pytest.approx({1: 0.6, 2: 0.8})


def test_batches_do_not_change_the_scores(engine):
    whole = evaluate(engine, QA, ["bm25"], ks=(1, 2, 20))
    assert evaluate(engine, QA, ["bm25"], ks=(1, 2, 20), batch=2) == whole


def test_a_retriever_that_cannot_load_reports_its_whole_error(engine, tmp_path, monkeypatch):
    """DPR with an empty offline hub cache fails; BM25 still scores, and the table keeps the
    whole error, `hf download ...` included, on one line below the table."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    bm25, dpr = evaluate(engine, QA, ["bm25", "dpr"], ks=(1, 2, 20))
    assert bm25.error is None and bm25.mrr == pytest.approx(0.7)
    assert dpr.error and "hf download facebook/dpr-question_encoder-single-nq-base" in dpr.error
    lines = format_table([bm25, dpr]).splitlines()
    assert lines[0].split() == [
        "retriever",
        "R@1",
        "psg",
        "R@2",
        "psg",
        "R@20",
        "psg",
        "R@1",
        "ans",
        "R@2",
        "ans",
        "R@20",
        "ans",
        "MRR@20",
    ]
    assert lines[1].split() == ["bm25", "0.600", "0.800", "0.800", "0.800", "0.800", "0.800", "0.700"]
    assert lines[2].split() == ["dpr", "unavailable", "(error", "below)"]
    assert lines[3:] == ["", f"dpr: unavailable: {dpr.error}"]


def test_format_table_puts_a_long_multiline_error_on_one_line():
    error = (
        "The files of 'org/model' are missing.\n  To get them, run `hf download org/model config.json "
        "vocab.txt pytorch_model.bin` " + "x" * 100
    )
    ok = RetrievalScores("bm25", 5, {1: 0.6, 20: 1.0}, {1: 0.8, 20: 0.8}, 0.74)
    failed = RetrievalScores("a-long-retriever-name", 5, {1: 0.0, 20: 0.0}, {1: 0.0, 20: 0.0}, 0.0, error)
    table = format_table([failed, ok])
    lines = table.splitlines()
    assert lines[0].startswith("retriever              R@1 psg")  # the first column fits the longest name
    assert lines[1] == "a-long-retriever-name  unavailable (error below)"
    assert lines[2].split() == ["bm25", "0.600", "1.000", "0.800", "0.800", "0.740"]
    assert lines[4] == (
        "a-long-retriever-name: unavailable: The files of 'org/model' are missing. "
        "To get them, run `hf download org/model config.json vocab.txt pytorch_model.bin` " + "x" * 100
    )
    assert len(lines) == 5


def test_format_table_without_failures_has_no_trailing_lines():
    ok = RetrievalScores("bm25", 5, {1: 0.6}, {1: 0.8}, 0.6)
    assert format_table([ok]).splitlines() == [
        "retriever  R@1 psg  R@1 ans  MRR@1",
        "bm25       0.600    0.800    0.600",
    ]
