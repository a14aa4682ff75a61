"""HTML for the app, built from backend results. Every piece of text that comes from a user,
a corpus or a model goes through `html.escape`, so a passage holding `<script>` shows as text.
"""

from __future__ import annotations

import html
import re
from typing import Sequence

import numpy as np

from lfqa_demo.engine import AnswerReport, Comparison
from lfqa_demo.models.families import READER_FAMILIES
from lfqa_demo.retrieval.bm25 import bm25_terms

_WORD = re.compile(r"\w+", re.UNICODE)
LABELS = {
    "retribert": "RetriBERT",
    "dpr": "DPR",
    "realm": "REALM",
    "bm25": "BM25",
    "minilm": "MiniLM",
    "sentence": "Sentence",
}


def label(name: str) -> str:
    return LABELS.get(name, name)


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


# An absolute path of two or more parts, not inside a URL or a repo id ("org/name").
_SERVER_PATH = re.compile(r"(?<![\w.:/~-])(?:/[\w.@+~-]+)+/([\w.@+~-]+)")


def public_message(message: str) -> str:
    """A message fit to show a web visitor: server paths cut to their last part ("…/hub")."""
    return _SERVER_PATH.sub(lambda m: "…/" + m.group(1), message)


def corpus_note(name: str, size: int) -> str:
    """The line above results that says which corpus they came from."""
    return f"<div class='corpus-note'>Corpus: <b>{esc(name)}</b> · {size:,} passages</div>"


SHOWN_CHARS = 2000  # of a passage in a result card: a 1 MB passage must not become 16 MB of HTML
SHOWN_TITLE_CHARS = 200


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " …"


def highlight_words(text: str, question: str) -> str:
    """`text` escaped, with the question's content words wrapped in <mark>."""
    terms = set(bm25_terms(question))
    out, last = [], 0
    for m in _WORD.finditer(text):
        out.append(esc(text[last : m.start()]))
        word = m.group(0)
        out.append(f"<mark class='qword'>{esc(word)}</mark>" if word.lower() in terms else esc(word))
        last = m.end()
    out.append(esc(text[last:]))
    return "".join(out)


def render_comparison(c: Comparison) -> str:
    """One column per retriever: rank, score, title, passage with the question's words marked,
    who else found it, and whether it holds the gold answer."""
    found = c.found_by()
    cols = []
    for name, result in c.results.items():
        head = f"<div class='col-head'><b>{esc(label(name))}</b>"
        if result.error:
            cols.append(
                f"<div class='col'>{head}</div><div class='error'>Unavailable: "
                f"{esc(public_message(result.error))}</div></div>"
            )
            continue
        if result.pending:
            cols.append(
                f"<div class='col'>{head}</div><div class='pending'>Not ready yet: {esc(result.pending)}</div></div>"
            )
            continue
        head += f"<span class='timing'>encode {result.encode_ms:.1f} ms · search {result.search_ms:.1f} ms</span></div>"
        cards = []
        for h in result.hits:
            others = [label(o) for o in found.get(h.passage_id, []) if o != name]
            badges = f"<span class='badge shared'>also {esc(', '.join(others))}</span>" if others else ""
            if h.contains_answer:
                badges += "<span class='badge gold'>contains the answer</span>"
            cards.append(
                f"<div class='hit{' shared-hit' if others else ''}'><div class='hit-head'><span "
                f"class='rank'>#{h.rank}</span>"
                f"<span class='score' title='{esc(result.score_kind)}'>{h.score:.3f}</span>"
                f"<span class='title'>{esc(clip(h.title, SHOWN_TITLE_CHARS))}</span>{badges}</div>"
                f"<div class='text'>{highlight_words(clip(h.text, SHOWN_CHARS), c.question)}</div></div>"
            )
        cols.append(f"<div class='col'>{head}{''.join(cards) or '<div>no passages</div>'}</div>")
    columns = f"grid-template-columns: repeat({max(len(cols), 1)}, minmax(0, 1fr))"
    return f"<div class='compare-grid' style='{columns}'>{''.join(cols)}</div>"


def agreement_rows(c: Comparison) -> list[list]:
    return [[label(a.a), label(a.b), round(a.overlap, 3), round(a.rbo, 3)] for a in c.agreement]


def timing_rows(c: Comparison) -> list[list]:
    return [
        [label(n), round(r.encode_ms, 2), round(r.search_ms, 2), len(r.hits), r.error or r.pending or "ok"]
        for n, r in c.results.items()
    ]


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


def render_answers(report: AnswerReport) -> str:
    """Per reader, its answers with what each number means, highlighted at their exact offsets."""
    blocks = [f"<div class='note'>{esc(note)}</div>" for note in report.notes]
    for role, error in report.errors.items():  # a retriever or relevance failure: before the readers
        if not role.endswith(" reader"):
            name, what = role.split(" ", 1)
            blocks.append(f"<div class='error'>{esc(label(name))} {esc(what)}: {esc(public_message(error))}</div>")
    readers = [*report.answers, *[r.removesuffix(" reader") for r in report.errors if r.endswith(" reader")]]
    for name in dict.fromkeys(readers):
        if name not in report.answers:
            error = report.errors[f"{name} reader"]
            blocks.append(
                f"<div class='reader'><h3>{esc(label(name))} reader</h3><div class='error'>Unavailable: "
                f"{esc(public_message(error))}</div></div>"
            )
            continue
        result = report.answers[name]
        if not result.answers:
            blocks.append(
                f"<div class='reader'><h3>{esc(label(name))} reader</h3><div>No answer: "
                f"{esc(result.reason)}</div></div>"
            )
            continue
        items = []
        for n, a in enumerate(result.answers, start=1):
            passage = report.passages[a.passage_index]
            where = ", ".join(f"passage {p + 1}" for p in dict.fromkeys(p for p, _, _ in a.sources))
            items.append(
                f"<div class='answer-card'><div class='answer-head'><span class='rank'>#{n}</span> <b "
                f"class='answer-text'>{esc(clip(a.text, SHOWN_TITLE_CHARS))}</b>"
                "<span class='metric' title='softmax over the candidates considered'>confidence "
                f"{100 * a.confidence:.1f}%</span>"
                "<span class='metric' title='the reader&#39;s score of this span alone'>span score "
                f"{a.score:.2f}</span>"
                f"<span class='metric' title='{esc(relevance_meaning(name))}'>passage relevance "
                f"{a.relevance:.2f}</span>"
                f"<span class='metric'>from {esc(where)}</span></div>"
                f"<div class='title'>{esc(clip(passage.title, SHOWN_TITLE_CHARS))}</div><div "
                f"class='text'>{marked_passage(passage.text, [(a.start, a.end)])}</div></div>"
            )
        blocks.append(f"<div class='reader'><h3>{esc(label(name))} reader</h3>{''.join(items)}</div>")
    return "".join(blocks) or "<div>No reader chosen.</div>"


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
        cells = "".join(
            f"<td style='background: rgba(37, 99, 235, {0.08 + 0.8 * (v - lo) / span:.2f})'>{v:.2f}</td>"
            for v in matrix[i]
        )
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
