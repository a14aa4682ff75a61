"""The app's HTML (ui/render.py): everything from a visitor, a corpus or a model is escaped,
server paths are cut, long texts are clipped, and answers stay highlighted at their offsets."""

from __future__ import annotations

from lfqa_demo.reading.answers import Answer, ReadResult
from lfqa_demo.results import AnswerReport, Comparison, Hit, RetrieverResult
from lfqa_demo.status import Phase, Status
from ui import render

EVIL = "<img src=x onerror=alert(1)>"


def comparison(text: str = f"The normans {EVIL} were led by Rollo.", title: str = EVIL) -> Comparison:
    hits = [Hit(1, "p1", title, text, 7.5, True)]
    results = {
        "bm25": RetrieverResult("bm25", hits, 0.0, 1.0),
        "dpr": RetrieverResult("dpr", [], 0.0, 0.0, error=f"cannot load {EVIL} from /root/.cache/huggingface/hub"),
        "realm": RetrieverResult("realm", [], 0.0, 0.0, pending=Status(Phase.INDEXING, 10, 552)),
    }
    return Comparison(f"who led the normans {EVIL}?", 5, results, [], "Rollo")


def test_comparison_escapes_every_text_and_marks_question_words():
    html = render.render_comparison(comparison())
    # the passage's, the error's, and the question's (shown above the results, and kept to spot stale results)
    assert "<img" not in html and html.count("&lt;img src=x onerror=alert(1)&gt;") == 4
    assert "<mark class='qword'>normans</mark>" in html and "contains the answer" in html
    assert "<mark class='gold'>Rollo</mark>" in html and "gold answer at #1" in html
    assert "Not ready yet: indexing 10/552 passages" in html and "<progress value='10' max='552'>" in html
    assert "/root/.cache" not in html and "…/hub" in html


def test_long_passages_and_titles_are_clipped():
    html = render.render_comparison(comparison(text="word " * 10_000, title="t" * 5_000))
    assert len(html) < 50_000 and "t" * 200 + " …" in html


def test_answers_escape_and_highlight_at_offsets_even_deep_in_a_long_passage():
    text = "filler " * 1000 + f"{EVIL} Rollo led them." + " filler" * 1000
    start = text.index("Rollo")
    answer = Answer("Rollo", 0, start, start + 5, 3.0, 1.0, 0.9, [(0, start, start + 5)])
    report = AnswerReport(
        "who?",
        "bm25",
        [Hit(1, "p", EVIL, text, 1.0)],
        {"dpr": ReadResult([answer])},
        retriever_error="boom /srv/x/y.py",
        relevance_errors={"realm": "a note <b>"},
        given=None,
        clipped_at=2000,
    )
    html = render.render_answers(report)
    assert "<mark class='answer'>Rollo</mark>" in html and "<img" not in html
    assert "REALM relevance: read without relevance scores: a note &lt;b&gt;" in html and "a note <b>" not in html
    assert "Passages longer than 2,000 characters were read up to that point." in html
    assert "BM25 retriever: boom …/y.py" in html and len(html) < 20_000


def test_public_message_cuts_paths_but_not_urls_or_repo_ids():
    cut = render.public_message("see /root/.cache/huggingface/hub and https://huggingface.co/org/name, org/name, /etc")
    assert cut == "see …/hub and https://huggingface.co/org/name, org/name, /etc"


def test_a_column_still_indexing_says_so_in_the_timings():
    rows = {row[0]: row for row in render.timing_rows(comparison())}
    assert rows["REALM"][4] == "indexing 10/552 passages" and rows["BM25"][4] == "ok"


def test_several_gold_answers_are_all_marked():
    c = comparison(text="Rollo led them; the Vikings of Rollo came with Hrolf.")
    html = render.render_comparison(c, ["Rollo", "Hrolf", "Vikings of Rollo"])
    assert "<mark class='gold'>Rollo</mark>" in html and "<mark class='gold'>Hrolf</mark>" in html
    assert "<mark class='gold'>Vikings of Rollo</mark>" in html  # the longer match wins where they overlap


def test_a_confidence_is_rounded_the_same_way_everywhere():
    from ui.render import percent

    assert [percent(x) for x in (0.9512, 0.1, 0.0994, 0.001, 0.0004)] == ["95%", "10%", "9.9%", "0.1%", "<0.1%"]
