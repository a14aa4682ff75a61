"""The evaluation tab's presentation: the recall@k curves as plot data, the summary and progress
as HTML, the per-question table. Every text from a visitor (questions, answers, file and corpus
names) or from the backend (errors) is escaped, and server paths are cut from messages.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from lfqa_demo.answer_match import has_answer
from lfqa_demo.evaluation import ANSWER, GOLD_PASSAGE, EvaluationReport, score_columns, score_row
from lfqa_demo.results import Comparison
from lfqa_demo.retrieval.corpus import QASet
from ui.render import clip, corpus_note, esc, label, public_message, render_comparison

CURVE_COLUMNS = ["k", "recall", "retriever"]
SUMMARY_KS = (1, 5, 20)  # the cut-offs the summary table shows (the plot has them all)
# Characters a table cell shows (a click shows the rest): the cells hold whole questions and
# answers, so that a clicked row leads back to its question.
SHOWN_CELL_CHARS = 300
MISSED = "-"  # the table's cell for "not in the top k"
ANSWER_SEPARATOR = " | "  # between a question's gold answers in the table


def curve_frame(report: EvaluationReport) -> pd.DataFrame:
    """recall@k by answer for k = 1..max_k, one line per retriever that ran (for gr.LinePlot)."""
    rows = [
        [k, round(recall, 4), label(name)]
        for name, result in report.retrievers.items()
        if result.error is None
        for k, recall in enumerate(result.recall_answer, start=1)
    ]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def _cut_offs(max_k: int) -> list[int]:
    return [k for k in SUMMARY_KS if k < max_k] + [max_k]


def render_summary(report: EvaluationReport, qa: QASet, corpus: str, corpus_size: int) -> str:
    """Which corpus and QA set; per retriever R@1, R@5, R@20 and MRR@20 by answer (and by gold
    passage when the QA set names them), under the names the command line's table uses
    (`score_columns`), and the time taken; then each retriever that could not run."""
    ks = _cut_offs(report.max_k)
    by_passage = report.by_passage
    head = ["retriever"] + score_columns(ks, report.max_k, by_passage) + ["seconds"]
    rows = []
    for name, r in report.retrievers.items():
        if r.error is not None:
            continue
        cells = ["-" if v is None else f"{v:.3f}" for v in score_row(r, ks, by_passage)] + [f"{r.seconds:.1f}"]
        rows.append(_th(label(name)) + "".join(_td(c) for c in cells))
    table = (
        f"<table class='eval-scores'><tr>{''.join(_th(h) for h in head)}</tr>"
        + "".join(f"<tr>{row}</tr>" for row in rows)
        + "</table>"
        if rows
        else ""
    )
    errors = "".join(
        f"<div class='error'>{esc(label(name))}: unavailable: {esc(public_message(r.error))}</div>"
        for name, r in report.retrievers.items()
        if r.error is not None
    )
    return (
        _heading(corpus, corpus_size, qa)
        + f"<div class='note'>{ANSWER}: a passage in the top k contains a gold answer "
        + "(whole words, any case, as DPR counts it); "
        + (
            f"{GOLD_PASSAGE}: the question's own passage is in the top k. "
            if by_passage
            else "this QA set names no gold passages. "
        )
        + f"MRR@{report.max_k} counts ranks up to {report.max_k} (a miss counts 0).</div>"
        + table
        + errors
    )


def _th(text: str) -> str:
    return f"<th>{esc(text)}</th>"


def _td(text: str) -> str:
    return f"<td>{esc(text)}</td>"


def _heading(corpus: str, corpus_size: int, qa: QASet) -> str:
    notes = f" ({esc('; '.join(qa.notes))})" if qa.notes else ""
    return corpus_note(corpus, corpus_size) + (
        f"<div class='corpus-note'>QA set: <b>{esc(qa.name)}</b> · {len(qa.items):,} questions{notes}</div>"
    )


def render_progress(states: Mapping[str, str], corpus: str, corpus_size: int, qa: QASet) -> str:
    """Where each retriever stands while the evaluation runs ("loading the model", "index:
    indexing 120/552 passages, about 40 s left", "evaluating 168 questions", "done")."""
    items = "".join(
        f"<li><b>{esc(label(name))}</b>: {esc(public_message(state))}</li>" for name, state in states.items()
    )
    return f"{_heading(corpus, corpus_size, qa)}<div class='pending'>Evaluating…<ul>{items}</ul></div>"


def question_table(report: EvaluationReport) -> pd.DataFrame:
    """One row per question, the most telling disagreements first (see
    `EvaluationReport.disagreement_order`): its number in the QA set (what a click on the row
    sends back), the question, its gold answers, and per retriever
    that ran the rank of the first passage holding an answer ("-": not in the top k)."""
    names = [n for n, r in report.retrievers.items() if r.error is None]
    rows = []
    for i in report.disagreement_order():
        item, ranks = report.items[i], report.ranks(i)
        rows.append(
            [str(i + 1), item.question, ANSWER_SEPARATOR.join(item.answers)]
            + [MISSED if ranks[n] is None else str(ranks[n]) for n in names]
        )
    return pd.DataFrame(rows, columns=["#", "question", "gold answer"] + [label(n) for n in names])


def mark_gold(comparison: Comparison, answers: Sequence[str]) -> Comparison:
    """`comparison` with every hit holding any of the gold `answers` marked (compare takes one)."""
    comparison.gold_answer = ANSWER_SEPARATOR.join(answers) or None
    for result in comparison.results.values():
        for hit in result.hits:
            hit.contains_answer = has_answer(hit.text, answers)
    return comparison


def render_question(question: str, answers: Sequence[str], comparison: Comparison, corpus: str, size: int) -> str:
    """A question of the table, its gold answers and each retriever's passages side by side."""
    return (
        f"<div class='corpus-note'>Question: <b>{esc(clip(question, 2000))}</b> · gold answer: "
        f"<b>{esc(clip(ANSWER_SEPARATOR.join(answers), 2000))}</b></div>"
        + corpus_note(corpus, size)
        + render_comparison(comparison, answers)
    )
