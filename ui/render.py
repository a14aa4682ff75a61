"""HTML for the app, built from backend results. Every piece of text that comes from a user,
a corpus or a model goes through `html.escape`, so a passage holding `<script>` shows as text.
"""

from __future__ import annotations

import re
import uuid
from typing import Sequence

import numpy as np

from lfqa_demo.answer_match import answer_spans
from lfqa_demo.models.families import READER_FAMILIES
from lfqa_demo.results import AnswerReport, Comparison
from lfqa_demo.retrieval.bm25 import bm25_terms
from lfqa_demo.status import Status
from ui.states import status_words
from ui.text import esc, label, public_message  # noqa: F401 (the page's modules take them from here)

_WORD = re.compile(r"\w+", re.UNICODE)


def corpus_note(name: str, size: int) -> str:
    """The line above results that says which corpus they came from."""
    return f"<div class='corpus-note'>Corpus: <b>{esc(name)}</b> · {size:,} passages</div>"


def corpus_coverage(name: str, size: int, topics: tuple[int, Sequence[str]] | None) -> str:
    """The line near the question (HTML): the corpus, its size and what it covers (how many
    articles, the first of them), when it is small enough to count them."""
    line = f"Corpus: <b>{esc(clip(name, SHOWN_TITLE_CHARS))}</b> · {size:,} passages"
    if topics and topics[1]:
        count, first = topics
        more = f" and {count - len(first)} more" if count > len(first) else ""
        line += f" from {count:,} articles ({esc(', '.join(first))}{more}). Questions outside them have no answer here."
    return f"<div class='corpus-note'>{line}</div>"


SHOWN_CHARS = 2000  # of a passage in a result card: a 1 MB passage must not become 16 MB of HTML
SHOWN_TITLE_CHARS = 200


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " …"


def _gold_spans(text: str, golds: Sequence[str]) -> list[tuple[int, int]]:
    """Where any of `golds` occurs in `text`, by the rule that marks a hit as holding the answer
    (answer_match.py: whole tokens, any case, NFC or NFD); overlapping matches give way to the
    earlier, then the longer."""
    kept, end = [], 0
    for start, stop in sorted(answer_spans(text, [g for g in golds if g]), key=lambda span: (span[0], -span[1])):
        if start >= end:
            kept.append((start, stop))
            end = stop
    return kept


def highlight_words(text: str, question: str, gold: str | Sequence[str] | None = None) -> str:
    """`text` escaped, with the gold answer(s) in <mark class='gold'> and the question's content
    words (outside them) in <mark class='qword'>."""
    golds = [gold] if isinstance(gold, str) else list(gold or [])
    terms = set(bm25_terms(question))
    out, last = [], 0

    def words(chunk: str) -> None:
        pos = 0
        for m in _WORD.finditer(chunk):
            out.append(esc(chunk[pos : m.start()]))
            word = m.group(0)
            out.append(f"<mark class='qword'>{esc(word)}</mark>" if word.lower() in terms else esc(word))
            pos = m.end()
        out.append(esc(chunk[pos:]))

    for start, end in _gold_spans(text, golds):
        words(text[last:start])
        out.append(f"<mark class='gold'>{esc(text[start:end])}</mark>")
        last = end
    words(text[last:])
    return "".join(out)


def gold_rank(hits) -> int | None:
    """The rank of the first hit holding the gold answer, or None."""
    return next((h.rank for h in hits if h.contains_answer), None)


def _gold_label(c: Comparison, name: str) -> tuple[str, str]:
    """(css class, words) saying where retriever `name` found the gold answer."""
    result = c.results[name]
    if result.error:
        return "na", "unavailable"
    if result.pending:
        return "na", "not ready yet"
    if not c.gold_answer:
        return "na", "no gold answer given"
    rank = gold_rank(result.hits)
    return ("found", f"gold answer at #{rank}") if rank else ("missed", f"gold answer not in top {c.k}")


def render_summary(c: Comparison) -> str:
    """The strip above the columns: per retriever, where the gold answer is, its time, and how
    much it agrees with the others (mean overlap@k)."""
    overlaps: dict[str, list[float]] = {}
    for a in c.agreement:
        overlaps.setdefault(a.a, []).append(a.overlap)
        overlaps.setdefault(a.b, []).append(a.overlap)
    cards = []
    for name, result in c.results.items():
        kind, words = _gold_label(c, name)
        parts = [f"<span class='gold-rank {kind}'>{esc(words)}</span>"]
        if not result.error and not result.pending:
            parts.append(f"<span class='metric'>{result.encode_ms + result.search_ms:.0f} ms</span>")
            if overlaps.get(name):
                mean = sum(overlaps[name]) / len(overlaps[name])
                parts.append(
                    f"<span class='metric' title='mean overlap@{c.k} with the others'>agrees {mean:.0%}</span>"
                )
        cards.append(f"<div class='sum-card'><b>{esc(label(name))}</b>{''.join(parts)}</div>")
    return f"<div class='summary-strip'>{''.join(cards)}</div>"


def render_agreement(c: Comparison) -> str:
    """Retriever x retriever: overlap@k (large) and rank-biased overlap (small), shaded by overlap."""
    names = [n for n, r in c.results.items() if not r.error and not r.pending]
    if len(names) < 2:
        return ""
    pairs = {(a.a, a.b): a for a in c.agreement} | {(a.b, a.a): a for a in c.agreement}
    head = "".join(f"<th scope='col'>{esc(label(n))}</th>" for n in names)
    rows = []
    for a in names:
        cells = []
        for b in names:
            if a == b:
                cells.append("<td class='self'>·</td>")
                continue
            ag = pairs[(a, b)]
            cells.append(
                f"<td style='--level: {ag.overlap:.2f}'><span class='big'>{ag.overlap:.0%}</span>"
                f"<span class='small'>RBO {ag.rbo:.2f}</span></td>"
            )
        rows.append(f"<tr><th scope='row'>{esc(label(a))}</th>{''.join(cells)}</tr>")
    return (
        "<details class='agreement'><summary>How much the retrievers agree</summary>"
        f"<div class='matrix-wrap'><table class='matrix'><tr><th></th>{head}</tr>{''.join(rows)}</table></div>"
        f"<div class='note'>Large: the share of the top {c.k} two retrievers have in common (overlap@{c.k}). "
        "Small: rank-biased overlap, which also weighs where they agree (1 = the same ranking).</div></details>"
    )


def render_pending(status: Status) -> str:
    """A column still waiting for its index: where it stands, with a progress bar while it embeds
    (data-left: the seconds left shown, for tests that check the figure never jumps)."""
    bar, left = "", ""
    if status.done is not None and status.total:
        bar = f"<progress value='{status.done}' max='{max(status.total, 1)}'></progress>"
    if status.seconds_left is not None:
        left = f" data-left='{status.seconds_left:.1f}'"
    by_itself = " (this column fills in by itself)" if status.background else ""
    return f"<div class='pending'{left}>Not ready yet: {esc(status_words(status))}{by_itself}{bar}</div>"


def _bar_widths(scores: Sequence[float], calibration=None) -> list[float]:
    """Bar lengths in % for one column. With the retriever's calibration on this corpus: where
    each score sits among the best scores of the corpus's answerable QA questions (a weak match
    gives a short bar however it ranks in its column; 4% at the least, so that every bar shows).
    Without one: where each score lies between the column's lowest and highest (15% at the
    lowest); all equal scores give full bars."""
    if not scores:
        return []
    if calibration is not None:
        return [max(4.0, 100.0 * calibration.position(s)) for s in scores]
    lo, hi = min(scores), max(scores)
    return [100.0 if hi == lo else 15 + 85 * (s - lo) / (hi - lo) for s in scores]


SNIPPET_CHARS = 240  # shown of a closed passage: around its first gold answer (or question word)
COMPACT_ABOVE_K = 10  # above this k, a closed passage is one line (its head), and a column can jump to the gold


def _snippet_start(text: str, question: str, golds: Sequence[str]) -> int:
    """Where a closed passage's window starts: a little before its first gold answer, else before
    its first question word; 0 when that lies within the first lines anyway."""
    spans = _gold_spans(text, golds)
    if spans:
        first = spans[0][0]
    else:
        terms = set(bm25_terms(question))
        first = next((m.start() for m in _WORD.finditer(text) if m.group(0).lower() in terms), 0)
    if first < SNIPPET_CHARS // 2:
        return 0
    start = first - SNIPPET_CHARS // 3
    space = text.find(" ", start, first)  # start on a word boundary
    return space + 1 if space >= 0 else start


def _hit_text(text: str, question: str, golds: Sequence[str]) -> str:
    """A hit's text: the passage (marked), and when its answer (or first question word) lies past the
    first lines, a window around it shown while the card is closed."""
    text = clip(text, SHOWN_CHARS)
    marked = highlight_words(text, question, golds)
    start = _snippet_start(text, question, golds)
    if start == 0:
        return f"<div class='text'>{marked}</div>"
    window = highlight_words(text[start : start + SNIPPET_CHARS], question, golds)
    return f"<div class='text snippet'>… {window}</div><div class='text full'>{marked}</div>"


def _score_words(score_kind: str, calibration) -> str:
    if calibration is None:
        return f"Score: {score_kind}; bars: within this column only."
    return (
        f"Score: {score_kind}; bars: where the score sits among the best scores of {len(calibration.answerable)} "
        "answerable questions on this corpus."
    )


def render_comparison(c: Comparison, gold_answers: Sequence[str] | None = None) -> str:
    """The question asked, a summary strip, the agreement matrix, then one column per retriever:
    rank, a score bar (within the column) with the raw score, title, badges, and the passage
    clamped to a few lines (click to show it all) with the gold answer and question words marked.
    `gold_answers` marks several answers (a QA set's); by default `c.gold_answer`."""
    golds = list(gold_answers) if gold_answers is not None else [c.gold_answer or ""]
    found = c.found_by()
    group = f"cols-{uuid.uuid4().hex[:8]}"  # this rendering's ids: column switcher, hits
    cols = []
    for name, result in c.results.items():
        kind, words = _gold_label(c, name)
        head = (
            f"<div class='col-head'><b>{esc(label(name))}</b><span class='gold-rank {kind}'>{esc(words)}</span></div>"
        )
        if result.error:
            cols.append(
                f"<section class='col'>{head}<div class='error'>Unavailable: "
                f"{esc(public_message(result.error))}</div></section>"
            )
            continue
        if result.pending:
            cols.append(f"<section class='col'>{head}{render_pending(result.pending)}</section>")
            continue
        calibration = c.calibrations.get(name)
        cards = []
        for h, width in zip(result.hits, _bar_widths([h.score for h in result.hits], calibration)):
            others = [label(o) for o in found.get(h.passage_id, []) if o != name]
            badges = f"<span class='badge shared'>also {esc(', '.join(others))}</span>" if others else ""
            if h.contains_answer:
                badges += "<span class='badge gold'>contains the answer</span>"
            cards.append(
                f"<details class='hit{' shared-hit' if others else ''}' id='{group}-{name}-{h.rank}'><summary>"
                f"<div class='hit-head'><span class='rank'>#{h.rank}</span>"
                f"<span class='bar' title='{esc(result.score_kind)}'><span style='width: {width:.0f}%'></span></span>"
                f"<span class='score'>{h.score:.2f}</span>"
                f"<span class='title'>{esc(clip(h.title, SHOWN_TITLE_CHARS))}</span>{badges}</div>"
                f"{_hit_text(h.text, c.question, golds)}</summary></details>"
            )
        note = f"<div class='score-note'>{esc(_score_words(result.score_kind, calibration))}</div>"
        weak = ""
        if calibration is not None and result.hits and calibration.weak(result.hits[0].score):
            weak = (
                "<div class='weak-note'>Weak match: the best score here is lower than any answerable question of "
                f"this corpus's QA set gets (below {calibration.threshold:.2f}); the answer may not be in it.</div>"
            )
        timing = f"<div class='timing'>encode {result.encode_ms:.1f} ms · search {result.search_ms:.1f} ms</div>"
        jump = ""
        rank = gold_rank(result.hits)
        if c.k > COMPACT_ABOVE_K and rank:
            jump = f"<a class='jump' href='#{group}-{name}-{rank}'>Jump to the gold answer (#{rank})</a>"
        body = "".join(cards) or "<div class='note'>No passage shares a word with the question.</div>"
        cols.append(f"<section class='col'>{head}{weak}{timing}{note}{jump}{body}</section>")
    # On a phone the columns are one at a time, picked with these radio buttons (CSS only, see
    # app.css); on a wide screen they are hidden and every column shows.
    picks = "".join(
        f"<input type='radio' class='col-pick i{i}' name='{group}' id='{group}-{i}' "
        f"aria-label='Show the {esc(label(name))} column'{' checked' if i == 0 else ''}>"
        for i, name in enumerate(c.results)
    )
    tabs = "".join(
        f"<label class='i{i}' for='{group}-{i}'>{esc(label(name))}</label>" for i, name in enumerate(c.results)
    )
    cols = [col.replace("<section class='col'>", f"<section class='col i{i}'>", 1) for i, col in enumerate(cols)]
    asked = (
        f"<div class='asked'>Results for <q class='asked-q'>{esc(clip(c.question, SHOWN_TITLE_CHARS))}</q>"
        f" · top {c.k}"
        + (f" · gold answer <q>{esc(clip(c.gold_answer, SHOWN_TITLE_CHARS))}</q>" if c.gold_answer else "")
        + "</div><div class='stale-note' role='status'>The question has changed since these results: press "
        "Compare to update them.</div>"
    )
    compact = " compact" if c.k > COMPACT_ABOVE_K else ""
    return (
        f"<div class='results{compact}' data-question='{esc(c.question)}'>{asked}{render_summary(c)}"
        f"{render_agreement(c)}{picks}<nav class='col-tabs' aria-label='Retrievers'>{tabs}</nav>"
        f"<div class='compare-grid'>{''.join(cols)}</div></div>"
    )


def agreement_rows(c: Comparison) -> list[list]:
    return [[label(a.a), label(a.b), round(a.overlap, 3), round(a.rbo, 3)] for a in c.agreement]


def timing_rows(c: Comparison) -> list[list]:
    return [
        [
            label(n),
            round(r.encode_ms, 2),
            round(r.search_ms, 2),
            len(r.hits),
            public_message(r.error) if r.error else status_words(r.pending) if r.pending else "ok",
        ]
        for n, r in c.results.items()
    ]


def answer_timings(report: AnswerReport) -> str:
    """The time of each stage of an answer, in one line of words: "encoding the question 12 ms ·
    searching 3 ms · REALM's passage relevance 251 ms · the DPR reader 840 ms"."""

    def step(key: str) -> str:
        if key == "retrieve_encode":
            return "encoding the question"
        if key == "retrieve_search":
            return "searching"
        if key.startswith("read_"):
            return f"the {label(key[5:])} reader"
        if key.endswith("_relevance"):
            return f"{label(key[: -len('_relevance')])}'s passage relevance"
        return key.replace("_", " ")

    return " · ".join(f"{step(name)} {ms:.0f} ms" for name, ms in report.timings_ms.items())


def marked_passage(text: str, spans: Sequence[tuple[int, int]], limit: int = SHOWN_CHARS) -> str:
    """`text` escaped, with the character spans (from the reader's offsets) in <mark>; a text
    longer than `limit` is shown as a window of that size around the first span."""
    if len(text) > limit:
        first = min(spans, default=(0, 0))
        lo = max(0, min(first[0] - limit // 2, len(text) - limit))
        hi = lo + max(limit, first[1] - first[0])
        inner = marked_passage(text[lo:hi], [(s - lo, e - lo) for s, e in spans if s >= lo and e <= hi], hi - lo)
        return ("… " if lo else "") + inner + (" …" if hi < len(text) else "")
    out, last = [], 0
    for s, e in sorted(spans):
        if s < last:
            continue
        out.append(esc(text[last:s]))
        out.append(f"<mark class='answer'>{esc(text[s:e])}</mark>")
        last = e
    out.append(esc(text[last:]))
    return "".join(out)


def percent(share: float) -> str:
    """A share (0-1) as a percentage, rounded the same way wherever it is shown: whole percents
    from 10%, one decimal below ("0.1%" in one place and "0%" in another once read as two figures)."""
    value = 100 * share
    if value >= 10:
        return f"{value:.0f}%"
    return f"{value:.1f}%" if value >= 0.05 else "<0.1%"


def _answer_card(report: AnswerReport, reader: str, n: int, a) -> str:
    """One answer: its text, what each number means, and the passage with the span marked."""
    passage = report.passages[a.passage_index]
    where = ", ".join(f"{p + 1}" for p in dict.fromkeys(p for p, _, _ in a.sources))
    return (
        f"<div class='answer-card'><div class='answer-head'><span class='rank'>#{n}</span> <b "
        f"class='answer-text'>{esc(clip(a.text, SHOWN_TITLE_CHARS))}</b>"
        "<span class='metric' title='softmax over the candidates considered'>confidence "
        f"<b>{esc(percent(a.confidence))}</b></span>"
        "<span class='metric' title='the reader&#39;s score of this span alone'>span score "
        f"<b>{a.score:.2f}</b></span><span class='metric' title='{esc(relevance_meaning(reader))}'>passage relevance "
        f"<b>{a.relevance:.2f}</b></span>"
        f"<span class='metric'>in passage {esc(where)} of the {len(report.passages)} read</span></div>"
        f"<div class='title'>{esc(clip(passage.title, SHOWN_TITLE_CHARS))}</div><div "
        f"class='text'>{marked_passage(passage.text, [(a.start, a.end)])}</div></div>"
    )


def _titled(title: str) -> str:
    """ ": Title" after a passage number, or nothing for an untitled (pasted) passage."""
    return f": {esc(clip(title, 80))}" if title.strip() else ""


def no_answer_words(report: AnswerReport, reader: str, verdict) -> str:
    """Why `reader` says the passages hold no answer (a calibration.NoAnswer), in one sentence."""
    if verdict.basis == "reader":
        return (
            f"The {label(reader)} reader's evidence is weak: it gives its best span a {percent(verdict.p_answerable)} "
            f"chance of being an answer, and answers from {percent(verdict.cut)} (calibrated on answerable and "
            "unanswerable questions)."
        )
    return (
        f"The {label(report.retriever or '')} retriever's best match is weak (score {verdict.best_score:.2f}, "
        f"lower than any of the {verdict.questions} answerable questions of this corpus's QA set gets: "
        f"{verdict.threshold:.2f} or more), and the {label(reader)} reader has no calibration of its own."
    )


def _best_answers(report: AnswerReport) -> str:
    """Each reader's best answer (or "No answer in these passages"), large, and whether the
    readers agree."""
    results = {name: r for name, r in report.answers.items() if r.answers}
    if not results:
        return ""
    cards = []
    for name, result in results.items():
        a = result.answers[0]
        if result.no_answer is not None:
            cards.append(
                f"<div class='best none'><div class='who'>{esc(label(name))} reader</div>"
                "<div class='what'>No answer in these passages</div>"
                f"<div class='metric'>Best rejected span: “{esc(clip(a.text, 80))}” from passage "
                f"{a.passage_index + 1}</div></div>"
            )
            continue
        cards.append(
            f"<div class='best'><div class='who'>{esc(label(name))} reader's answer</div>"
            f"<div class='what'>{esc(clip(a.text, SHOWN_TITLE_CHARS))}</div>"
            f"<div class='metric'>{esc(percent(a.confidence))} confident · from passage {a.passage_index + 1}"
            f"{_titled(report.passages[a.passage_index].title)}</div></div>"
        )
    answered = {name: r.answers[0] for name, r in results.items() if r.no_answer is None}
    texts = {" ".join(a.text.casefold().split()) for a in answered.values()}
    agree = ""
    if len(results) > 1:
        if not answered:
            agree = "No reader finds an answer in these passages."
        elif len(answered) < len(results):
            agree = "The readers disagree on whether these passages answer the question."
        else:
            agree = "The readers agree." if len(texts) == 1 else "The readers give different answers."
        agree = f"<div class='agree-note'>{agree}</div>"
    return f"<div class='best-answers'>{''.join(cards)}</div>{agree}"


def answer_notes(report: AnswerReport) -> list[str]:
    """What was done that the asker did not ask for, in words."""
    notes = []
    if report.given is not None:
        notes.append(
            f"Read the given passages ({report.given}), not retrieved ones: the retriever choice applies to "
            "retrieved passages only."
        )
        if report.given > len(report.passages):
            notes.append(
                f"Read the {len(report.passages)} of {report.given} given passages that BM25 ranks highest for "
                "the question."
            )
    if report.clipped_at is not None:
        notes.append(f"Passages longer than {report.clipped_at:,} characters were read up to that point.")
    return notes


def render_answers(report: AnswerReport) -> str:
    """Each reader's best answer first; then per reader all its answers (beyond the first
    collapsed) with what each number means, highlighted at their exact offsets; then the
    passages that were read."""
    asked = esc(clip(report.question, SHOWN_TITLE_CHARS))
    blocks = [f"<div class='asked'>Answers to <q class='asked-q'>{asked}</q></div>"]
    blocks += [f"<div class='note'>{esc(note)}</div>" for note in answer_notes(report)]
    errors = []  # a retriever or relevance failure: before the readers
    if report.retriever_error:
        errors.append((f"{label(report.retriever or '')} retriever", report.retriever_error))
    for name, error in report.relevance_errors.items():
        errors.append((f"{label(name)} relevance", f"read without relevance scores: {error}"))
    blocks += [f"<div class='error'>{esc(who)}: {esc(public_message(error))}</div>" for who, error in errors]
    blocks.append(_best_answers(report))
    for name in dict.fromkeys([*report.answers, *report.reader_errors]):
        title = f"<h3>{esc(label(name))} reader</h3>"
        if name not in report.answers:
            error = report.reader_errors[name]
            blocks.append(
                f"<div class='reader'>{title}<div class='error'>Unavailable: {esc(public_message(error))}</div></div>"
            )
            continue
        result = report.answers[name]
        if not result.answers:
            blocks.append(f"<div class='reader'>{title}<div>No answer: {esc(result.reason)}</div></div>")
            continue
        cards = [_answer_card(report, name, n, a) for n, a in enumerate(result.answers, start=1)]
        if result.no_answer is not None:  # the verdict first; every candidate folded below it
            verdict = (
                "<div class='no-answer'><b>No answer in these passages.</b> "
                f"{esc(no_answer_words(report, name, result.no_answer))}</div>"
            )
            rejected = f"<details><summary>The {len(cards)} rejected spans</summary>{''.join(cards)}</details>"
            blocks.append(f"<div class='reader'>{title}{verdict}{rejected}</div>")
            continue
        more = ""
        if len(cards) > 1:
            summary = f"{len(cards) - 1} more {esc(label(name))} answers"
            more = f"<details><summary>{summary}</summary>{''.join(cards[1:])}</details>"
        blocks.append(f"<div class='reader'>{title}{cards[0]}{more}</div>")
    if report.passages:
        read = "".join(
            f"<li><b>{esc(clip(h.title, SHOWN_TITLE_CHARS))}</b> {esc(clip(h.text, 300))}</li>" for h in report.passages
        )
        blocks.append(
            f"<details class='passages-read'><summary>The {len(report.passages)} passages read</summary>"
            f"<ol>{read}</ol></details>"
        )
    return "".join(b for b in blocks if b) or "<div>No reader chosen.</div>"


def relevance_meaning(name: str) -> str:
    family = READER_FAMILIES.get(name)
    return family.relevance if family else "the passage's relevance"


def render_heatmap(labels: Sequence[str], matrix: np.ndarray, title: str) -> str:
    """A similarity matrix as an HTML table, cells shaded from low (white) to high (blue)."""
    lo, hi = float(np.min(matrix)), float(np.max(matrix))
    span = hi - lo or 1.0
    head = "".join(f"<th title='{esc(t)}'>{i + 1}</th>" for i, t in enumerate(labels))
    rows = []
    for i, t in enumerate(labels):
        cells = "".join(f"<td style='--level: {(v - lo) / span:.2f}'>{v:.2f}</td>" for v in matrix[i])
        rows.append(f"<tr><th title='{esc(t)}'>{i + 1}. {esc(t[:40])}</th>{cells}</tr>")
    table = f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"
    return f"<div class='heatmap'><div class='heat-title'>{esc(title)}</div>{table}</div>"


def render_pieces(pieces: Sequence[Sequence[str]], texts: Sequence[str], norms: Sequence[float], dim: int) -> str:
    rows = []
    for text, ps, norm in zip(texts, pieces, norms):
        chips = "".join(
            f"<span class='piece{' special' if p.startswith('[') and p.endswith(']') else ''}'>{esc(p)}</span>"
            for p in ps
        )
        rows.append(
            f"<div class='pieces'><div class='ptext'>{esc(text[:120])} <span class='metric'>{len(ps)} pieces · "
            f"norm {norm:.3f} · {dim}-d</span></div>{chips}</div>"
        )
    return "".join(rows)
