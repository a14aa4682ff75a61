"""Answering: retrieve `k` passages (or take the given ones), then let each reader pull answer
spans out of them. Called by `RetrievalEngine.answer`, which checks the input first."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Sequence

from .calibration import ReaderRules, RetrievalCalibration, no_answer, reader_identity
from .comparison import rank
from .errors import LfqaError, failure_message
from .reading.answers import ReadResult
from .reading.loading import load_reader, load_relevance_embedder
from .results import AnswerReport, Hit
from .retrieval.bm25 import BM25Index
from .retrieval.corpus import Corpus, Passage
from .retrieval.searchers import DenseSearch

if TYPE_CHECKING:
    from .engine import RetrievalEngine

_log = logging.getLogger(__name__)
# Characters of each passage the readers read in one request: bounds their work (a passage is
# read in overlapping windows of ~350 word pieces) whatever a visitor uploads or pastes.
MAX_READ_CHARS = 2000


def answer(
    engine: RetrievalEngine,
    question: str,
    retriever: str,
    readers: Sequence[str],
    k: int,
    top_k: int,
    given: list[tuple[str, str, str]] | None,
    max_answer_tokens: int | None,
    reader_checkpoints: dict[str, str],
    timeout: float | None,
    retrieval: RetrievalCalibration | None = None,
    rules: ReaderRules | None = None,
) -> AnswerReport:
    """Retrieve `k` passages with `retriever`, or read `given` (id, title, text) passages (the `k`
    that BM25 ranks highest when there are more), then read them with each reader. A reader that
    adds passage relevance to its span scores (REALM) gets it from its `prior_relevance`.
    With `retrieval` (the retriever's calibration on this corpus) and `rules` (reader rules by
    checkpoint), each reading gets its no-answer verdict (calibration.no_answer)."""
    report = AnswerReport(question, retriever, [], {})
    if given is None:
        result = rank(engine, [question], [retriever], k, [None], timeout)[0].results[retriever]
        report.retriever_error = result.error
        hits = result.hits
        report.timings_ms["retrieve_encode"], report.timings_ms["retrieve_search"] = result.encode_ms, result.search_ms
    else:
        hits = [Hit(i + 1, id_, title, text, 0.0) for i, (id_, title, text) in enumerate(given)]
        report.retriever, report.given = None, len(given)
        if len(hits) > k:  # k bounds the reading work for pasted text too
            hits = _top_k_by_bm25(question, hits, k)
    if any(len(h.text) > MAX_READ_CHARS for h in hits):
        report.clipped_at = MAX_READ_CHARS
    report.passages = hits
    to_read = [{"title": h.title, "text": h.text[:MAX_READ_CHARS]} for h in hits]  # a prefix: offsets stay valid
    searcher = engine.searchers.get(report.retriever) if report.retriever is not None else None
    retrieved_by = searcher.spec if isinstance(searcher, DenseSearch) else None
    for name in readers:
        try:
            report.answers[name] = _read(
                engine,
                report,
                name,
                to_read,
                hits,
                retrieved_by,
                top_k,
                max_answer_tokens,
                reader_checkpoints.get(name),
                retrieval,
                rules,
            )
        except Exception as exc:  # one reader failing never takes the other down
            report.reader_errors[name] = failure_message(exc)
    return report


def _read(
    engine, report, name, to_read, hits, retrieved_by, top_k, max_answer_tokens, checkpoint, retrieval, rules
) -> ReadResult:
    """One reader over the passages, with its relevance scores when it adds them (REALM), and
    its no-answer verdict."""
    reader = load_reader(name, device=engine.device, dtype=engine.dtype, checkpoint=checkpoint)
    relevance = None
    if to_read:
        started = time.perf_counter()
        try:
            embedder = load_relevance_embedder(reader, retrieved_by)  # REALM's, unless it retrieved these
            relevance = reader.prior_relevance(
                report.question, to_read, retrieved_by, [h.score for h in hits], embedder
            )
        except LfqaError as exc:
            report.relevance_errors[name] = str(exc)
        if relevance is not None:
            report.timings_ms[f"{name}_relevance"] = 1000 * (time.perf_counter() - started)
    started = time.perf_counter()
    result = reader.read(report.question, to_read, top_k, max_answer_tokens, relevance)
    report.timings_ms[f"read_{name}"] = 1000 * (time.perf_counter() - started)
    try:  # the verdict never costs the reader its answers
        retrieved = report.retriever is not None and bool(hits)
        best_score = hits[0].score if retrieved else None
        calibration = retrieval if retrieved else None
        rule = rules.get(reader_identity(reader), calibration is not None) if rules is not None else None
        result.no_answer = no_answer(result.answers[0] if result.answers else None, rule, calibration, best_score)
    except Exception as exc:
        _log.warning("the %s reader's no-answer verdict failed: %s", name, failure_message(exc))
    return result


def _top_k_by_bm25(question: str, hits: list[Hit], k: int) -> list[Hit]:
    """The `k` hits BM25 ranks highest for `question` (their original order among equals), re-ranked."""
    index = BM25Index(Corpus("given passages", [Passage(h.passage_id, h.title, h.text) for h in hits]))
    scores = index.scores(question)  # [len(hits)]
    order = sorted(range(len(hits)), key=lambda i: (-float(scores[i]), i))[:k]
    return [Hit(rank + 1, hits[i].passage_id, hits[i].title, hits[i].text, 0.0) for rank, i in enumerate(order)]
