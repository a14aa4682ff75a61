"""`lfqa_demo.evaluation` on a hand-built corpus and QA set with BM25 (no models), against
figures worked out by hand."""

from __future__ import annotations

import json
import re

import pytest
from helpers import FAKE_REVISION

import lfqa_demo
from lfqa_demo.engine import RetrievalEngine
from lfqa_demo.errors import CorpusError, IndexNotReady, InvalidInputError
from lfqa_demo.evaluation import (
    EvaluationReport,
    RetrieverEvaluation,
    clear_evaluation_cache,
    evaluate_retriever,
    evaluation_report,
    format_table,
    retriever_identity,
    score_columns,
    score_row,
)
from lfqa_demo.retrieval.corpus import QAItem, QASet, build_corpus, load_bundled_questions, qa_from_file

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


def test_recall_by_gold_passage_and_by_answer_and_mrr(engine, fresh_cache):
    (bm25,) = evaluation_report(engine, QA, ["bm25"], max_k=20).retrievers.values()
    assert bm25.retriever == "bm25" and len(bm25.answer_ranks) == 5 and bm25.error is None
    # gold passage ranks 1, 1, 2, 1, none; first answer ranks 1, 1, 1, 1, none
    assert score_columns((1, 2, 20), 20, by_passage=True) == [
        "R@1, answer",
        "R@2, answer",
        "R@20, answer",
        "MRR@20, answer",
        "R@1, gold passage",
        "R@2, gold passage",
        "R@20, gold passage",
        "MRR@20, gold passage",
    ]
    # MRR@20 by answer = (1 + 1 + 1 + 1 + 0) / 5, by gold passage = (1 + 1 + 1/2 + 1 + 0) / 5
    assert score_row(bm25, (1, 2, 20), by_passage=True) == pytest.approx([0.8, 0.8, 0.8, 0.8, 0.6, 0.8, 0.8, 0.7])


def test_mrr_counts_only_the_top_max_k(engine, fresh_cache):
    """With max_k 2 the gold passage at rank 2 (q3) still counts: MRR@2 = (1 + 1 + 1/2 + 1 + 0) / 5;
    with max_k 1 it does not: (1 + 1 + 0 + 1 + 0) / 5."""
    at_2 = evaluation_report(engine, QA, ["bm25"], max_k=2).retrievers["bm25"]
    assert at_2.mrr_passage == pytest.approx(0.7) and at_2.recall_passage == pytest.approx((0.6, 0.8))
    assert evaluation_report(engine, QA, ["bm25"], max_k=1).retrievers["bm25"].mrr_passage == pytest.approx(0.6)


def test_batches_do_not_change_the_ranks(engine, fresh_cache):
    whole = evaluate_retriever(engine, QA, "bm25")
    clear_evaluation_cache()  # else the second call is a cache hit, and batches are never tried
    in_twos = evaluate_retriever(engine, QA, "bm25", batch=2)
    assert in_twos is not whole
    assert (in_twos.answer_ranks, in_twos.passage_ranks) == (whole.answer_ranks, whole.passage_ranks)


def test_a_retriever_that_cannot_load_reports_its_whole_error(engine, tmp_path, monkeypatch, fresh_cache):
    """DPR with an empty offline hub cache fails; BM25 still scores, and the table keeps the
    whole error, `hf download ...` included, on one line below the table."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    report = evaluation_report(engine, QA, ["bm25", "dpr"], max_k=20)
    bm25, dpr = report.retrievers.values()
    assert bm25.error is None and bm25.mrr_passage == pytest.approx(0.7)
    assert dpr.error and "hf download facebook/dpr-question_encoder-single-nq-base" in dpr.error
    lines = format_table(report, (1, 2, 20)).splitlines()
    assert cells(lines[0]) == ["retriever", *score_columns((1, 2, 20), 20, by_passage=True)]
    assert cells(lines[1]) == ["bm25", "0.800", "0.800", "0.800", "0.800", "0.600", "0.800", "0.800", "0.700"]
    assert lines[2].split() == ["dpr", "unavailable", "(error", "below)"]
    assert lines[3:] == ["", f"dpr: unavailable: {dpr.error}"]


def cells(line: str) -> list[str]:
    """A plain-text table line's cells: columns are two or more spaces apart, names hold single spaces."""
    return re.split(r" {2,}", line.strip())


def test_format_table_puts_a_long_multiline_error_on_one_line():
    error = (
        "The files of 'org/model' are missing.\n  To get them, run `hf download org/model config.json "
        "vocab.txt pytorch_model.bin` " + "x" * 100
    )
    ok = RetrieverEvaluation("bm25", 20, (1, 1, 2, None, None), (1, 1, 1, None, 4))
    failed = RetrieverEvaluation("a-long-retriever-name", 20, (), None, error=error)
    items = tuple(QAItem(f"q{i}", f"question {i}", ("a",), f"p{i}") for i in range(5))
    report = EvaluationReport("c", items, 20, {"a-long-retriever-name": failed, "bm25": ok})
    lines = format_table(report, (20, 1, 1)).splitlines()  # cut-offs sorted, each once
    assert lines[0].startswith("retriever              R@1, answer")  # the first column fits the longest name
    assert lines[1] == "a-long-retriever-name  unavailable (error below)"
    # answer ranks 1, 1, 2, miss, miss; gold passage ranks 1, 1, 1, miss, 4
    assert cells(lines[2]) == ["bm25", "0.400", "0.600", "0.500", "0.600", "0.800", "0.650"]
    assert lines[4] == (
        "a-long-retriever-name: unavailable: The files of 'org/model' are missing. "
        "To get them, run `hf download org/model config.json vocab.txt pytorch_model.bin` " + "x" * 100
    )
    assert len(lines) == 5


def test_format_table_without_gold_passages_or_failures():
    """A QA set without gold passages has no gold-passage columns; no failure, no trailing lines."""
    ok = RetrieverEvaluation("bm25", 1, (1, None, 1, 1, None), None)
    items = tuple(QAItem(f"q{i}", f"question {i}", ("a",), "") for i in range(5))
    assert format_table(EvaluationReport("c", items, 1, {"bm25": ok}), (1,)).splitlines() == [
        "retriever  R@1, answer  MRR@1, answer",
        "bm25       0.600        0.600",
    ]
    with pytest.raises(InvalidInputError, match="cut-offs must be between 1 and 1, got \\[1, 2\\]"):
        format_table(EvaluationReport("c", items, 1, {"bm25": ok}), (1, 2))


# -- the evaluation view's backend: curves, per-question ranks, the cache, QA files ------------------
@pytest.fixture
def fresh_cache():
    clear_evaluation_cache()
    yield
    clear_evaluation_cache()


@pytest.fixture(scope="module")
def bundled_qa() -> list[QAItem]:
    return load_bundled_questions()


@pytest.fixture
def bundled_engine(tmp_path) -> RetrievalEngine:
    return RetrievalEngine(retrievers={"bm25": "bm25", "dpr": "dpr"}, cache_dir=tmp_path)


def test_report_on_the_hand_built_set_has_the_worked_out_ranks(engine, fresh_cache):
    report = evaluation_report(engine, QA, ["bm25"], max_k=20)
    bm25 = report.retrievers["bm25"]
    assert bm25.answer_ranks == (1, 1, 1, 1, None) and bm25.passage_ranks == (1, 1, 2, 1, None)
    assert bm25.recall_answer == pytest.approx((0.8,) * 20)
    assert bm25.recall_passage == pytest.approx((0.6,) + (0.8,) * 19)
    assert bm25.mrr_answer == pytest.approx(0.8) and bm25.mrr_passage == pytest.approx(0.7)
    assert report.ranks(2) == {"bm25": 1} and report.items == tuple(QA)


def test_curves_are_monotone_on_the_bundled_set(bundled_engine, bundled_qa, fresh_cache):
    """On the bundled corpus and QA set, with BM25 and the (fixture) DPR, built in the engine."""
    report = evaluation_report(bundled_engine, bundled_qa, ["bm25", "dpr"])
    for r in report.retrievers.values():
        assert r.error is None and len(r.answer_ranks) == len(bundled_qa) == 168
        for curve in (r.recall_answer, r.recall_passage):
            assert len(curve) == 20 and all(0 <= a <= b <= 1 for a, b in zip(curve, curve[1:]))
    bm25 = report.retrievers["bm25"]
    assert bm25.recall_passage[4] == pytest.approx(0.952, abs=0.001)  # R@5, gold passage: README's figure
    # docs/app.md's figures; the two MRRs differ, so a table must say which it shows
    assert (round(bm25.mrr_answer, 3), round(bm25.mrr_passage, 3)) == (0.877, 0.858)


def test_a_cache_hit_returns_the_same_object_without_searching(engine, fresh_cache, monkeypatch):
    searches = []
    real = engine.compare_batch
    monkeypatch.setattr(engine, "compare_batch", lambda *a, **kw: searches.append(a) or real(*a, **kw))
    seen = []
    first = evaluation_report(engine, QA, ["bm25"], progress=lambda *p: seen.append(p))
    assert len(searches) == 1 and seen == [("bm25", 0, 5), ("bm25", 5, 5)]
    again = evaluation_report(engine, QA, ["bm25"])
    assert again.retrievers["bm25"] is first.retrievers["bm25"] and len(searches) == 1
    evaluation_report(engine, QA, ["bm25"], max_k=10)  # another depth: computed
    evaluation_report(engine, QA[:4], ["bm25"])  # another QA set: computed
    other = RetrievalEngine(build_corpus("fruit", PASSAGES[:4], split=False), retrievers={"bm25": "bm25"})
    evaluation_report(other, QA, ["bm25"])  # another corpus: its own engine, computed
    assert len(searches) == 3
    # The same corpus in another engine (a dropped upload, uploaded again) finds the cached entry.
    same = RetrievalEngine(build_corpus("fruit", PASSAGES, split=False), retrievers={"bm25": "bm25"})
    assert evaluation_report(same, QA, ["bm25"]).retrievers["bm25"] is first.retrievers["bm25"]


def test_the_cache_key_names_the_checkpoints_and_dtype(tmp_path, fresh_cache):
    corpus = build_corpus("fruit", PASSAGES, split=False)
    fp32 = RetrievalEngine(corpus, retrievers={"dpr": "dpr"}, cache_dir=tmp_path, dtype="float32")
    bf16 = RetrievalEngine(corpus, retrievers={"dpr": "dpr"}, cache_dir=tmp_path, dtype="bfloat16")
    a, b = retriever_identity(fp32, "dpr"), retriever_identity(bf16, "dpr")
    assert a != b and "float32" in a and "bfloat16" in b
    assert FAKE_REVISION in a and "facebook/dpr-ctx_encoder-single-nq-base" in a and '"index": "flat"' in a
    first = evaluation_report(fp32, QA, ["dpr"]).retrievers["dpr"]
    assert evaluation_report(bf16, QA, ["dpr"]).retrievers["dpr"] is not first


def test_a_retriever_that_cannot_load_is_reported_and_not_cached(engine, tmp_path, monkeypatch, hub_cache, fresh_cache):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    report = evaluation_report(engine, QA, ["dpr", "bm25"])
    dpr, bm25 = report.retrievers["dpr"], report.retrievers["bm25"]
    assert "hf download facebook/dpr-question_encoder-single-nq-base" in dpr.error and dpr.answer_ranks == ()
    assert bm25.error is None and report.ranks(0) == {"bm25": 1}
    assert list(report.retrievers) == ["dpr", "bm25"]  # in the order asked for
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))  # the checkpoints are back: DPR runs now
    lfqa_demo.clear_loaded_models()
    assert evaluation_report(engine, QA, ["dpr"]).retrievers["dpr"].error is None


def test_an_index_not_ready_in_time_is_an_error_saying_where_it_stands(engine, fresh_cache, monkeypatch):
    monkeypatch.setattr(engine.searchers["dpr"], "search", _not_ready)
    dpr = evaluation_report(engine, QA, ["dpr"], timeout=0).retrievers["dpr"]
    assert dpr.error == "indexing 2/5 passages; it goes on in the background, try again shortly"


def _not_ready(questions, k, timeout=None):
    raise IndexNotReady("indexing 2/5 passages; it goes on in the background, try again shortly")


def test_disagreements_come_first():
    def ranks(*values):
        return RetrieverEvaluation("x", 20, values, None)

    items = tuple(QAItem(f"q{i}", f"question {i}", ("a",), "") for i in range(5))
    report = EvaluationReport(
        "c",
        items,
        20,
        {
            "bm25": ranks(1, 1, None, 3, 2),
            "dpr": ranks(1, None, None, 1, 19),
            "broken": RetrieverEvaluation("broken", 20, (), None, error="no"),
        },
    )
    # q1: 1 vs missed (gap 20); q4: 2 vs 19 (17); q3: 3 vs 1 (2); q2: both missed; q0: both first
    assert report.disagreement_order() == [1, 4, 3, 2, 0]
    assert report.ranks(1) == {"bm25": 1, "dpr": None}  # a retriever that could not run has no ranks


def test_unknown_retrievers_and_empty_qa_sets_are_refused(engine):
    with pytest.raises(InvalidInputError, match="unknown retriever 'nope'"):
        evaluation_report(engine, QA, ["nope"])
    with pytest.raises(InvalidInputError, match="no questions"):
        evaluation_report(engine, [], ["bm25"])


# -- QA files -----------------------------------------------------------------------------------------
def test_qa_files_in_each_format(tmp_path):
    (tmp_path / "qa.jsonl").write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"id": "a", "question": "where do dates grow", "answers": ["hot deserts", "deserts"]},
                {"id": "b", "question": "unanswerable?", "answers": []},
                {"id": "c", "question": "red fruit", "answers": {"text": ["cherries"], "answer_start": [0]}},
                {"id": "d", "question": 1969, "answers": 1969, "passage_id": "dates"},
            ]
        ),
        encoding="utf-8",
    )
    qa = qa_from_file(tmp_path / "qa.jsonl")
    assert qa.name == "qa.jsonl" and qa.notes == ("1 question without an answer was left out",)
    assert [(q.id, q.question, q.answers, q.passage_id) for q in qa.items] == [
        ("a", "where do dates grow", ("hot deserts", "deserts"), ""),
        ("c", "red fruit", ("cherries",), ""),
        ("d", "1969", ("1969",), "dates"),
    ]
    (tmp_path / "qa.csv").write_text(
        "\ufeffQuery,Answer\nwhere do dates grow,hot deserts | deserts\nred fruit,cherries\n", encoding="utf-8"
    )
    csv_qa = qa_from_file(tmp_path / "qa.csv", name="my questions.csv")
    assert csv_qa.name == "my questions.csv"
    assert [(q.id, q.answers) for q in csv_qa.items] == [("q1", ("hot deserts", "deserts")), ("q2", ("cherries",))]
    (tmp_path / "qa.json").write_text(json.dumps({"question": ["a?", "b?", "c?"], "answer": ["x", "y", "z"]}))
    capped = qa_from_file(tmp_path / "qa.json", limit=2)
    assert [q.question for q in capped.items] == ["a?", "b?"]
    assert capped.notes == ("only the first 2 questions with an answer were kept",)


@pytest.mark.parametrize(
    "name,content,message",
    [
        (
            "cols.csv",
            "a,b\n1,2\n",
            r"cols\.csv: no question column \(looked for 'question', 'query', 'questions', 'q'\); its columns are "
            r"\['a', 'b'\]\. A QA file needs a question column and an answer column",
        ),
        (
            "noanswer.jsonl",
            '{"question": "q?", "text": "t"}\n',
            r"no answer column .* its columns are \['question', 'text'\]",
        ),
        ("none.jsonl", '{"question": "q?", "answers": []}\n', "holds no question with an answer"),
        ("empty.csv", "question,answer\n ,x\n", "line 2 has no question in the 'question' column"),
        ("nested.jsonl", '{"question": {"q": 1}, "answer": "x"}\n', "line 1 has an object in the 'question' column"),
        ("long.csv", "question,answer\n" + "x" * 2001 + ",y\n", "2,001 characters in the 'question' column"),
        ("many.jsonl", json.dumps({"question": "q", "answers": ["a"] * 21}), "21 answers .* the limit is 20"),
        ("qa.parquet", "PAR1", r"unsupported file type \.parquet; use one of \.jsonl, \.json, \.csv"),
        ("deep.json", "[" * 50 + "]" * 50, "nests arrays or objects 50 deep"),
    ],
)
def test_bad_qa_files_get_a_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError, match=message):
        qa_from_file(path)


def test_the_evaluation_view_escapes_every_text_and_cuts_server_paths():
    from ui import evaluation_view

    evil = "<img src=x onerror=alert(1)>"
    items = (QAItem("q1", f"{evil}?", (evil, "plain"), ""),)
    report = EvaluationReport(
        evil,
        items,
        20,
        {
            "bm25": RetrieverEvaluation("bm25", 20, (3,), None, 0.1),
            "dpr": RetrieverEvaluation("dpr", 20, (), None, error=f"cannot load {evil} from /root/.cache/hub/x"),
        },
    )
    qa = QASet(f"{evil}.csv", items, (f"2 questions without an answer {evil}",))
    summary = evaluation_view.render_summary(report, qa, evil, 5)
    progress = evaluation_view.render_progress({"bm25": f"index: {evil} /srv/app/secret.py"}, evil, 5, qa)
    for html in (summary, progress):
        assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html and "/root" not in html
    assert "…/secret.py" in progress and "DPR: unavailable: cannot load" in summary.replace("&lt;", "<")
    assert "names no gold passages" in summary and "<td>0.000</td><td>1.000</td><td>1.000</td><td>0.333</td>" in summary
    table = evaluation_view.question_table(report)
    assert list(table.columns) == ["#", "question", "gold answer", "BM25"]
    assert table.values.tolist() == [["1", f"{evil}?", f"{evil} | plain", "3"]]  # a Dataframe shows text as text
    curves = evaluation_view.curve_frame(report)
    assert len(curves) == 20 and set(curves["retriever"]) == {"BM25"}
